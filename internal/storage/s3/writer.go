package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/berth-registry/berth/internal/storage"
)

// Writer implements storage.Driver. With resume=false the session replaces
// whatever the path held once it is closed or committed; with resume=true
// it continues the object at the path (ErrNotFound if there is none).
//
// Any incomplete multipart upload left at the key by a session that never
// finished (a crashed process) is aborted here: it can only be garbage,
// since a session completes or aborts its own upload when it ends.
func (d *Driver) Writer(ctx context.Context, p string, resume bool) (storage.FileWriter, error) {
	if err := storage.CheckObject(ctx, "writer", p); err != nil {
		return nil, err
	}
	key := d.Key(p)
	w := &writer{d: d, path: p, key: key, fresh: !resume}
	if resume {
		info, found, err := d.head(ctx, key)
		if err != nil {
			return nil, d.wrap("writer", p, err)
		}
		if !found {
			return nil, &storage.PathError{Op: "writer", Path: p, Err: storage.ErrNotFound}
		}
		w.base, w.baseETag = info.Size, info.ETag
	} else if err := d.checkWritable(ctx, "writer", p); err != nil {
		return nil, err
	}
	if err := d.abortStale(ctx, key); err != nil {
		return nil, d.wrap("writer", p, err)
	}
	w.size = w.base
	// Parts keep uploading between Write calls, and Close persists the
	// session: neither may stop because the request that opened the
	// writer went away. Cancel stops them.
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w.sem = make(chan struct{}, d.params.UploadConcurrency)
	return w, nil
}

// abortStale aborts the incomplete multipart uploads at exactly key. Some
// servers cannot list uploads; that is not worth failing a write for.
func (d *Driver) abortStale(ctx context.Context, key string) error {
	res, err := d.core.ListMultipartUploads(ctx, d.bucket, key, "", "", "", 1000)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil
	}
	for _, u := range res.Uploads {
		if u.Key == key {
			d.core.AbortMultipartUpload(ctx, d.bucket, key, u.UploadID)
		}
	}
	return nil
}

var (
	errClosed    = errors.New("writer closed")
	errCommitted = errors.New("writer already committed")
	errCancelled = errors.New("writer cancelled")
)

// writer streams a session into a multipart upload at its key. Full
// buffers of ChunkSize become parts, uploaded by up to UploadConcurrency
// goroutines while the caller keeps writing into the next buffer, so a
// writer holds at most UploadConcurrency+1 buffers. Close and Commit
// complete the upload (or, for a session that never filled a buffer, PUT
// the object), which replaces the object at the key in one step: a session
// is stored entirely or not at all.
//
// A resumed session must start the new object with the old one's bytes:
// below 5 MiB they are downloaded into the first buffer, above they become
// the upload's first parts by server-side copy. Either happens only once
// the session has something to add.
type writer struct {
	d     *Driver
	path  string
	key   string
	fresh bool // resume=false: the session replaces the object even if empty

	base     int64 // size of the object the session continues
	baseETag string
	size     int64 // base + bytes accepted in this session
	wrote    bool  // the session accepted bytes
	prepared bool  // the base bytes are in buf or being copied into parts

	buf []byte // the part being filled; nil when none is held

	ctx    context.Context // for part uploads and Close
	cancel context.CancelFunc
	sem    chan struct{} // one slot per part in flight
	wg     sync.WaitGroup

	uploadID string
	nextPart int // number of the last part handed out
	lastPart int // number reserved for the final, short part by store

	mu       sync.Mutex
	parts    []minio.CompletePart // by part number - 1; filled as uploads finish
	asyncErr error                // first failed part upload
	buffers  int                  // buffers held now (the one being filled and those uploading)
	peak     int                  // most buffers held at once

	failed error // the session cannot be stored; Size falls back to base
	ended  error // errClosed, errCommitted or errCancelled once ended
}

var (
	_ storage.FileWriter = (*writer)(nil)
	_ io.ReaderFrom      = (*writer)(nil)
)

func (w *writer) Write(b []byte) (int, error) {
	if err := w.usable("write"); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	if err := w.prepare(); err != nil {
		return 0, w.fail("write", err)
	}
	n := 0
	for len(b) > 0 {
		if w.buf == nil {
			w.buf = w.getBuf()
		}
		c := copy(w.buf[len(w.buf):cap(w.buf)], b)
		w.buf = w.buf[:len(w.buf)+c]
		b = b[c:]
		n += c
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return 0, w.fail("write", err)
			}
		}
	}
	w.size += int64(n)
	w.wrote = true
	return n, nil
}

