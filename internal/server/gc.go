package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index"
)

// CollectGarbage runs content.Registry.GarbageCollect over the storage the
// options name, offline: it holds the embedded index's lock from before
// the mark to after the index is rebuilt, so no berth using that index
// serves the storage meanwhile, and refuses what it cannot make safe.
func CollectGarbage(ctx context.Context, opts Options, gc content.GCOptions) (content.GCResult, error) {
	if opts.IndexDSN != "" {
		return content.GCResult{}, errors.New("garbage-collect: storage shared through the PostgreSQL index " +
			"(berth.index.postgres) is not supported yet: berth cannot prove that every instance serving it is stopped, " +
			"and a blob pushed while the collection runs would be deleted")
	}
	if opts.ReadOnly {
		return content.GCResult{}, errors.New("garbage-collect: storage.maintenance.readonly is enabled: " +
			"garbage collection deletes from storage; run it with a configuration that allows writes")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	driver, err := optsDriver(opts)
	if err != nil {
		return content.GCResult{}, err
	}
	idx, tempDir, err := openIndex(ctx, opts, false, log)
	if errors.Is(err, index.ErrLocked) {
		return content.GCResult{}, fmt.Errorf("garbage-collect: berth is running on this storage "+
			"(its index is locked): stop it first; garbage collection is offline, as with registry:2: %w", err)
	}
	if err != nil {
		return content.GCResult{}, err
	}
	defer func() {
		if err := idx.Close(); err != nil {
			log.Warn("garbage-collect: the index was not closed cleanly and is rebuilt at the next start", "err", err)
		}
		if tempDir != "" {
			os.RemoveAll(tempDir)
		}
	}()
	reg := content.New(driver, idx, content.Options{Logger: log})
	return reg.GarbageCollect(ctx, gc)
}
