package content

import (
	"context"
	"crypto/sha256"
	"encoding"
	"fmt"
	"hash"
	"io"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

// Upload is the state of a blob upload in progress.
type Upload struct {
	ID        string
	Repo      string
	Size      int64
	StartedAt time.Time
}

// An upload lives entirely in storage (data, start time, and the sha256 state
// after each chunk), so any berth instance can continue it and a restart
// loses nothing. The digest is computed while the bytes stream in; the saved
// hash state lets the next chunk continue hashing without re-reading what is
// already stored.

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// rehashLimit is the upload size up to which no hash state is stored: the
// next chunk rehashes the stored bytes instead (under a millisecond of
// CPU), which is cheaper than creating and later deleting the state's
// files and directories, the configs and small layers of every push.
const rehashLimit = 1 << 20

func validateUploadID(id string) error {
	if len(id) != 36 {
		return newError(CodeBlobUploadUnknown, "upload %q unknown", truncate(id))
	}
	if _, err := uuid.Parse(id); err != nil {
		return newError(CodeBlobUploadUnknown, "upload %q unknown", truncate(id))
	}
	return nil
}

// StartUpload begins a new upload in repo.
func (r *Registry) StartUpload(ctx context.Context, repo string) (Upload, error) {
	if err := r.checkWritable(); err != nil {
		return Upload{}, err
	}
	if err := ValidateName(repo); err != nil {
		return Upload{}, err
	}
	u := Upload{ID: uuid.NewString(), Repo: repo, StartedAt: time.Now().UTC()}
	stamp := []byte(u.StartedAt.Format(time.RFC3339Nano))
	// Losing the marker in a crash only makes the client start over: no
	// data was acknowledged yet, so it need not be synced.
	if err := r.putScratch(ctx, uploadStartedAtPath(repo, u.ID), stamp); err != nil {
		return Upload{}, fmt.Errorf("start upload in %s: %w", repo, err)
	}
	return u, nil
}

// UploadStatus reports how many bytes an upload holds.
func (r *Registry) UploadStatus(ctx context.Context, repo, id string) (Upload, error) {
	if err := ValidateName(repo); err != nil {
		return Upload{}, err
	}
	if err := validateUploadID(id); err != nil {
		return Upload{}, err
	}
	u := Upload{ID: id, Repo: repo}
	stamp, stampErr := r.driver.GetContent(ctx, uploadStartedAtPath(repo, id))
	if stampErr != nil && !isNotFound(stampErr) {
		return Upload{}, fmt.Errorf("upload %s status: %w", id, stampErr)
	}
	fi, err := r.driver.Stat(ctx, uploadDataPath(repo, id))
	switch {
	case err == nil:
		u.Size = fi.Size
	case !isNotFound(err):
		return Upload{}, fmt.Errorf("upload %s status: %w", id, err)
	case stampErr != nil:
		return Upload{}, newError(CodeBlobUploadUnknown, "upload %s unknown to repository %s", id, repo)
	}
	// The start marker is not synced (StartUpload): after a crash an upload
	// whose acknowledged bytes survived may have lost it, and still exists.
	if stampErr == nil {
		u.StartedAt, _ = time.Parse(time.RFC3339Nano, string(stamp))
	} else {
		u.StartedAt = fi.ModTime
	}
	return u, nil
}

// AppendUpload streams body onto the end of an upload. start is where the
// client says the chunk begins (-1 when it did not say); a chunk that does
// not begin exactly at the current end is refused with ErrRangeInvalid and
// nothing is written. If body fails midway (a client disconnect), what
// arrived is kept and the upload can be resumed from its new size.
func (r *Registry) AppendUpload(ctx context.Context, repo, id string, start int64, body io.Reader) (Upload, error) {
	if err := r.checkWritable(); err != nil {
		return Upload{}, err
	}
	unlock := r.uploadLocks.lock(repo + "/" + id)
	defer unlock()
	u, err := r.UploadStatus(ctx, repo, id)
	if err != nil {
		return Upload{}, err
	}
	if start >= 0 && start != u.Size {
		return u, newError(CodeRangeInvalid, "chunk starts at %d but upload %s holds %d bytes", start, id, u.Size)
	}
	w, h, err := r.openUpload(ctx, repo, id, u.Size)
	if err != nil {
		return u, err
	}
	before := w.Size()
	hashed, cerr := r.copyHashed(w, h, body, id)
	// Close is what makes the chunk durable (an fsync, or completing an
	// object store's multipart upload): its failure fails the request, and
	// the size reported is what storage kept.
	closeErr := w.Close()
	if closeErr != nil && cerr == nil {
		cerr = fmt.Errorf("store chunk of upload %s: %w", id, closeErr)
	}
	u.Size = w.Size()
	// The hash state is saved only for bytes storage holds, all of them
	// hashed: a writer that buffers may lose accepted bytes when it fails.
	if closeErr == nil && u.Size == before+hashed {
		r.saveHashState(ctx, repo, id, h, before, u.Size)
	}
	return u, cerr
}

// FinishUpload appends a last chunk (body may be nil), verifies the whole
// upload against d and, only if it matches, makes the blob visible in repo.
// A mismatch deletes the upload: nothing of it remains.
func (r *Registry) FinishUpload(ctx context.Context, repo, id string, start int64, body io.Reader, d digest.Digest) (BlobInfo, error) {
	if err := r.checkWritable(); err != nil {
		return BlobInfo{}, err
	}
	unlock := r.uploadLocks.lock(repo + "/" + id)
	defer unlock()
	u, err := r.UploadStatus(ctx, repo, id)
	if err != nil {
		return BlobInfo{}, err
	}
	if start >= 0 && start != u.Size {
		return BlobInfo{}, newError(CodeRangeInvalid, "chunk starts at %d but upload %s holds %d bytes", start, id, u.Size)
	}
	w, h, err := r.openUpload(ctx, repo, id, u.Size)
	if err != nil {
		return BlobInfo{}, err
	}
	return r.finish(ctx, repo, id, w, h, body, d)
}

// finish streams the last bytes (body may be nil) into an upload's writer,
// makes them durable, verifies the whole upload against d and publishes the
// blob. No hash state is saved: the upload either ends here or, if the body
// was cut, is resumed and verified by re-reading.
func (r *Registry) finish(ctx context.Context, repo, id string, w storage.FileWriter, h hash.Hash, body io.Reader, d digest.Digest) (BlobInfo, error) {
	if body != nil {
		if _, err := r.copyHashed(w, h, body, id); err != nil {
			w.Close()
			return BlobInfo{}, err
		}
	}
	size := w.Size()
	// Durable before visible: the data is synced before it gets its name.
	if err := w.Commit(ctx); err != nil {
		w.Close()
		return BlobInfo{}, fmt.Errorf("commit upload %s: %w", id, err)
	}
	if err := w.Close(); err != nil {
		return BlobInfo{}, fmt.Errorf("commit upload %s: %w", id, err)
	}

	if err := r.verifyUpload(ctx, repo, id, h, d); err != nil {
		// Clean up even if the client has gone away (cancelled ctx).
		if derr := r.driver.Delete(context.WithoutCancel(ctx), uploadDir(repo, id)); derr != nil && !isNotFound(derr) {
			r.logger(ctx).Warn("cannot remove rejected upload", "repo", repo, "upload", id, "err", derr)
		}
		return BlobInfo{}, err
	}
	if err := r.commitBlob(ctx, repo, uploadDataPath(repo, id), d); err != nil {
		return BlobInfo{}, fmt.Errorf("commit upload %s: %w", id, err)
	}
	if err := r.driver.Delete(ctx, uploadDir(repo, id)); err != nil && !isNotFound(err) {
		r.logger(ctx).Warn("cannot remove finished upload", "repo", repo, "upload", id, "err", err)
	}
	return BlobInfo{Digest: d, Size: size}, nil
}

// CancelUpload discards an upload and everything it holds.
func (r *Registry) CancelUpload(ctx context.Context, repo, id string) error {
	if err := r.checkWritable(); err != nil {
		return err
	}
	unlock := r.uploadLocks.lock(repo + "/" + id)
	defer unlock()
	if _, err := r.UploadStatus(ctx, repo, id); err != nil {
		return err
	}
	if err := r.driver.Delete(ctx, uploadDir(repo, id)); err != nil && !isNotFound(err) {
		return fmt.Errorf("cancel upload %s: %w", id, err)
	}
	return nil
}

// PutBlob stores a whole blob in one call (monolithic upload). Such an
// upload is never resumed or asked about, so it needs neither a start marker
// nor saved hash state, only a private name to be written under until it is
// verified: two to four fewer syncs per blob than an upload in steps.
func (r *Registry) PutBlob(ctx context.Context, repo string, d digest.Digest, body io.Reader) (BlobInfo, error) {
	if err := r.checkWritable(); err != nil {
		return BlobInfo{}, err
	}
	if err := ValidateName(repo); err != nil {
		return BlobInfo{}, err
	}
	id := uuid.NewString()
	w, err := r.driver.Writer(context.WithoutCancel(ctx), uploadDataPath(repo, id), false)
	if err != nil {
		return BlobInfo{}, fmt.Errorf("put blob in %s: %w", repo, err)
	}
	info, err := r.finish(ctx, repo, id, w, sha256.New(), body, d)
	if err != nil {
		// A broken body usually means the client disconnected, which
		// cancels ctx: the cleanup must not depend on it.
		if derr := r.driver.Delete(context.WithoutCancel(ctx), uploadDir(repo, id)); derr != nil && !isNotFound(derr) {
			r.logger(ctx).Warn("cannot remove failed upload", "repo", repo, "upload", id, "err", derr)
		}
	}
	return info, err
}

// openUpload opens the upload's data for appending and restores the hash
// state matching its size; h is nil when no such state was saved (the digest
// is then computed from the stored bytes at the end).
func (r *Registry) openUpload(ctx context.Context, repo, id string, size int64) (storage.FileWriter, hash.Hash, error) {
	// The writer outlives a client that disconnects mid-chunk: what arrived
	// is still stored, so the upload can resume from there.
	ctx = context.WithoutCancel(ctx)
	var w storage.FileWriter
	var err error
	if size == 0 {
		w, err = r.driver.Writer(ctx, uploadDataPath(repo, id), false)
	} else {
		w, err = r.driver.Writer(ctx, uploadDataPath(repo, id), true)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open upload %s: %w", id, err)
	}
	h := sha256.New()
	switch {
	case w.Size() == 0:
	case w.Size() <= rehashLimit:
		if err := r.rehash(ctx, h, uploadDataPath(repo, id), w.Size()); err != nil {
			w.Close()
			return nil, nil, fmt.Errorf("open upload %s: %w", id, err)
		}
	default:
		state, err := r.driver.GetContent(ctx, hashStatePath(repo, id, w.Size()))
		if err != nil || h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state) != nil {
			h = nil
		}
	}
	return w, h, nil
}

