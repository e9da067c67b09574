package server

import (
	"context"
	"errors"

	"github.com/berth-registry/berth/internal/content"
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
	var res content.GCResult
	err := withOfflineRegistry(ctx, opts, "garbage-collect", "garbage collection is offline, as with registry:2",
		func(reg *content.Registry) (err error) {
			res, err = reg.GarbageCollect(ctx, gc)
			return err
		})
	return res, err
}
