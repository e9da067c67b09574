package content

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

// RestoreResult counts what Restore wrote.
type RestoreResult struct {
	Repositories int
	Tags         int
	Manifests    int // revisions
	Blobs        int
	Bytes        int64 // the blobs' size
	Indexed      int   // repositories in the rebuilt index
}

// ErrNotEmpty refuses to restore into storage that holds repositories.
var ErrNotEmpty = errors.New("the storage already holds repositories: restore only into empty storage")

// maxLinkSize bounds a link or media type file in an archive; a sha512
// link is 135 bytes.
const maxLinkSize = 1024

// restoreStaging is where Restore writes a blob until its digest is
// verified: outside the registry layout, beside berth's index, so nothing
// ever reads a partial or corrupt blob, and the next restore clears what
// an interrupted one left.
const restoreStaging = "/berth/restore"

// Restore writes an archive made by Backup (plain or gzip, told apart by
// its first bytes) into this registry's storage, which must hold no
// repository, then rebuilds the index. Nothing else may write to the
// storage meanwhile; the caller makes sure of it.
//
// Every entry must be a regular file at a path of the layout (see
// parseLayoutPath): anything else (absolute paths, "..", links, devices,
// uploads, files outside docker/registry/v2) fails the restore. Blobs
// stream through the driver's Writer to a staging object, are verified
// against the digest their path names and only then moved into place.
// Links, small, are kept aside in a temporary file and written after every
// blob, once every manifest they name and what it references are known to
// be restored: an interrupted restore leaves blobs nothing links to, never
// a tag or revision naming a missing blob. An archive without tar's
// end-of-archive marker (a backup that failed or was cut short) is refused
// before any link is written.
func (r *Registry) Restore(ctx context.Context, in io.Reader) (RestoreResult, error) {
	if err := r.checkWritable(); err != nil {
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	held, err := r.HoldsRepositories(ctx)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	if held {
		return RestoreResult{}, fmt.Errorf("restore: %w", ErrNotEmpty)
	}
	// Stale until the rebuild at the end, so an interrupted restore is
	// indexed afresh at the next start.
	if err := r.invalidateIndex(ctx); err != nil {
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	if err := r.driver.Delete(ctx, restoreStaging); err != nil && !isNotFound(err) {
		return RestoreResult{}, fmt.Errorf("restore: clear %s: %w", restoreStaging, err)
	}
	defer func() {
		if err := r.driver.Delete(context.WithoutCancel(ctx), restoreStaging); err != nil && !isNotFound(err) {
			r.log.Warn("restore: cannot remove the staging directory", "path", restoreStaging, "err", err)
		}
	}()
	spool, err := os.CreateTemp("", "berth-restore-links-")
	if err != nil {
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()

	rs := &restorer{r: r, spool: bufio.NewWriter(spool), restored: make(map[digest.Digest]bool)}
	if err := rs.read(ctx, in); err != nil {
		return RestoreResult{}, err
	}
	if err := rs.spool.Flush(); err != nil {
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	if err := rs.check(ctx, spool); err != nil {
		return RestoreResult{}, err
	}
	// Revisions before tags, a tag's history before its current link, as
	// a push writes them.
	repos := make(map[string]bool)
	for _, kinds := range [][]entryKind{{entryLayerLink, entryMediaType, entryRevisionLink}, {entryTagHistory}, {entryTagLink}} {
		err := replay(spool, func(p string, e layoutEntry, value string) error {
			if !slices.Contains(kinds, e.kind) {
				return nil
			}
			if err := r.driver.PutContent(ctx, p, []byte(value)); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			repos[e.repo] = true
			switch e.kind {
			case entryRevisionLink:
				rs.res.Manifests++
			case entryTagLink:
				rs.res.Tags++
			}
			return nil
		})
		if err != nil {
			return RestoreResult{}, err
		}
	}
	rs.res.Repositories = len(repos)
	n, err := r.Rebuild(ctx)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("restore: storage restored, but %w (the index stays stale and is rebuilt at the next start)", err)
	}
	rs.res.Indexed = n
	return rs.res, nil
}

// restorer is one Restore's state.
type restorer struct {
	r        *Registry
	spool    *bufio.Writer // "<path> <content>" lines, one per link or sidecar
	restored map[digest.Digest]bool
	res      RestoreResult
}

// read restores the archive's blobs and spools its links.
func (rs *restorer) read(ctx context.Context, in io.Reader) error {
	br := bufio.NewReader(in)
	var src io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		defer gz.Close()
		src = gz
	}
	cr := &countingReader{r: src}
	tr := tar.NewReader(cr)
	for {
		before := cr.n
		hdr, err := tr.Next()
		if err == io.EOF {
			// archive/tar also stops at a bare end of input, where a
			// backup that failed or was cut short ends: a finished one
			// ends with two zero blocks.
			if cr.n-before < 2*512 {
				return errors.New("restore: the archive has no end-of-archive marker: " +
					"the backup failed or was cut short; nothing was linked")
			}
			// To the end, so gzip checks its trailer.
			if _, err := io.Copy(io.Discard, src); err != nil {
				return fmt.Errorf("restore: read archive: %w", err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("restore: read archive: %w", err)
		}
		if err := rs.entry(ctx, hdr, tr); err != nil {
			return fmt.Errorf("restore: entry %s: %w", hdr.Name, err)
		}
	}
}

// entry restores one archive entry: a blob now, a link into the spool.
func (rs *restorer) entry(ctx context.Context, hdr *tar.Header, body io.Reader) error {
	if strings.HasPrefix(hdr.Name, "/") {
		return errors.New("absolute path")
	}
	p := "/" + strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")
	if hdr.Typeflag == tar.TypeDir {
		// Directories come with files (tar c makes them); nothing to do
		// for one, but one outside the layout shows a foreign archive.
		if p == "/docker" || p == "/docker/registry" || p == rootPath ||
			strings.HasPrefix(p, rootPath+"/") && storage.CheckPath(p) == nil {
			return nil
		}
		return errNotLayout
	}
	if hdr.Typeflag != tar.TypeReg {
		return fmt.Errorf("not a regular file (tar type %q): a backup holds only files", hdr.Typeflag)
	}
	e, err := parseLayoutPath(p)
	if err != nil {
		return err
	}
	if e.kind == entryBlob {
		return rs.blob(ctx, e.digest, body, hdr.Size)
	}
	if hdr.Size > maxLinkSize {
		return fmt.Errorf("%d bytes: too large for a link file (at most %d)", hdr.Size, maxLinkSize)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	value := strings.TrimSpace(string(b))
	if e.kind == entryMediaType {
		if !validSidecar([]byte(value)) {
			return errors.New("not a media type")
		}
	} else {
		d, err := ParseDigest(value)
		if err != nil {
			return fmt.Errorf("not a link: %w", err)
		}
		if e.digest != "" && d != e.digest {
			return fmt.Errorf("links to %s, not to the digest its path names", d)
		}
	}
	// Path and value hold no spaces or newlines (CheckPath's alphabet, a
	// digest, validSidecar).
	_, err = fmt.Fprintf(rs.spool, "%s %s\n", p, value)
	return err
}

// blob streams a blob to the staging area, verifies it against d and
// moves it into place; a mismatch leaves nothing of it behind.
func (rs *restorer) blob(ctx context.Context, d digest.Digest, body io.Reader, size int64) error {
	tmp := path.Join(restoreStaging, string(d.Algorithm()), d.Encoded())
	w, err := rs.r.driver.Writer(ctx, tmp, false)
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	h := d.Algorithm().Hash()
	_, err = io.Copy(w, io.TeeReader(body, h))
	if err == nil {
		if got := digest.NewDigest(d.Algorithm(), h); got != d {
			err = fmt.Errorf("its bytes have digest %s: the archive is corrupt", got)
		}
	}
	if err == nil {
		err = w.Commit(ctx)
	}
	if err != nil {
		w.Cancel(context.WithoutCancel(ctx))
		w.Close()
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if err := rs.r.driver.Move(ctx, tmp, blobDataPath(d)); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	rs.restored[d] = true
	rs.res.Blobs++
	rs.res.Bytes += size
	return nil
}

// check makes sure, before any link is written, that every manifest a tag
// or revision names was restored with everything it references (marked as
// garbage collection marks, reading the restored manifests).
func (rs *restorer) check(ctx context.Context, spool *os.File) error {
	g := newCollector(rs.r, GCOptions{}, io.Discard)
	done := make(map[digest.Digest]bool)
	err := replay(spool, func(_ string, e layoutEntry, value string) error {
		if e.kind != entryRevisionLink && e.kind != entryTagLink {
			return nil
		}
		if err := g.markManifest(ctx, e.repo, digest.Digest(value), done); err != nil {
			return fmt.Errorf("restore: repository %s: %w", e.repo, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var missing []digest.Digest
	for d := range g.marked {
		if !rs.restored[d] {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("restore: the archive is incomplete: blob %s of %s is not in it (%d missing); nothing was linked",
			missing[0], g.marked[missing[0]], len(missing))
	}
	return nil
}

// replay calls each for every spooled line, in the order spooled.
func replay(spool *os.File, each func(p string, e layoutEntry, value string) error) error {
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	sc := bufio.NewScanner(spool)
	for sc.Scan() {
		p, value, _ := strings.Cut(sc.Text(), " ")
		e, err := parseLayoutPath(p) // checked when spooled
		if err != nil {
			return fmt.Errorf("restore: %s: %w", p, err)
		}
		if err := each(p, e, value); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
