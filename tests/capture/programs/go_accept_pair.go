// A client and the server it starts (argv: PATH of a unix socket, or "tcp"): the server waits
// for a word on its stdin, a pipe from the client, before its first accept; the client writes
// that word only after the server has answered its request. The client's goroutine parks in
// the netpoller reading a connection that waits in the server's accept queue; the server's
// main goroutine sits in a read of the pipe. Prints the server's pid.
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"
)

func main() {
	buf := make([]byte, 16)
	network, address := "unix", os.Args[1]
	if address == "tcp" {
		network, address = "tcp", "127.0.0.1:0"
	}
	if len(os.Args) > 2 { // the server
		if network == "unix" {
			os.Remove(address)
		}
		l, err := net.Listen(network, address)
		if err != nil {
			panic(err)
		}
		fmt.Println(l.Addr().String())
		os.Stdin.Read(buf) // waits for the client's word
		c, err := l.Accept()
		if err != nil {
			panic(err)
		}
		c.Read(buf)
		c.Write([]byte("answer"))
		return
	}
	server := exec.Command(os.Args[0], os.Args[1], "server")
	word, err := server.StdinPipe()
	if err != nil {
		panic(err)
	}
	out, err := server.StdoutPipe()
	if err != nil {
		panic(err)
	}
	if err := server.Start(); err != nil {
		panic(err)
	}
	addr := make([]byte, 512)
	n, _ := out.Read(addr) // the address it listens on
	fmt.Println(server.Process.Pid)
	time.Sleep(10 * time.Millisecond)
	c, err := net.Dial(network, string(addr[:n-1]))
	if err != nil {
		panic(err)
	}
	c.Write([]byte("request"))
	c.Read(buf) // waits for the answer
	word.Write([]byte("go"))
	server.Wait()
}
