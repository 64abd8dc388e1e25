// Seed 002's Go side: writes a whole batch of requests to the engine (argv[1]) before reading
// any notification. Go writes pipes without blocking a thread: the goroutine parks.
package main

import (
	"fmt"
	"os"
	"os/exec"
)

func main() {
	// The C engine: reads requests on stdin, writes a large notification per request.
	cmd := exec.Command(os.Args[1])
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	fmt.Println(os.Getpid(), cmd.Process.Pid)
	req := make([]byte, 512)
	for i := 0; i < 100000; i++ { // the whole batch before reading notifications
		if _, err := in.Write(req); err != nil {
			panic(err)
		}
	}
	buf := make([]byte, 8192)
	for {
		if _, err := out.Read(buf); err != nil {
			return
		}
	}
}
