package server

import (
	"context"
	"errors"
	"io"

	"github.com/berth-registry/berth/internal/content"
)

// Backup runs content.Registry.Backup over the storage the options name.
// It reads storage only, so it opens no index and takes no lock: it runs
// beside the instances serving the storage, whatever the index.
func Backup(ctx context.Context, opts Options, w io.Writer, b content.BackupOptions) (content.BackupResult, error) {
	driver, err := optsDriver(opts)
	if err != nil {
		return content.BackupResult{}, err
	}
	// No index: Backup never asks one.
	reg := content.New(driver, nil, content.Options{Logger: optsLogger(opts)})
	return reg.Backup(ctx, w, b)
}

// Restore runs content.Registry.Restore into the storage the options name,
// offline: it holds the embedded index's lock throughout, so it refuses to
// run beside a berth using that index, and ends by rebuilding the index,
// embedded or PostgreSQL (as RebuildIndex does). Instances sharing the
// storage through PostgreSQL hold no lock it could see: the caller tells
// the user to stop them.
func Restore(ctx context.Context, opts Options, in io.Reader) (content.RestoreResult, error) {
	if opts.ReadOnly {
		return content.RestoreResult{}, errors.New("restore: storage.maintenance.readonly is enabled: " +
			"run it with a configuration that allows writes")
	}
	var res content.RestoreResult
	err := withOfflineRegistry(ctx, opts, "restore", "restore is offline", func(reg *content.Registry) (err error) {
		res, err = reg.Restore(ctx, in)
		return err
	})
	return res, err
}