// ReadFrom reads straight into the part buffer, saving io.Copy's copy.
func (w *writer) ReadFrom(r io.Reader) (int64, error) {
	if err := w.usable("write"); err != nil {
		return 0, err
	}
	if err := w.prepare(); err != nil {
		return 0, w.fail("write", err)
	}
	var total int64
	for {
		if w.buf == nil {
			w.buf = w.getBuf()
		}
		n, rerr := r.Read(w.buf[len(w.buf):cap(w.buf)])
		if n > 0 {
			w.buf = w.buf[:len(w.buf)+n]
			total += int64(n)
			w.size += int64(n)
			w.wrote = true
			if len(w.buf) == cap(w.buf) {
				if err := w.flush(); err != nil {
					return 0, w.fail("write", err)
				}
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			// What was read is kept, as with a short Write.
			return total, &storage.PathError{Op: "write", Path: w.path, Err: rerr}
		}
	}
}

// Size implements storage.FileWriter. After a failure it is the size the
// object still has: the failed session's bytes are gone.
func (w *writer) Size() int64 {
	if w.failed != nil {
		return w.base
	}
	return w.size
}

// Close stores the session (see writer) and ends it. It is idempotent.
func (w *writer) Close() error {
	if w.ended != nil {
		return nil
	}
	defer w.release()
	if w.failed != nil {
		w.ended = errClosed
		w.discard()
		return &storage.PathError{Op: "close", Path: w.path, Err: w.failed}
	}
	if err := w.store(w.ctx); err != nil {
		w.ended = errClosed
		w.failed = err
		w.discard()
		return &storage.PathError{Op: "close", Path: w.path, Err: err}
	}
	w.ended = errClosed
	return nil
}

// Commit stores the session. A failed Commit can be retried.
func (w *writer) Commit(ctx context.Context) error {
	if err := w.usable("commit"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return &storage.PathError{Op: "commit", Path: w.path, Err: err}
	}
	if err := w.store(ctx); err != nil {
		return &storage.PathError{Op: "commit", Path: w.path, Err: err}
	}
	w.ended = errCommitted
	w.release()
	return nil
}

// Cancel discards the session and the object it continued.
func (w *writer) Cancel(ctx context.Context) error {
	if w.ended != nil {
		return &storage.PathError{Op: "cancel", Path: w.path, Err: w.ended}
	}
	w.ended = errCancelled
	w.discard()
	w.release()
	err := w.d.client.RemoveObject(ctx, w.d.bucket, w.key, minio.RemoveObjectOptions{})
	if err != nil && !isNotFound(err) {
		return &storage.PathError{Op: "cancel", Path: w.path, Err: err}
	}
	return nil
}

func (w *writer) usable(op string) error {
	if w.ended != nil {
		return &storage.PathError{Op: op, Path: w.path, Err: w.ended}
	}
	if w.failed != nil {
		return &storage.PathError{Op: op, Path: w.path, Err: w.failed}
	}
	return nil
}

// fail makes the session unusable: an upload failed, so the session can
// no longer be stored whole.
func (w *writer) fail(op string, err error) error {
	if w.failed == nil {
		w.failed = err
	}
	return &storage.PathError{Op: op, Path: w.path, Err: err}
}

// prepare puts the object's current bytes at the start of the session's
// upload, once.
func (w *writer) prepare() error {
	if w.prepared {
		return nil
	}
	switch {
	case w.base == 0:
	case w.base < minPartSize:
		// Too small for a part: it goes into the first buffer.
		opts := minio.GetObjectOptions{}
		if w.baseETag != "" {
			if err := opts.SetMatchETag(w.baseETag); err != nil {
				return err
			}
		}
		body, _, _, err := w.d.core.GetObject(w.ctx, w.d.bucket, w.key, opts)
		if err != nil {
			return fmt.Errorf("read the object to continue: %w", err)
		}
		defer body.Close()
		buf := w.getBuf()
		n, err := io.ReadFull(body, buf[:w.base])
		if err != nil {
			w.putBuf(buf)
			return fmt.Errorf("read the object to continue: %w", err)
		}
		w.buf = buf[:n]
	default:
		// Server-side copies, in parts of at least 5 MiB, running
		// alongside the new parts.
		if err := w.startUpload(); err != nil {
			return err
		}
		for _, r := range copyRanges(w.base, w.d.params.MultipartCopyChunkSize) {
			num, err := w.takePart()
			if err != nil {
				return err
			}
			w.sem <- struct{}{}
			w.wg.Go(func() {
				defer func() { <-w.sem }()
				part, err := w.d.copyPart(w.ctx, w.key, w.key, w.uploadID, num, r, w.baseETag)
				w.finishPart(num, part, err)
			})
		}
	}
	w.prepared = true
	return nil
}

func (w *writer) startUpload() error {
	if w.uploadID != "" {
		return nil
	}
	id, err := w.d.core.NewMultipartUpload(w.ctx, w.d.bucket, w.key, w.d.putOpts)
	if err != nil {
		return fmt.Errorf("start multipart upload: %w", err)
	}
	w.uploadID = id
	return nil
}

func (w *writer) takePart() (int, error) {
	if w.nextPart >= maxParts {
		return 0, fmt.Errorf("more than %d parts: the object is too large for chunksize %d", maxParts, w.d.params.ChunkSize)
	}
	w.nextPart++
	w.mu.Lock()
	w.parts = append(w.parts, minio.CompletePart{})
	w.mu.Unlock()
	return w.nextPart, nil
}

func (w *writer) finishPart(num int, part minio.CompletePart, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if w.asyncErr == nil {
			w.asyncErr = fmt.Errorf("part %d: %w", num, err)
		}
		return
	}
	w.parts[num-1] = part
}

