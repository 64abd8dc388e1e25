// The inventory goroutine locks the store and hands a count to a channel only main receives;
// main locks the store first (sync.Mutex.Lock is inlined into its caller), then would
// receive. A ticker goroutine keeps a timer pending, so the runtime never reports it.
package main

import (
	"fmt"
	"os"
	"sync"
	"time"
)

type store struct {
	mu    sync.Mutex
	items int
}

func (s *store) audit(counts chan int) {
	s.mu.Lock()
	counts <- s.items
	s.mu.Unlock()
}

func main() {
	go func() {
		t := time.NewTicker(time.Hour)
		for range t.C {
		}
	}()
	s := &store{items: 3}
	counts := make(chan int)
	ready := make(chan struct{})
	go func() { close(ready); s.audit(counts) }()
	<-ready
	time.Sleep(50 * time.Millisecond)
	fmt.Println(os.Getpid())
	s.mu.Lock()
	fmt.Println(<-counts)
}
