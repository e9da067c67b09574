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

// withOfflineRegistry runs fn on a registry over the storage and index the
// options name, for the commands that must run with no berth serving
// (garbage-collect, restore). Opening the embedded index takes its lock,
// held until fn returns, so no berth using that index can start meanwhile;
// one already running makes it refuse, naming what (the command) and why it
// is offline.
func withOfflineRegistry(ctx context.Context, opts Options, what, why string, fn func(*content.Registry) error) error {
	log := optsLogger(opts)
	driver, err := optsDriver(opts)
	if err != nil {
		return err
	}
	idx, tempDir, err := openIndex(ctx, opts, false, log)
	if errors.Is(err, index.ErrLocked) {
		return fmt.Errorf("%s: berth is running on this storage (its index is locked): stop it first; %s: %w", what, why, err)
	}
	if err != nil {
		return err
	}
	defer func() {
		if err := idx.Close(); err != nil {
			log.Warn(what+": the index was not closed cleanly and is rebuilt at the next start", "err", err)
		}
		if tempDir != "" {
			os.RemoveAll(tempDir)
		}
	}()
	return fn(content.New(driver, idx, content.Options{Logger: log}))
}

func optsLogger(opts Options) *slog.Logger {
	if opts.Logger != nil {
		return opts.Logger
	}
	return slog.Default()
}
