// The printer goroutine stops at the first empty line; main keeps sending lines to it on an
// unbuffered channel. A heartbeat goroutine logs every hour, so a timer stays pending and the
// runtime never reports "all goroutines are asleep".
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	go func() {
		beat := time.NewTicker(time.Hour)
		for range beat.C {
			fmt.Fprintln(os.Stderr, "alive")
		}
	}()
	lines := make(chan string)
	go func() {
		for l := range lines {
			if l == "" {
				return
			}
			fmt.Println(len(l))
		}
	}()
	fmt.Println(os.Getpid())
	for _, l := range []string{"a", "", "b", "c"} {
		lines <- l
	}
}
