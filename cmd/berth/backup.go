package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/server"
)

func newBackupCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "backup [CONFIG.yml] [-o FILE|-]",
		Short: "Write a consistent, verified backup of the registry as a tar archive, while it serves",
		Long: `Write the registry's content, from the storage named by the configuration
(the same file and REGISTRY_* variables "berth serve" reads), as a tar
archive to FILE, or to standard output (never to a terminal). A FILE whose
name ends in ".gz" is compressed with gzip.

The archive holds the registry:2 storage layout, paths relative to the
storage root (docker/registry/v2/...): "tar x" into an empty directory
gives a tree registry:2 and berth serve as it is, and "berth restore" puts
it back into any storage driver.

Run it while berth serves, with any storage driver and index: it reads
storage only and takes no lock. Unlike tar of a registry's directory, the
backup is consistent: it reads every repository's tags, then manifests,
then layer links, then the blobs they need, so every tag in it resolves
to a manifest whose blobs are in it, and a push completing meanwhile is in
it for its tag or not at all. Every blob is verified against its digest
as it is read; a blob that is missing or corrupt fails the backup, naming
the repository that needs it, and no archive is left (with -o) or the one
on standard output is left unfinished, which "berth restore" refuses.

Not in the archive: uploads in progress, berth's index (rebuilt on
restore), and blobs no repository references: run backup, not tar, and
those are dropped (as garbage-collect would drop them).`,
		Example: `  berth backup /etc/docker/registry/config.yml -o /backups/registry-$(date +%F).tar.gz
  berth backup config.yml | ssh backup-host 'cat > registry.tar'
  docker exec registry berth backup -o - > registry.tar`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(args)
			if err != nil {
				return err
			}
			return backup(cmd.Context(), cfg, output, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "-", `write the archive to FILE ("-": standard output); gzip if FILE ends in .gz`)
	return cmd
}

func backup(ctx context.Context, cfg *config.Config, output string, stdout, stderr io.Writer) error {
	toStdout := output == "-" || output == ""
	if f, ok := stdout.(*os.File); toStdout && ok && isTerminal(f) {
		return errors.New("backup: refusing to write a tar archive to a terminal: redirect standard output or use -o FILE")
	}
	opts, _, err := offlineOptions(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	var res content.BackupResult
	report := stdout
	if toStdout {
		report = stderr // stdout is the archive
		if res, err = server.Backup(ctx, opts, stdout, content.BackupOptions{}); err != nil {
			return err
		}
	} else {
		b := content.BackupOptions{Gzip: strings.HasSuffix(output, ".gz")}
		err = writeAtomically(output, func(w io.Writer) error {
			res, err = server.Backup(ctx, opts, w, b)
			return err
		})
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(report, "backed up %d repositories, %d tags, %d manifests, %d blobs (%s) from %s storage in %v\n",
		res.Repositories, res.Tags, res.Manifests, res.Blobs, bytesText(res.Bytes), cfg.Storage.Driver(),
		time.Since(start).Round(time.Millisecond))
	if res.Dangling > 0 || res.Skipped > 0 {
		fmt.Fprintf(report, "kept %d links to blobs that are gone, as they were; skipped %d entries no registry can use (see the log)\n",
			res.Dangling, res.Skipped)
	}
	return nil
}

// writeAtomically writes name through a temporary file beside it, renamed
// into place only when write succeeds and the bytes are synced: a failed
// backup leaves no file that looks like one.
func writeAtomically(name string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".partial-")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

func newRestoreCmd() *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "restore [CONFIG.yml] [-i FILE|-]",
		Short: "Restore a backup into empty storage, offline, and rebuild the index",
		Long: `Restore an archive written by "berth backup" (plain or gzip) from FILE, or
from standard input, into the storage named by the configuration (the same
file and REGISTRY_* variables "berth serve" reads), then rebuild the index.

The storage must hold no repository. Any driver will do, whichever the
backup came from: backing up from the filesystem and restoring into S3 or
Swift migrates a registry.

It is offline: berth refuses to run while a berth holds the embedded index
of this configuration. With the PostgreSQL index (berth.index.postgres),
stop every instance sharing the storage first; the shared index is rebuilt
at the end. A read-only configuration is refused.

Every entry is checked before it is written: only blobs and link files at
paths of the registry layout (no absolute paths, "..", links, devices or
uploads); each blob is verified against its digest before it becomes
visible; links are written last, after every blob and only if every
manifest they name, and everything it references, is in the archive. An
archive that was cut short is refused. A restore that stops halfway
leaves blobs nothing links to and no repository: run it again.`,
		Example: `  berth restore /etc/docker/registry/config.yml -i /backups/registry-2025-01-31.tar.gz
  ssh backup-host 'cat registry.tar' | berth restore s3-config.yml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(args)
			if err != nil {
				return err
			}
			return restore(cmd.Context(), cfg, input, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "-", `read the archive from FILE ("-": standard input)`)
	return cmd
}

func restore(ctx context.Context, cfg *config.Config, input string, stdin io.Reader, stdout, stderr io.Writer) error {
	in := stdin
	if input != "-" && input != "" {
		f, err := os.Open(input)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		defer f.Close()
		in = f
	} else if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		return errors.New("restore: standard input is a terminal: pipe the archive in or use -i FILE")
	}
	opts, log, err := offlineOptions(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	where := indexName(opts)
	warnUnseenInstances(log, cfg, opts, "restore")
	start := time.Now()
	res, err := server.Restore(ctx, opts, in)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %d repositories, %d tags, %d manifests, %d blobs (%s) into %s storage in %v\n",
		res.Repositories, res.Tags, res.Manifests, res.Blobs, bytesText(res.Bytes), cfg.Storage.Driver(),
		time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(stdout, "%s rebuilt: %d repositories\n", where, res.Indexed)
	return nil
}
