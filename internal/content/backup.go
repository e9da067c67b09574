package content

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// A backup is a tar archive of the storage layout, paths relative to the
// storage root ("docker/registry/v2/..."), so extracting it into an empty
// directory gives a tree registry:2 and berth serve as it is. It holds the
// repositories' link files first, then every blob they need, once.
// Uploads in progress (_uploads) and berth's index are not in it: the
// index is rebuilt on restore.

// BackupOptions configure Backup.
type BackupOptions struct {
	// Gzip compresses the archive (compress/gzip). Restore recognises
	// either.
	Gzip bool
}

// BackupResult counts what a backup holds.
type BackupResult struct {
	Repositories int
	Tags         int
	Manifests    int   // revisions
	Links        int   // link files of every kind, media type sidecars included
	Blobs        int   // blobs written, manifest bodies included
	Bytes        int64 // their size
	// Dangling counts layer links and tag history entries whose blob is
	// gone (registry:2's garbage-collect leaves them): written as they
	// are, without a blob, as in the source.
	Dangling int
	// Skipped counts what storage holds but no registry can use, so
	// restore would refuse it: repositories or tags with invalid names,
	// corrupt links. Each is logged.
	Skipped int
}

// Backup writes a consistent snapshot of the registry to w while it serves.
// It reads storage only (no index, no lock), so it works with every driver
// and beside running instances.
//
// Consistency comes from the order of the reads. For each repository it
// reads tags, then revisions, then layer links: the reverse of the order a
// push writes them, so a tag read here names a revision, and blobs, that
// the later reads see; a push completing meanwhile is in the backup for
// its tag or not at all. Blobs are then read last: they never change, and
// only an offline garbage collection deletes them, so every blob a link
// read earlier needs is still there. Every manifest a tag or revision
// names must be readable, with everything it references (config, layers,
// the children of an index); every blob is verified against its digest as
// it streams. A blob missing or corrupt fails the backup, naming the
// repository that needs it, and the archive is then left unfinished (no
// end-of-archive marker, no gzip trailer), which Restore refuses.
//
// Blobs nothing references are not backed up.
func (r *Registry) Backup(ctx context.Context, w io.Writer, opts BackupOptions) (BackupResult, error) {
	b := &backup{r: r, g: newCollector(r, GCOptions{}, io.Discard),
		linked: make(map[digest.Digest]string), mtime: time.Now().Truncate(time.Second)}
	// Link files are small: buffered, they go out in large writes.
	bw := bufio.NewWriterSize(w, 256<<10)
	var out io.Writer = bw
	var gz *gzip.Writer
	if opts.Gzip {
		gz = gzip.NewWriter(bw)
		out = gz
	}
	b.tw = tar.NewWriter(out)

	var names []string
	// strict: an unreadable directory fails the backup rather than
	// leaving repositories out of it.
	if err := r.findRepositories(ctx, reposRoot(), true, &names); err != nil {
		return BackupResult{}, fmt.Errorf("backup: list repositories: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := ValidateName(name); err != nil {
			r.log.Warn("backup: skipping a repository with an invalid name", "name", name)
			b.res.Skipped++
			continue
		}
		if err := b.repository(ctx, name); err != nil {
			return BackupResult{}, fmt.Errorf("backup: repository %s: %w", name, err)
		}
		b.res.Repositories++
	}
	if err := b.blobs(ctx); err != nil {
		return BackupResult{}, err
	}
	if err := b.tw.Close(); err != nil {
		return BackupResult{}, fmt.Errorf("backup: %w", err)
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return BackupResult{}, fmt.Errorf("backup: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return BackupResult{}, fmt.Errorf("backup: %w", err)
	}
	return b.res, nil
}

// backup is one Backup's state.
type backup struct {
	r     *Registry
	tw    *tar.Writer
	mtime time.Time
	// g marks what tags and revisions need, with the repository first
	// needing each: these blobs must be in the backup.
	g *collector
	// linked holds the blobs only layer links and tag histories name,
	// with the first repository naming each: backed up if present.
	linked map[digest.Digest]string
	res    BackupResult
}

// repository writes a repository's links: tags, then revisions, then layer
// links (see Backup for why in this order).
func (b *backup) repository(ctx context.Context, name string) error {
	done := make(map[digest.Digest]bool) // manifests marked for name
	tags, err := b.r.driver.List(ctx, tagsRoot(name))
	if err != nil && !isNotFound(err) {
		return err
	}
	slices.Sort(tags)
	for _, dir := range tags {
		tag := path.Base(dir)
		if ValidateTag(tag) != nil {
			b.r.log.Warn("backup: skipping a tag with an invalid name", "repo", name, "tag", tag)
			b.res.Skipped++
			continue
		}
		d, ok, err := b.link(ctx, tagCurrentLinkPath(name, tag), "")
		if err != nil || !ok {
			return err // not ok: deleted meanwhile, or corrupt
		}
		b.res.Tags++
		if err := b.g.markManifest(ctx, name, d, done); err != nil {
			return err
		}
		// The history after current: setTag writes it first.
		err = b.links(ctx, path.Join(dir, "index"), func(d digest.Digest) string { return tagIndexLinkPath(name, tag, d) },
			func(d digest.Digest) error { b.link1(name, d); return nil })
		if err != nil {
			return err
		}
	}
	err = b.links(ctx, revisionsRoot(name), func(d digest.Digest) string { return revisionLinkPath(name, d) },
		func(d digest.Digest) error {
			b.res.Manifests++
			// The sidecar after the link: PutManifest writes it first.
			mt, err := b.r.driver.GetContent(ctx, revisionMediaTypePath(name, d))
			switch {
			case isNotFound(err):
			case err != nil:
				return err
			case validSidecar(mt):
				if err := b.file(revisionMediaTypePath(name, d), mt); err != nil {
					return err
				}
			default:
				b.r.log.Warn("backup: skipping an invalid media type sidecar", "repo", name, "digest", d)
				b.res.Skipped++
			}
			return b.g.markManifest(ctx, name, d, done)
		})
	if err != nil {
		return err
	}
	return b.links(ctx, path.Join(repoPath(name), "_layers"), func(d digest.Digest) string { return layerLinkPath(name, d) },
		func(d digest.Digest) error { b.link1(name, d); return nil })
}

// link1 notes a blob named by a link that does not require it.
func (b *backup) link1(repo string, d digest.Digest) {
	if _, ok := b.linked[d]; !ok {
		b.linked[d] = repo
	}
}

// links writes the links of a <dir>/<alg>/<hex>/link tree (revisions,
// layer links, a tag's history), in digest order, calling each for every
// one written. linkPath is where the layout puts the link of a digest.
func (b *backup) links(ctx context.Context, dir string, linkPath func(digest.Digest) string, each func(digest.Digest) error) error {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		entries, err := b.r.driver.List(ctx, path.Join(dir, string(alg)))
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		slices.Sort(entries)
		for _, e := range entries {
			d := digest.NewDigestFromEncoded(alg, path.Base(e))
			if d.Validate() != nil {
				continue
			}
			_, ok, err := b.link(ctx, linkPath(d), d)
			if err != nil {
				return err
			}
			if ok {
				if err := each(d); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// link reads the link at p and writes it, reporting its digest; ok is false
// for a link that is gone (deleted meanwhile, or a directory without one)
// or corrupt (logged: registry:2 cannot use it either). A link named by a
// digest (want) must hold that digest.
func (b *backup) link(ctx context.Context, p string, want digest.Digest) (_ digest.Digest, ok bool, _ error) {
	d, err := b.r.readLink(ctx, p)
	switch {
	case isNotFound(err):
		return "", false, nil
	case err == nil:
		if _, perr := ParseDigest(string(d)); perr != nil || (want != "" && d != want) {
			err = fmt.Errorf("%w %s: holds %s", errCorruptLink, p, d)
		}
	}
	if errors.Is(err, errCorruptLink) {
		b.r.log.Warn("backup: skipping a corrupt link", "path", p, "err", err)
		b.res.Skipped++
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if err := b.file(p, []byte(d)); err != nil {
		return "", false, err
	}
	b.res.Links++
	return d, true, nil
}

// file writes a small object read from storage path p.
func (b *backup) file(p string, body []byte) error {
	if _, err := parseLayoutPath(p); err != nil {
		return fmt.Errorf("%s: %w", p, err) // restore would refuse it: a bug here
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(p, "/"), Mode: 0o644,
		Size: int64(len(body)), ModTime: b.mtime}
	if err := b.tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := b.tw.Write(body)
	return err
}

// blobs writes every blob the links need, once, in digest order: those a
// tag or revision needs must be there; those only a layer link or a tag's
// history names may be gone.
func (b *backup) blobs(ctx context.Context) error {
	all := make([]digest.Digest, 0, len(b.g.marked)+len(b.linked))
	for d := range b.g.marked {
		all = append(all, d)
	}
	for d := range b.linked {
		if _, ok := b.g.marked[d]; !ok {
			all = append(all, d)
		}
	}
	slices.Sort(all)
	for _, d := range all {
		repo, required := b.g.marked[d]
		if !required {
			repo = b.linked[d]
		}
		err := b.blob(ctx, d)
		if isNotFound(err) && !required {
			b.r.log.Warn("backup: a link names a blob that is gone; kept as it is", "repo", repo, "digest", d)
			b.res.Dangling++
			continue
		}
		if err != nil {
			return fmt.Errorf("backup: blob %s of %s: %w", d, repo, err)
		}
	}
	return nil
}

// blob streams one blob into the archive, verifying its digest on the way.
// The header goes out before the bytes are verified (they are read once),
// so on a mismatch the archive is abandoned unfinished.
func (b *backup) blob(ctx context.Context, d digest.Digest) error {
	p := blobDataPath(d)
	fi, err := b.r.driver.Stat(ctx, p)
	if err != nil {
		return err
	}
	rc, err := b.r.driver.Reader(ctx, p, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(p, "/"), Mode: 0o644,
		Size: fi.Size, ModTime: b.mtime}
	if err := b.tw.WriteHeader(hdr); err != nil {
		return err
	}
	h := d.Algorithm().Hash()
	n, err := io.Copy(b.tw, io.TeeReader(io.LimitReader(rc, fi.Size), h))
	if err != nil {
		return err
	}
	if n != fi.Size {
		return fmt.Errorf("read %d of its %d bytes: %w", n, fi.Size, io.ErrUnexpectedEOF)
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		return fmt.Errorf("its content has digest %s: the stored blob is corrupt", got)
	}
	b.res.Blobs++
	b.res.Bytes += n
	return nil
}
