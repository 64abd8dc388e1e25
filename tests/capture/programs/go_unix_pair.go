// A server and its client over a unix socket (argv: server|client PATH), each reading before
// it writes: both goroutines park in the netpoller reading, and no OS thread shows it. With
// "ticker" as a third argument the client also keeps a ticker goroutine that waits for time
// to pass and writes nothing.
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	path := os.Args[2]
	buf := make([]byte, 16)
	if os.Args[1] == "server" {
		os.Remove(path)
		l, err := net.Listen("unix", path)
		if err != nil {
			panic(err)
		}
		fmt.Println(os.Getpid())
		c, err := l.Accept()
		if err != nil {
			panic(err)
		}
		c.Read(buf) // waits for the client's request
		c.Write([]byte("hello"))
		return
	}
	if len(os.Args) > 3 {
		t := time.NewTicker(time.Hour)
		go func() {
			for range t.C {
				fmt.Println("tick")
			}
		}()
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		panic(err)
	}
	c.Read(buf) // waits for the server's greeting
	c.Write([]byte("request"))
}
