package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/server"
)

func newGarbageCollectCmd() *cobra.Command {
	var gc content.GCOptions
	cmd := &cobra.Command{
		Use:   "garbage-collect [CONFIG.yml]",
		Short: "Delete blobs no manifest needs, offline (registry:2's garbage-collect)",
		Long: `Delete the blobs that no manifest references from the storage named by the
configuration (the same file and REGISTRY_* variables "berth serve" reads),
as "registry garbage-collect" does, with the same flags and output.

It is offline: stop berth first. A blob pushed while it runs is not yet
referenced by any manifest and would be deleted. berth refuses to run while
a berth holds the embedded index of this configuration; it cannot see a
registry:2, or a berth on another host using the same bucket, so make
sure nothing else serves the storage. Storage shared through the PostgreSQL
index (berth.index.postgres) is refused for that reason, as is a read-only
configuration (storage.maintenance.readonly).

Every manifest revision is kept, and everything it references (config,
layers, the manifests of an index, recursively). With --delete-untagged,
only the revisions a tag of their repository reaches are kept: the tagged
ones, the per-platform manifests of a tagged index and the referrers
(signatures, SBOMs: manifests with a subject) of a kept manifest, which
registry:2 deletes. The others are deleted, then every blob nothing kept
references, with the repositories' links to it. Uploads in progress are
not touched.

Storage stays the source of truth: after deleting, the index is rebuilt
from it (as "berth index rebuild" does). A run that stops halfway has
deleted manifests before blobs, so no kept image loses a blob, and leaves
the index to be rebuilt at the next start; run it again to finish.`,
		Example: `  berth garbage-collect --dry-run /etc/docker/registry/config.yml
  berth garbage-collect /etc/docker/registry/config.yml --delete-untagged
  docker stop registry && docker run --rm -v registry-data:/var/lib/registry berth:latest garbage-collect /etc/docker/registry/config.yml -m && docker start registry`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(args)
			if err != nil {
				return err
			}
			return collectGarbage(cmd.Context(), cfg, gc, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVarP(&gc.DryRun, "dry-run", "d", false, "print what would be deleted; delete nothing")
	cmd.Flags().BoolVarP(&gc.DeleteUntagged, "delete-untagged", "m", false, "also delete manifests no tag reaches, and the blobs only they use")
	return cmd
}

func collectGarbage(ctx context.Context, cfg *config.Config, gc content.GCOptions, stdout, stderr io.Writer) error {
	opts, log, err := offlineOptions(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if opts.IndexDSN == "" { // with one, CollectGarbage refuses
		warnUnseenInstances(log, cfg, opts, "garbage-collect")
	}
	gc.Out = stdout
	start := time.Now()
	res, err := server.CollectGarbage(ctx, opts, gc)
	if err != nil {
		return err
	}
	if gc.DryRun {
		fmt.Fprintf(stdout, "dry run: nothing deleted; %d manifests and %d blobs (%s) would be\n",
			len(res.Manifests), len(res.Blobs), bytesText(res.Bytes))
		return nil
	}
	fmt.Fprintf(stdout, "deleted %d manifests and %d blobs, freed %s in %v\n",
		len(res.Manifests), len(res.Blobs), bytesText(res.Bytes), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(stdout, "embedded index %s rebuilt from %s storage: %d repositories\n",
		opts.IndexPath, cfg.Storage.Driver(), res.Repositories)
	return nil
}

// bytesText is n in bytes and, past a KiB, in the largest binary unit.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%d bytes (%.1f %ciB)", n, float64(n)/float64(div), "KMGTP"[exp])
}
