// The loader locks the cache and returns on an error path without unlocking it; two readers
// then wait for the cache's mutex, which no goroutine holds any more: a stall, not a cycle.
// A ticker keeps a timer pending, so the runtime never reports "all goroutines are asleep".
package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

type cache struct {
	mu   sync.Mutex
	data map[string]int
}

func (c *cache) load() error {
	c.mu.Lock()
	if c.data == nil {
		return errors.New("no data") // forgets c.mu.Unlock()
	}
	c.mu.Unlock()
	return nil
}

func (c *cache) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data[k]
}

func main() {
	go func() {
		for range time.Tick(time.Hour) {
		}
	}()
	c := &cache{}
	_ = c.load()
	var wg sync.WaitGroup
	for _, k := range []string{"a", "b"} {
		wg.Add(1)
		go func(k string) { defer wg.Done(); fmt.Println(c.get(k)) }(k)
	}
	time.Sleep(50 * time.Millisecond)
	fmt.Println(os.Getpid())
	wg.Wait()
}
