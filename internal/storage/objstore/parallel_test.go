package objstore

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

// Parallel runs limit calls at once and no more, runs each index once, and
// returns every error.
func TestParallel(t *testing.T) {
	for _, limit := range []int{1, 3, 8} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			const n = 50
			var started atomic.Int32
			var calls [n]atomic.Int32
			gate := make(chan struct{})
			done := make(chan error)
			go func() {
				done <- Parallel(n, limit, func(i int) error {
					started.Add(1)
					<-gate
					calls[i].Add(1)
					if i%10 == 3 {
						return fmt.Errorf("object %d: %w", i, errBoom)
					}
					return nil
				})
			}()
			// The first limit calls start and block; give any call beyond
			// them every chance to start too before counting.
			for started.Load() < int32(limit) {
				runtime.Gosched()
			}
			for range 1000 {
				runtime.Gosched()
			}
			if s := started.Load(); s != int32(limit) {
				t.Fatalf("%d calls running at once, limit %d", s, limit)
			}
			close(gate)
			err := <-done
			for i := range calls {
				if c := calls[i].Load(); c != 1 {
					t.Fatalf("fn(%d) ran %d times", i, c)
				}
			}
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) || len(joined.Unwrap()) != 5 || !errors.Is(err, errBoom) {
				t.Fatalf("error %v: want the 5 failures joined", err)
			}
		})
	}
}

var errBoom = errors.New("boom")
