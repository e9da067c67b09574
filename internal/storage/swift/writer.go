package swift

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ncw/swift/v2"

	"github.com/berth-registry/berth/internal/storage"
)

// Writer implements storage.Driver (see the package documentation). With
// resume=false the session replaces whatever the path held once it is
// closed or committed; with resume=true it continues the object at the
// path (ErrNotFound if there is none).
func (d *Driver) Writer(ctx context.Context, p string, resume bool) (storage.FileWriter, error) {
	if err := storage.CheckObject(ctx, "writer", p); err != nil {
		return nil, err
	}
	w := &writer{d: d, path: p, name: d.ObjectName(p), fresh: !resume}
	if resume {
		obj, found, err := d.head(ctx, w.name)
		if err != nil {
			return nil, d.wrap("writer", p, err)
		}
		if !found {
			return nil, &storage.PathError{Op: "writer", Path: p, Err: storage.ErrNotFound}
		}
		if obj.manifest != "" {
			container, prefix := parseManifest(obj.manifest)
			size, next, err := d.segmentState(ctx, container, prefix)
			if err != nil {
				return nil, d.wrap("writer", p, err)
			}
			w.segContainer, w.segPrefix, w.next, w.manifested = container, prefix, next, true
			w.base = size
		} else {
			w.plain = true
			w.base, w.baseETag = obj.size, obj.etag
		}
	} else {
		old, err := d.checkWritable(ctx, "writer", p)
		if err != nil {
			return nil, err
		}
		w.replaces = old.manifest
	}
	w.size = w.base
	// A segment keeps uploading between Write calls, and Close persists
	// the session: neither may stop because the request that opened the
	// writer went away. Cancel stops them.
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	return w, nil
}

var errForeignSegments = errors.New("the large object's segments are not named as registry:2 or berth name them")

// segmentState lists the segments below prefix and returns their total
// size and the number the next segment gets. Segments are
// prefix/%016d, numbered without gaps from 1 (registry:2 also made a
// segment 0 when it continued a plain object).
func (d *Driver) segmentState(ctx context.Context, container, prefix string) (size int64, next int, err error) {
	segs, err := d.listSegments(ctx, container, prefix)
	if err != nil {
		return 0, 0, err
	}
	last := 0
	for _, o := range segs {
		n, ok := segmentNumber(prefix, o.Name)
		if !ok {
			return 0, 0, fmt.Errorf("%w: %s", errForeignSegments, o.Name)
		}
		size += o.Bytes
		last = max(last, n)
	}
	// A container listing can lag behind segments just written (by
	// another process): look for later ones directly. Segments are
	// written one at a time, in order.
	for n := last + 1; ; n++ {
		info, _, err := d.conn.Object(ctx, container, segmentName(prefix, n))
		if errors.Is(err, swift.ObjectNotFound) {
			return size, n, nil
		}
		if err != nil {
			return 0, 0, err
		}
		size += info.Bytes
	}
}

func segmentNumber(prefix, name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix+"/")
	if !ok || len(rest) != 16 {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 0
}

var (
	errClosed    = errors.New("writer closed")
	errCommitted = errors.New("writer already committed")
	errCancelled = errors.New("writer cancelled")
)

// writer streams a session into segments of ChunkSize (see the package
// documentation). The buffer being filled is uploaded when it is full and
// more bytes come, while the caller fills the next one; uploads run one at
// a time, in order, so a writer holds at most two buffers.
type writer struct {
	d     *Driver
	path  string
	name  string // object name of path
	fresh bool   // resume=false: the session replaces the object even if empty

	replaces string // fresh: the manifest the session replaces, whose segments go once it is stored

	plain    bool   // resumed a plain object
	baseETag string // its ETag

	segContainer string
	segPrefix    string   // "" until the session needs segments (set at once when continuing a manifest)
	next         int      // number of the next segment
	manifested   bool     // the object at name is segPrefix's manifest
	added        []string // segments this session uploaded or is uploading
	lastSeg      string   // name reserved for the final short segment while its upload fails

	base     int64 // size of the object the session continues
	size     int64 // base + bytes accepted in this session
	wrote    bool  // the session accepted bytes
	prepared bool  // a continued plain object's bytes are in buf or the first segment
	done     bool  // the session's bytes are the object's: nothing to roll back

	buf []byte // bytes not yet in a segment; nil when no buffer is held

	ctx     context.Context // for segment uploads and Close
	cancel  context.CancelFunc
	pending chan error // result of the segment upload in flight, nil when none

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
		if w.buf != nil && len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return 0, w.fail("write", err)
			}
		}
		if w.buf == nil {
			w.buf = w.d.bufs.Get()
		}
		c := copy(w.buf[len(w.buf):cap(w.buf)], b)
		w.buf = w.buf[:len(w.buf)+c]
		b = b[c:]
		n += c
	}
	w.size += int64(n)
	w.wrote = true
	return n, nil
}