// rehash feeds the first size bytes stored at p into h.
func (r *Registry) rehash(ctx context.Context, h hash.Hash, p string, size int64) error {
	rc, err := r.driver.Reader(ctx, p, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(h, io.LimitReader(rc, size))
	if err == nil && n != size {
		err = fmt.Errorf("%s holds %d bytes, not %d", p, n, size)
	}
	return err
}

func hashStatePath(repo, id string, offset int64) string {
	return path.Join(uploadHashStateDir(repo, id, digest.SHA256), strconv.FormatInt(offset, 10))
}

// putScratch stores state that only saves work: without syncing it when the
// driver can (storage.ScratchPutter), durably otherwise.
func (r *Registry) putScratch(ctx context.Context, p string, content []byte) error {
	if s, ok := r.driver.(storage.ScratchPutter); ok {
		return s.PutScratch(ctx, p, content)
	}
	return r.driver.PutContent(ctx, p, content)
}

// copyHashed copies body into w and reports how many bytes it read, all of
// them hashed (h may be nil when the state was lost). Writers that
// implement io.ReaderFrom (the filesystem's direct-I/O stage, an S3 part,
// a Swift segment) have the body read straight into their buffer, where
// it is hashed, so each byte is copied once; others get a pooled buffer.
// A failed write leaves fewer bytes stored than hashed: callers compare
// the writer's Size before trusting the hash for more than this request.
func (r *Registry) copyHashed(w storage.FileWriter, h hash.Hash, body io.Reader, id string) (int64, error) {
	var buf []byte
	if _, ok := w.(io.ReaderFrom); !ok {
		bufp := copyBuffers.Get().(*[]byte)
		defer copyBuffers.Put(bufp)
		buf = *bufp
	}
	cr := &chunkReader{r: body, h: h}
	_, err := io.CopyBuffer(w, cr, buf)
	switch {
	case cr.err != nil:
		return cr.n, newError(CodeBlobUploadInvalid, "reading request body: %v", cr.err)
	case err != nil:
		return cr.n, fmt.Errorf("write upload %s: %w", id, err)
	}
	return cr.n, nil
}

// chunkReader hashes and counts a chunk's bytes as they are read, and keeps
// the body's own failure apart from the writer's.
type chunkReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	err error // the body failed (other than io.EOF)
}

