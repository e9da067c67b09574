package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index"
	"github.com/berth-registry/berth/internal/index/postgres"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/filesystem"
)

// closableIndex is what the server keeps: an index it closes on shutdown.
type closableIndex interface {
	content.Index
	Close() error
}

// openIndex opens the index the options name: PostgreSQL if IndexDSN is
// set, else the embedded bbolt file (in a temporary directory, returned for
// removal, when nothing else persists either).
func openIndex(ctx context.Context, opts Options, readOnly bool, log *slog.Logger) (closableIndex, string, error) {
	if opts.IndexDSN != "" {
		idx, err := postgres.Open(ctx, postgres.Options{
			DSN:      opts.IndexDSN,
			ReadOnly: readOnly,
			MaxConns: int32(opts.IndexMaxConns),
			Logger:   log,
		})
		if err != nil {
			return nil, "", err
		}
		return idx, "", nil
	}
	idxPath := opts.IndexPath
	var tempDir string
	switch {
	case idxPath != "":
	case opts.RootDirectory != "":
		idxPath = filepath.Join(opts.RootDirectory, "berth", "index.db")
	default:
		// Nothing persists (in-memory storage), so neither does the index.
		dir, err := os.MkdirTemp("", "berth-index-")
		if err != nil {
			return nil, "", fmt.Errorf("index: %w", err)
		}
		tempDir, idxPath = dir, filepath.Join(dir, "index.db")
	}
	idx, err := index.Open(idxPath)
	if err != nil {
		if tempDir != "" {
			os.RemoveAll(tempDir)
		}
		return nil, "", err
	}
	return idx, tempDir, nil
}

// prepareIndex makes the index match storage, or starts making it match.
//
// The embedded index is rebuilt when it is new or was not closed cleanly:
// before serving if storage is empty (nothing to read), else in the
// background (content.Registry.StartRebuild: pulls are served from storage
// meanwhile, and what needs the index waits for it); the build is then
// returned, to be watched and stopped by the server.
//
// The PostgreSQL index is shared, so no one instance's shutdown says
// anything about it. A writable instance builds it once, when it has never
// been built (the first start over an existing tree, or a registry:2
// bucket): instances starting together take turns, and one builds. It then
// repairs tag changes some instance left unfinished (content.TagLocker). A
// read-only instance never writes to it: no build, no repair.
func prepareIndex(ctx context.Context, idx closableIndex, reg *content.Registry, opts Options, log *slog.Logger) (*content.Build, error) {
	rebuild := func(ctx context.Context, what string) error {
		start := time.Now()
		log.Info("building index from storage", "index", what)
		n, err := reg.Rebuild(ctx)
		if err != nil {
			return err
		}
		log.Info("index built", "repositories", n, "duration", time.Since(start).Round(time.Millisecond))
		return nil
	}
	switch x := idx.(type) {
	case *index.Bolt:
		if !x.Stale() {
			return nil, nil
		}
		held, err := reg.HoldsRepositories(ctx)
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		if !held {
			return nil, rebuild(ctx, "embedded")
		}
		return reg.StartRebuild(ctx), nil
	case *postgres.Index:
		if opts.ReadOnly {
			built, _, err := x.Built(ctx)
			if err != nil {
				return nil, err
			}
			if !built {
				log.Warn("the shared index has never been built from storage, and a read-only instance does not build it: " +
					"catalog and tag lists stay empty until a writable instance starts or `berth index rebuild` runs " +
					"(pulls by tag or digest still work: they fall back to storage)")
			}
			return nil, nil
		}
		// Shared: other instances write to it while this one would build
		// it, so the build is done (once, by one of them) before serving.
		if _, err := x.EnsureBuilt(ctx, func(ctx context.Context) error { return rebuild(ctx, "postgres") }); err != nil {
			return nil, err
		}
		n, err := reg.RepairTags(ctx)
		if err != nil {
			return nil, fmt.Errorf("index: repair unfinished tag changes: %w", err)
		}
		if n > 0 {
			log.Info("index: re-read unfinished tag changes from storage", "tags", n)
		}
	}
	return nil, nil
}

// RebuildIndex rebuilds the index the options name from storage, whatever
// its state, and reports how many repositories it holds. With a shared
// (PostgreSQL) index this is safe while other instances serve reads; a
// change they make while the rebuild walks storage may be missing from the
// result (an index miss falls back to storage, and the next change of that
// tag or manifest writes it again), so prefer a quiet moment.
func RebuildIndex(ctx context.Context, opts Options) (int, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	driver, err := optsDriver(opts)
	if err != nil {
		return 0, err
	}
	// Explicitly asked for, so the index opens writable even when the
	// configuration is read-only.
	idx, tempDir, err := openIndex(ctx, opts, false, log)
	if err != nil {
		return 0, err
	}
	defer func() {
		idx.Close()
		if tempDir != "" {
			os.RemoveAll(tempDir)
		}
	}()
	reg := content.New(driver, idx, content.Options{Logger: log})
	return reg.Rebuild(ctx)
}

// optsDriver is the options' driver, or the filesystem at RootDirectory.
func optsDriver(opts Options) (storage.Driver, error) {
	if opts.Driver != nil {
		return opts.Driver, nil
	}
	fs, err := filesystem.New(opts.RootDirectory)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return fs, nil
}
