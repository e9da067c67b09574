package objstore

import (
	"errors"
	"sync"
)

// Parallel calls fn(0) … fn(n-1), at most limit at a time, and returns
// every error they returned, joined. Object stores answer one request per
// object (HEAD, DELETE, a part copy); running a few at once is what makes
// operations on many objects bearable, and bounding them keeps a large
// directory from opening hundreds of connections.
func Parallel(n, limit int, fn func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