func (c *chunkReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		if c.h != nil {
			c.h.Write(p[:n])
		}
		c.n += int64(n)
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// saveHashState stores the hash state after a chunk, under the upload's new
// size, so the next chunk (on any instance) continues hashing without
// re-reading the upload; the state for the previous size is dropped.
func (r *Registry) saveHashState(ctx context.Context, repo, id string, h hash.Hash, before, after int64) {
	if h != nil && after != before && after > rehashLimit {
		// A cut body cancels the request's context; the state of the bytes
		// that did arrive is still worth keeping for the resumed upload.
		ctx := context.WithoutCancel(ctx)
		state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err == nil {
			err = r.putScratch(ctx, hashStatePath(repo, id, after), state)
		}
		if err != nil {
			r.logger(ctx).Warn("cannot save upload hash state", "upload", id, "err", err)
		} else if before > rehashLimit {
			if err := r.driver.Delete(ctx, hashStatePath(repo, id, before)); err != nil && !isNotFound(err) {
				r.logger(ctx).Warn("cannot remove old upload hash state", "upload", id, "err", err)
			}
		}
	}
}

// verifyUpload checks the upload's bytes against d, using the streamed hash
// when it applies and re-reading the data otherwise (another algorithm, or a
// hash state that was lost).
func (r *Registry) verifyUpload(ctx context.Context, repo, id string, h hash.Hash, d digest.Digest) error {
	var got digest.Digest
	if h != nil && d.Algorithm() == digest.SHA256 {
		got = digest.NewDigest(digest.SHA256, h)
	} else {
		rc, err := r.driver.Reader(ctx, uploadDataPath(repo, id), 0)
		if err != nil {
			return fmt.Errorf("verify upload %s: %w", id, err)
		}
		defer rc.Close()
		got, err = d.Algorithm().FromReader(rc)
		if err != nil {
			return fmt.Errorf("verify upload %s: %w", id, err)
		}
	}
	if got != d {
		return &Error{Code: CodeDigestInvalid, Message: fmt.Sprintf("upload content has digest %s, not %s", got, d)}
	}
	return nil
}

// commitBlob moves verified bytes to the blob's content address (unless an
// identical blob is already there) and links the blob into repo.
func (r *Registry) commitBlob(ctx context.Context, repo, src string, d digest.Digest) error {
	present, err := r.exists(ctx, blobDataPath(d))
	if err != nil {
		return err
	}
	if !present {
		if err := r.driver.Move(ctx, src, blobDataPath(d)); err != nil {
			return err
		}
	}
	return r.writeLink(ctx, layerLinkPath(repo, d), d)
}
