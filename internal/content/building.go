package content

import (
	"context"
	"fmt"
	"sync/atomic"
)

// An index built in the background (StartRebuild) lets the registry serve
// at once: a large tree takes seconds to minutes to index (and after a
// crash the embedded index is rebuilt), and pulls need no index: a tag or
// digest resolves from storage. What does need the index waits for it:
// manifest writes and deletes, which would race the rebuild's snapshot of
// their repository, and listings, which would be incomplete. Blob uploads
// and reads do not touch the index and go on as usual.
type indexBuild struct {
	building atomic.Bool   // a rebuild is running (or failed): the index is not to be used
	done     chan struct{} // closed when it ends
	err      error         // its failure, once done is closed
}

// RebuildResult is the outcome of a background rebuild.
type RebuildResult struct {
	Repositories int
	Err          error
}

// StartRebuild runs Rebuild in the background and returns at once; the
// channel receives its outcome. Until it has succeeded, requests that need
// the index wait for it (see indexBuild) and pulls resolve from storage
// without writing to the index; if it fails, they fail with its error.
// Cancelling ctx stops it, leaving the index stale (rebuilt at next start).
func (r *Registry) StartRebuild(ctx context.Context) <-chan RebuildResult {
	b := &indexBuild{done: make(chan struct{})}
	b.building.Store(true)
	r.build.Store(b)
	out := make(chan RebuildResult, 1)
	go func() {
		n, err := r.Rebuild(ctx)
		b.err = err
		if err == nil {
			b.building.Store(false)
		}
		close(b.done)
		out <- RebuildResult{n, err}
	}()
	return out
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