// ReadFrom reads straight into the segment buffer, saving io.Copy's copy.
// As with Write, a full buffer becomes a segment only once more bytes come
// (a session that ends on a segment boundary keeps its last buffer for
// store): the next buffer is read first, after the upload in flight is
// done, so the writer still holds at most two buffers.
func (w *writer) ReadFrom(r io.Reader) (int64, error) {
	if err := w.usable("write"); err != nil {
		return 0, err
	}
	if err := w.prepare(); err != nil {
		return 0, w.fail("write", err)
	}
	var total int64
	for {
		var n int
		var rerr error
		if w.buf != nil && len(w.buf) == cap(w.buf) {
			if err := w.wait(); err != nil {
				return total, w.fail("write", err)
			}
			next := w.d.bufs.Get()
			n, rerr = r.Read(next[:cap(next)])
			if n == 0 {
				w.d.bufs.Put(next)
			} else if err := w.flush(); err != nil {
				w.d.bufs.Put(next)
				return total, w.fail("write", err)
			} else {
				w.buf = next[:n]
			}
		} else {
			if w.buf == nil {
				w.buf = w.d.bufs.Get()
			}
			n, rerr = r.Read(w.buf[len(w.buf):cap(w.buf)])
			w.buf = w.buf[:len(w.buf)+n]
		}
		total += int64(n)
		w.size += int64(n)
		w.wrote = w.wrote || n > 0
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
	if w.failed != nil && !w.done {
		return w.base
	}
	return w.size
}

// Close stores the session and ends it. It is idempotent.
func (w *writer) Close() error {
	if w.ended != nil {
		return nil
	}
	defer w.release()
	w.ended = errClosed
	if w.failed != nil {
		w.discard()
		return &storage.PathError{Op: "close", Path: w.path, Err: w.failed}
	}
	if err := w.store(w.ctx); err != nil {
		if w.failed == nil {
			w.failed = err
		}
		w.discard()
		return &storage.PathError{Op: "close", Path: w.path, Err: err}
	}
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

// Cancel discards the session and the object at the path.
func (w *writer) Cancel(ctx context.Context) error {
	if w.ended != nil {
		return &storage.PathError{Op: "cancel", Path: w.path, Err: w.ended}
	}
	w.ended = errCancelled
	w.release()
	obj, found, err := w.d.head(ctx, w.name)
	if err != nil {
		return w.d.wrap("cancel", w.path, err)
	}
	if found {
		if err := w.d.conn.ObjectDelete(ctx, w.d.container, w.name); err != nil && !errors.Is(err, swift.ObjectNotFound) {
			return w.d.wrap("cancel", w.path, err)
		}
		if obj.manifest != "" {
			if err := w.d.deleteSegments(ctx, obj.manifest); err != nil {
				return w.d.wrap("cancel", w.path, err)
			}
		}
	}
	// This session's segments, if no manifest took them.
	if own := w.segContainer + "/" + w.segPrefix; w.segPrefix != "" && (!found || obj.manifest != own) {
		if err := w.d.deleteSegments(ctx, own); err != nil {
			return w.d.wrap("cancel", w.path, err)
		}
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

// fail makes the session unusable: a segment upload failed, so the session
// can no longer be stored whole.
func (w *writer) fail(op string, err error) error {
	if w.failed == nil {
		w.failed = err
	}
	return &storage.PathError{Op: op, Path: w.path, Err: err}
}

// prepare puts a continued plain object's bytes at the start of the
// session, once: read into the buffer when they fit, else copied
// server-side into the first segment.
func (w *writer) prepare() error {
	if w.prepared {
		return nil
	}
	if w.plain && w.base > 0 {
		if w.base <= w.d.params.ChunkSize {
			var h swift.Headers
			if w.baseETag != "" {
				h = swift.Headers{"If-Match": `"` + w.baseETag + `"`}
			}
			f, _, err := w.d.conn.ObjectOpen(w.ctx, w.d.container, w.name, false, h)
			if err != nil {
				return fmt.Errorf("read the object to continue: %w", err)
			}
			defer f.Close()
			buf := w.d.bufs.Get()
			n, err := io.ReadFull(f, buf[:w.base])
			if err != nil {
				w.d.bufs.Put(buf)
				return fmt.Errorf("read the object to continue: %w", err)
			}
			w.buf = buf[:n]
		} else {
			w.startSegments()
			seg := w.takeSegment()
			if _, err := w.d.conn.ObjectCopy(w.ctx, w.d.container, w.name, w.segContainer, seg, nil); err != nil {
				return fmt.Errorf("copy the object to continue: %w", err)
			}
		}
	}
	w.prepared = true
	return nil
}

func (w *writer) startSegments() {
	if w.segPrefix == "" {
		w.segContainer, w.segPrefix, w.next = w.d.container, w.d.newSegmentPrefix(), 1
	}
}

func (w *writer) takeSegment() string {
	name := segmentName(w.segPrefix, w.next)
	w.next++
	w.added = append(w.added, name)
	return name
}

// flush uploads the full buffer as the next segment, in the background,
// once the previous upload has finished: the caller cannot fill another
// buffer meanwhile, which bounds a writer's memory and keeps segments in
// order.
func (w *writer) flush() error {
	if err := w.wait(); err != nil {
		return err
	}
	w.startSegments()
	seg := w.takeSegment()
	buf := w.buf
	w.buf = nil
	ch := make(chan error, 1)
	w.pending = ch
	go func() {
		err := w.d.putObject(w.ctx, w.segContainer, seg, buf, nil)
		w.d.bufs.Put(buf)
		ch <- err
	}()
	return nil
}

// wait returns the result of the segment upload in flight.
func (w *writer) wait() error {
	if w.pending == nil {
		return nil
	}
	err := <-w.pending
	w.pending = nil
	if err != nil {
		return fmt.Errorf("upload segment: %w", err)
	}
	return nil
}

// store makes the session's bytes the object at the path: one PUT of a
// plain object when no segment was needed, else the last segment and the
// manifest. After an error other than a failed background upload, store
// can be retried.
func (w *writer) store(ctx context.Context) error {
	if err := w.wait(); err != nil {
		w.failed = err
		return err
	}
	if !w.wrote && !w.fresh {
		return nil // a continued session that added nothing
	}
	if err := w.prepare(); err != nil {
		w.failed = err
		return err
	}
	if w.segPrefix == "" {
		if err := w.d.putObject(ctx, w.d.container, w.name, w.buf, nil); err != nil {
			return err
		}
		w.stored("")
		return nil
	}
	if len(w.buf) > 0 {
		if w.lastSeg == "" {
			w.lastSeg = w.takeSegment()
		}
		if err := w.d.putObject(ctx, w.segContainer, w.lastSeg, w.buf, nil); err != nil {
			return err
		}
		w.lastSeg = ""
		w.d.bufs.Put(w.buf)
		w.buf = nil
	}
	manifest := w.segContainer + "/" + w.segPrefix
	if !w.manifested {
		if err := w.d.putManifest(ctx, w.name, manifest); err != nil {
			return err
		}
		w.manifested = true
	}
	w.stored(manifest)
	return w.d.waitSize(ctx, w.name, w.size)
}

// stored records that the session's bytes are the object's.
func (w *writer) stored(manifest string) {
	w.done = true
	w.d.notObjects.Forget(w.path)
	if w.replaces != "" {
		w.d.dropReplaced(w.ctx, w.replaces, manifest)
		w.replaces = ""
	}
}

// discard stops the session's upload and, unless the session was stored,
// deletes the segments it added, so the object keeps its earlier bytes.
func (w *writer) discard() {
	w.cancel()
	if w.pending != nil {
		<-w.pending
		w.pending = nil
	}
	if w.done || len(w.added) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w.d.deleteNames(ctx, w.segContainer, w.added)
	w.added = nil
}

// release ends background work and returns the buffer.
func (w *writer) release() {
	w.cancel()
	if w.pending != nil {
		<-w.pending
		w.pending = nil
	}
	if w.buf != nil {
		w.d.bufs.Put(w.buf)
		w.buf = nil
	}
}

// waitSize checks that the object called name has size want, waiting a
// bounded time for a lagging container listing (see
// readAfterWriteTimeout).
func (d *Driver) waitSize(ctx context.Context, name string, want int64) error {
	deadline := time.Now().Add(readAfterWriteTimeout)
	pause := 50 * time.Millisecond
	for {
		obj, found, err := d.head(ctx, name)
		if err != nil {
			return err
		}
		if found && obj.size == want {
			return nil
		}
		if time.Now().Add(pause).After(deadline) {
			return fmt.Errorf("%s holds %d bytes, not %d, after %v: its segments are not all listed", name, obj.size, want, readAfterWriteTimeout)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
	}
}
