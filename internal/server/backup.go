package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index"
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
	log := optsLogger(opts)
	driver, err := optsDriver(opts)
	if err != nil {
		return content.RestoreResult{}, err
	}
	idx, tempDir, err := openIndex(ctx, opts, false, log)
	if errors.Is(err, index.ErrLocked) {
		return content.RestoreResult{}, fmt.Errorf("restore: berth is running on this storage "+
			"(its index is locked): stop it first; restore is offline: %w", err)
	}
	if err != nil {
		return content.RestoreResult{}, err
	}
	defer func() {
		if err := idx.Close(); err != nil {
			log.Warn("restore: the index was not closed cleanly and is rebuilt at the next start", "err", err)
		}
		if tempDir != "" {
			os.RemoveAll(tempDir)
		}
	}()
	reg := content.New(driver, idx, content.Options{Logger: log})
	return reg.Restore(ctx, in)
}

func optsLogger(opts Options) *slog.Logger {
	if opts.Logger != nil {
		return opts.Logger
	}
	return slog.Default()
}
