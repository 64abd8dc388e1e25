// Two goroutines each receive on the channel the other would send on; main waits for both.
// A ticker keeps a timer pending, so the runtime never reports "all goroutines are asleep".
package main

import (
	"fmt"
	"os"
	"sync"
	"time"
)

func main() {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	a, b := make(chan int), make(chan int)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); v := <-a; b <- v }()
	go func() { defer wg.Done(); v := <-b; a <- v }()
	go func() {
		for range t.C {
			fmt.Println("tick")
		}
	}()
	fmt.Println(os.Getpid())
	wg.Wait()
}
