package main

import "sync"

// fanOut runs do for every item on workers goroutines (each gets its index
// w, e.g. to use its own connection) and waits for all of them. A worker
// that fails skips the items it is handed afterwards; the error of the
// lowest-numbered failed worker is returned.
func fanOut[T any](items []T, workers int, do func(w int, item T) error) error {
	next := make(chan T)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range next {
				if errs[w] == nil {
					errs[w] = do(w, it)
				}
			}
		}()
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// indices is 0 … n-1, for fanning out over parallel slices.
func indices(n int) []int {
	is := make([]int, n)
	for i := range is {
		is[i] = i
	}
	return is
}