func (w *writer) asyncError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.asyncErr
}

// flush hands the full buffer to an upload goroutine, waiting for a free
// slot first: the caller cannot fill another buffer meanwhile, which is
// what bounds a writer's memory.
func (w *writer) flush() error {
	if err := w.asyncError(); err != nil {
		return err
	}
	if err := w.startUpload(); err != nil {
		return err
	}
	num := w.lastPart // reserved by a failed store for this same buffer
	w.lastPart = 0
	if num == 0 {
		var err error
		if num, err = w.takePart(); err != nil {
			return err
		}
	}
	buf := w.buf
	w.buf = nil
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		w.putBuf(buf)
		return w.ctx.Err()
	}
	w.wg.Go(func() {
		defer func() { <-w.sem }()
		part, err := w.uploadPart(w.ctx, num, buf)
		w.putBuf(buf)
		w.finishPart(num, part, err)
	})
	return nil
}

func (w *writer) uploadPart(ctx context.Context, num int, b []byte) (minio.CompletePart, error) {
	p, err := w.d.core.PutObjectPart(ctx, w.d.bucket, w.key, w.uploadID, num, bytes.NewReader(b), int64(len(b)), minio.PutObjectPartOptions{SSE: w.d.putOpts.ServerSideEncryption})
	if err != nil {
		return minio.CompletePart{}, err
	}
	return minio.CompletePart{PartNumber: num, ETag: p.ETag}, nil
}

// store makes the session's bytes the object at the key: a PUT when they
// all fit the buffer, otherwise the last part and CompleteMultipartUpload.
// After an error the writer is unchanged, so store can be retried.
func (w *writer) store(ctx context.Context) error {
	if !w.wrote && !w.fresh {
		// A resumed session that added nothing: the object is as it
		// was. (An empty ReadFrom may have started copying it.)
		w.discard()
		return nil
	}
	if err := w.prepare(); err != nil {
		w.failed = err
		return err
	}
	w.wg.Wait()
	if err := w.asyncError(); err != nil {
		w.failed = err
		return err
	}
	if w.uploadID == "" {
		err := retryParentRace(ctx, func() error {
			_, err := w.d.core.PutObject(ctx, w.d.bucket, w.key, bytes.NewReader(w.buf), int64(len(w.buf)), "", "", w.d.putOpts)
			return err
		})
		if err != nil {
			return err
		}
		w.d.notObjects.Forget(w.path)
		return nil
	}
	w.mu.Lock()
	parts := append([]minio.CompletePart(nil), w.parts...)
	w.mu.Unlock()
	if len(w.buf) > 0 {
		// The last part may be small. Its number stays reserved so a
		// retried store uploads it again under the same number.
		if w.lastPart == 0 {
			num, err := w.takePart()
			if err != nil {
				w.failed = err
				return err
			}
			w.lastPart = num
			parts = append(parts, minio.CompletePart{})
		}
		last, err := w.uploadPart(ctx, w.lastPart, w.buf)
		if err != nil {
			return err
		}
		parts[w.lastPart-1] = last
	}
	if _, err := w.d.core.CompleteMultipartUpload(ctx, w.d.bucket, w.key, w.uploadID, parts, w.d.putOpts); err != nil {
		return err
	}
	w.uploadID = ""
	w.d.notObjects.Forget(w.path)
	return nil
}

// discard stops the session's uploads and aborts its multipart upload.
func (w *writer) discard() {
	w.cancel()
	w.wg.Wait()
	if w.uploadID != "" {
		w.d.abort(w.key, w.uploadID)
		w.uploadID = ""
	}
}

// release returns the buffer and ends background work.
func (w *writer) release() {
	w.cancel()
	w.wg.Wait()
	if w.buf != nil {
		w.putBuf(w.buf)
		w.buf = nil
	}
}

func (w *writer) getBuf() []byte {
	b := w.d.bufs.Get()
	w.mu.Lock()
	w.buffers++
	w.peak = max(w.peak, w.buffers)
	w.mu.Unlock()
	return b
}

func (w *writer) putBuf(b []byte) {
	w.mu.Lock()
	w.buffers--
	w.mu.Unlock()
	w.d.bufs.Put(b)
}
