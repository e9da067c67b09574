package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/server"
)

func newIndexCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "index",
		Short: "Manage berth's metadata index",
		Long: `berth keeps repositories, tags, manifests and referrers in an index beside
the storage layout, so catalog and tag lists never walk storage. The
storage layout stays the source of truth: the index can be rebuilt from
it at any time.`,
		Example: `  berth index rebuild /etc/docker/registry/config.yml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newIndexRebuildCmd())
	return cmd
}

func newIndexRebuildCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rebuild [CONFIG.yml]",
		Short: "Rebuild the index from the storage layout",
		Long: `Rebuild the metadata index from the storage layout named by the
configuration (the same file and REGISTRY_* variables "berth serve" reads).

berth does this by itself when it needs to: the embedded index after an
unclean shutdown, the PostgreSQL index (berth.index.postgres) on the first
start of a writable instance over existing storage. Run it by hand after
changing storage behind berth's back (restoring a backup, copying
repositories in with other tools), or to build a shared index before
starting read-only instances, which never write to it.

The embedded index is locked by a running berth: stop it first. The
PostgreSQL index can be rebuilt while instances serve; a push that
completes while the rebuild walks storage may be missing from the result
until it is read (an index miss falls back to storage) or pushed again, so
prefer a quiet moment.`,
		Example: `  berth index rebuild /etc/docker/registry/config.yml
  REGISTRY_BERTH_INDEX_POSTGRES_DSN=postgres://berth@db/berth berth index rebuild config.yml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(args)
			if err != nil {
				return err
			}
			return rebuildIndex(cmd.Context(), cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

func rebuildIndex(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) error {
	opts, _, err := offlineOptions(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	where := indexName(opts)
	start := time.Now()
	n, err := server.RebuildIndex(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s rebuilt from %s storage: %d repositories in %v\n",
		where, cfg.Storage.Driver(), n, time.Since(start).Round(time.Millisecond))
	return nil
}

// loadConfig reads the configuration a command names: its argument, else
// REGISTRY_CONFIGURATION_PATH, then the REGISTRY_* variables, as
// registry:2 does.
func loadConfig(args []string) (*config.Config, error) {
	path := config.PathFromEnv(os.Environ())
	if len(args) == 1 {
		path = args[0]
	}
	return config.Load(path, os.Environ())
}

// offlineOptions prepares a command that works on the storage with no
// server (index rebuild, garbage-collect): its logger, the same refusals
// and privilege drop as serve, and the storage and index settings.
func offlineOptions(ctx context.Context, cfg *config.Config, stderr io.Writer) (server.Options, *slog.Logger, error) {
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return server.Options{}, nil, err
	}
	if err := refuseUnsafe(cfg); err != nil {
		return server.Options{}, nil, err
	}
	if err := dropPrivileges(cfg, log); err != nil {
		return server.Options{}, nil, err
	}
	driver, err := newDriver(ctx, cfg, log)
	if err != nil {
		return server.Options{}, nil, err
	}
	opts := server.Options{Driver: driver, IndexPath: cfg.IndexPath(), Logger: log,
		ReadOnly: cfg.Storage.Maintenance.ReadOnly.Enabled}
	if cfg.Storage.Filesystem != nil {
		opts.RootDirectory = cfg.Storage.Filesystem.RootDirectory
	}
	if pg := cfg.Berth.Index.Postgres; pg != nil {
		opts.IndexDSN, opts.IndexMaxConns = pg.DSN, pg.MaxConns
	}
	return opts, log, nil
}

// indexName says which index the options name, for messages.
func indexName(opts server.Options) string {
	if opts.IndexDSN != "" {
		return "PostgreSQL index"
	}
	return "embedded index " + opts.IndexPath
}

// warnUnseenInstances says, before an offline command writes to object
// storage, what its refusal to run beside berth cannot see: a berth on
// another host, or with another index, serving the same bucket.
func warnUnseenInstances(log *slog.Logger, cfg *config.Config, opts server.Options, what string) {
	switch d := cfg.Storage.Driver(); {
	case opts.IndexDSN != "":
		log.Warn(what + ": the PostgreSQL index holds no lock this command can see: make sure every berth sharing this storage is stopped")
	case d == "s3" || d == "swift":
		log.Warn(what + ": the index lock only shows that no berth using " + opts.IndexPath +
			" runs; make sure no other registry serves this " + d + " storage")
	}
}
