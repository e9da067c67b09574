package content

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Build is an index build running in the background (StartRebuild). It
// lets the registry serve at once: a large tree takes seconds to minutes to index (and after a
// crash the embedded index is rebuilt), and pulls need no index: a tag or
// digest resolves from storage. What does need the index waits for it:
// manifest writes and deletes, which would race the rebuild's snapshot of
// their repository, and listings, which would be incomplete. Blob uploads
// and reads do not touch the index and go on as usual.
//
// It is the one record of the build: the registry reads it to decide
// whether requests wait, the server to stop on a failure and to stop the
// build on shutdown.
type Build struct {
	building atomic.Bool // not (yet) succeeded: the index is not to be used
	cancel   context.CancelFunc
	done     chan struct{} // closed when it ends
	err      error         // its failure, once done is closed
	stopped  atomic.Bool   // Stop was called
}

// ErrBuildStopped is the error of a build ended by Stop: the index stays
// stale and is built again at the next start.
var ErrBuildStopped = errors.New("index build stopped")

// Done is closed when the build has ended.
func (b *Build) Done() <-chan struct{} { return b.done }

// Err is the build's failure once Done is closed (ErrBuildStopped if Stop
// ended it), nil if it succeeded.
func (b *Build) Err() error { return b.err }

// Stop cancels the build and waits for it to end.
func (b *Build) Stop() {
	b.stopped.Store(true)
	b.cancel()
	<-b.done
}

// StartRebuild runs Rebuild in the background and returns at once. Until
// it has succeeded, requests that need the index wait for it and pulls
// resolve from storage without writing to the index; if it fails, they
// fail with its error. It is logged when it starts and ends.
func (r *Registry) StartRebuild(ctx context.Context) *Build {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b := &Build{cancel: cancel, done: make(chan struct{})}
	b.building.Store(true)
	r.build.Store(b)
	start := time.Now()
	r.log.Info("building index from storage in the background: pulls are served meanwhile; manifest pushes and listings wait for it")
	go func() {
		n, err := r.Rebuild(ctx)
		switch {
		case err == nil:
			b.building.Store(false)
			r.log.Info("index built", "repositories", n, "duration", time.Since(start).Round(time.Millisecond))
		case b.stopped.Load():
			err = ErrBuildStopped
			r.log.Info("index build stopped; it starts again at the next start")
		}
		b.err = err
		close(b.done)
	}()
	return b
}

// indexBuilding reports whether a background rebuild has not (yet)
// succeeded: the index must then be neither read nor written.
func (r *Registry) indexBuilding() bool {
	b := r.build.Load()
	return b != nil && b.building.Load()
}

// waitIndex returns once the index can be used: at once unless a
// background rebuild is running, else when it has succeeded. It fails if
// the rebuild failed or ctx ends first.
func (r *Registry) waitIndex(ctx context.Context) error {
	b := r.build.Load()
	if b == nil || !b.building.Load() {
		return nil
	}
	r.waitLog.Do(func() {
		r.logger(ctx).Info("requests that need the index wait for its build")
	})
	r.logger(ctx).Debug("waiting for the index build")
	select {
	case <-b.done:
		if b.err != nil {
			return fmt.Errorf("the index could not be built from storage: %w", b.err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HoldsRepositories reports whether storage holds any repository, which
// decides whether building the index can take long.
func (r *Registry) HoldsRepositories(ctx context.Context) (bool, error) {
	names, err := r.driver.List(ctx, reposRoot())
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("list repositories: %w", err)
	}
	return len(names) > 0, nil
}
