// Package filesystem stores objects as plain files under a root directory.
//
// A storage path maps to root+path, exactly like distribution's filesystem
// driver, so a root written by registry:2 (2.8.x) can be served by berth and
// the other way round.
//
// Directories are created implicitly by writes and, like in distribution,
// never pruned: after the last object below a directory is deleted or moved,
// the empty directory still Stats and Lists. Pruning would race with
// concurrent writers creating files in it, and registry paths never turn from
// directories into objects, so the difference from an object store (and from
// the inmemory driver) does not matter to berth.
package filesystem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/berth-registry/berth/internal/fsync"
	"github.com/berth-registry/berth/internal/storage"
)

// tempPrefix marks PutContent's in-flight files. The leading dot keeps them
// out of the way of registry paths, and List hides them so an interrupted
// write never shows up as an object.
const tempPrefix = ".berth-tmp-"

// Permissions match distribution's driver (before umask), so files written by
// either registry are readable by the other when run as different users.
const (
	dirPerm  = 0o777
	filePerm = 0o666
)

// Driver is a storage.Driver backed by a local directory tree.
type Driver struct {
	root string
}

var _ storage.Driver = (*Driver)(nil)

// New returns a driver rooted at root, creating the directory if needed.
func New(root string) (*Driver, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("filesystem: root %q: %w", root, err)
	}
	if err := os.MkdirAll(abs, dirPerm); err != nil {
		return nil, fmt.Errorf("filesystem: create root: %w", err)
	}
	return &Driver{root: abs}, nil
}

// Name implements storage.Driver.
func (d *Driver) Name() string { return "filesystem" }

// Root returns the absolute directory objects are stored under.
func (d *Driver) Root() string { return d.root }

func (d *Driver) fullPath(p string) string {
	return filepath.Join(d.root, filepath.FromSlash(p))
}

// GetContent implements storage.Driver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := storage.CheckOp(ctx, "get", p); err != nil {
		return nil, err
	}
	f, err := d.openRegular("get", p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, &storage.PathError{Op: "get", Path: p, Err: err}
	}
	return b, nil
}

// Reader implements storage.Driver. The reader is the *os.File itself so the
// HTTP layer can hand it to http.ServeContent / sendfile.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if err := storage.CheckOp(ctx, "reader", p); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, &storage.PathError{Op: "reader", Path: p, Err: fmt.Errorf("negative offset %d", offset)}
	}
	f, err := d.openRegular("reader", p)
	if err != nil {
		return nil, err
	}
	// Seeking past the end is allowed and makes reads return io.EOF, which
	// is exactly the "empty reader" the contract asks for.
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, &storage.PathError{Op: "reader", Path: p, Err: err}
	}
	return f, nil
}

// openRegular opens the object at p for reading; directories count as missing
// objects because callers asked for content.
func (d *Driver) openRegular(op, p string) (*os.File, error) {
	f, err := os.Open(d.fullPath(p))
	if err != nil {
		return nil, lookupErr(op, p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, lookupErr(op, p, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &storage.PathError{Op: op, Path: p, Err: storage.ErrNotFound}
	}
	return f, nil
}

// PutContent implements storage.Driver. The content goes to a temporary file
// in the target directory which is then renamed over the target, so readers
// see the old or the new file, never a partial one, and a crash leaves at most
// a hidden temp file behind.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	return d.put(ctx, p, content, true)
}

// PutScratch implements storage.ScratchPutter: PutContent without the two
// syncs, for state that only saves work and may be lost in a crash.
func (d *Driver) PutScratch(ctx context.Context, p string, content []byte) error {
	return d.put(ctx, p, content, false)
}

func (d *Driver) put(ctx context.Context, p string, content []byte, durable bool) (err error) {
	if err := storage.CheckObject(ctx, "put", p); err != nil {
		return err
	}
	full := d.fullPath(p)
	dir := filepath.Dir(full)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return wrapErr("put", p, err)
	}
	f, err := createTemp(dir)
	if err != nil {
		return wrapErr("put", p, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(content); err != nil {
		return wrapErr("put", p, err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			return wrapErr("put", p, err)
		}
	}
	if err := f.Close(); err != nil {
		return wrapErr("put", p, err)
	}
	if err := os.Rename(f.Name(), full); err != nil {
		return wrapErr("put", p, err)
	}
	if !durable {
		return nil
	}
	// The rename is only durable once the directory entry is.
	if err := fsync.Dir(dir); err != nil {
		return wrapErr("put", p, err)
	}
	return nil
}

// createTemp is os.CreateTemp with distribution's file permissions instead
// of 0600. 96 random bits make a name collision (O_EXCL failing) negligible.
func createTemp(dir string) (*os.File, error) {
	var b [12]byte
	rand.Read(b[:])
	name := filepath.Join(dir, tempPrefix+hex.EncodeToString(b[:]))
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
}

// Writer implements storage.Driver. The writer appends to the file at p
// itself (uploads live at _uploads/<id>/data and are moved into place), so a
// closed writer can be resumed by any process sharing the root.
func (d *Driver) Writer(ctx context.Context, p string, resume bool) (storage.FileWriter, error) {
	if err := storage.CheckObject(ctx, "writer", p); err != nil {
		return nil, err
	}
	full := d.fullPath(p)
	// No O_APPEND: the writer seeks to the end once and then tracks its
	// offset itself (direct writes need it aligned); an upload has a
	// single writer at a time.
	var f *os.File
	var err error
	if resume {
		f, err = os.OpenFile(full, os.O_WRONLY, 0)
		if errors.Is(err, syscall.EISDIR) {
			err = fs.ErrNotExist // a directory holds no resumable bytes
		}
		err = lookupErr("writer", p, err)
	} else {
		if err = os.MkdirAll(filepath.Dir(full), dirPerm); err == nil {
			f, err = os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
		}
		err = wrapErr("writer", p, err)
	}
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, wrapErr("writer", p, err)
	}
	return &fileWriter{f: f, path: p, size: size}, nil
}

// Stat implements storage.Driver.
func (d *Driver) Stat(ctx context.Context, p string) (storage.FileInfo, error) {
	if err := storage.CheckOp(ctx, "stat", p); err != nil {
		return storage.FileInfo{}, err
	}
	fi, err := os.Stat(d.fullPath(p))
	if err != nil {
		return storage.FileInfo{}, lookupErr("stat", p, err)
	}
	info := storage.FileInfo{Path: p, ModTime: fi.ModTime(), IsDir: fi.IsDir()}
	if !info.IsDir {
		info.Size = fi.Size()
	}
	return info, nil
}

// List implements storage.Driver. Entries whose path the storage layer could
// not address (temp files, "lost+found" at a mount point, ...) are skipped so
// every returned path is usable with the other methods.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if err := storage.CheckOp(ctx, "list", p); err != nil {
		return nil, err
	}
	dir, err := os.Open(d.fullPath(p))
	if err != nil {
		return nil, lookupErr("list", p, err)
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, lookupErr("list", p, err) // ENOTDIR for a file
	}
	children := make([]string, 0, len(names))
	for _, name := range names {
		child := path.Join(p, name)
		if strings.HasPrefix(name, tempPrefix) || storage.CheckPath(child) != nil {
			continue
		}
		children = append(children, child)
	}
	return children, nil
}

// Move implements storage.Driver.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if err := storage.CheckObject(ctx, "move", src); err != nil {
		return err
	}
	if err := storage.CheckObject(ctx, "move", dst); err != nil {
		return err
	}
	fullSrc, fullDst := d.fullPath(src), d.fullPath(dst)
	// Check the source first so a failed move does not leave behind the
	// destination's parent directories.
	if _, err := os.Lstat(fullSrc); err != nil {
		return lookupErr("move", src, err)
	}
	dstDir := filepath.Dir(fullDst)
	if err := os.MkdirAll(dstDir, dirPerm); err != nil {
		return wrapErr("move", dst, err)
	}
	if err := os.Rename(fullSrc, fullDst); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return lookupErr("move", src, err) // src vanished since the Lstat
		}
		return wrapErr("move", dst, err)
	}
	// A blob becomes visible by a Move; it must not vanish again on a crash.
	if err := fsync.Dir(dstDir); err != nil {
		return wrapErr("move", dst, err)
	}
	return nil
}

// Delete implements storage.Driver.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if err := storage.CheckObject(ctx, "delete", p); err != nil {
		return err
	}
	full := d.fullPath(p)
	// RemoveAll succeeds on missing paths; the contract wants ErrNotFound.
	if _, err := os.Lstat(full); err != nil {
		return lookupErr("delete", p, err)
	}
	if err := os.RemoveAll(full); err != nil {
		return wrapErr("delete", p, err)
	}
	return nil
}

// lookupErr wraps an error from looking up p, translating "missing" into
// storage.ErrNotFound. ENOTDIR counts as missing: /a/b cannot exist when /a
// is a file.
func lookupErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		err = storage.ErrNotFound
	}
	return &storage.PathError{Op: op, Path: p, Err: err}
}

// wrapErr wraps an error from creating or changing p. It keeps the OS error:
// a write failing because /a is a file should not read as "not found".
func wrapErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return &storage.PathError{Op: op, Path: p, Err: err}
}

var (
	errClosed    = errors.New("writer closed")
	errCommitted = errors.New("writer already committed")
	errCancelled = errors.New("writer cancelled")
)

// fileWriter is the storage.FileWriter of the filesystem driver. Writes go
// straight to the *os.File (layer streams arrive in large chunks, and a
// bufio layer would only add a copy) until the file passes
// directThreshold; from there on they are staged and written direct
// (direct.go).
type fileWriter struct {
	f     *os.File
	path  string
	size  int64 // bytes accepted: in the file, plus staged
	dirty bool  // bytes written since open and not yet synced
	err   error // non-nil once closed, committed or cancelled

	st       *stager // direct mode, else nil
	noDirect bool    // direct I/O refused here: stay with the page cache
}

var (
	_ storage.FileWriter = (*fileWriter)(nil)
	_ io.ReaderFrom      = (*fileWriter)(nil)
)

// Write accepts b. Staged bytes count as written; if writing them fails
// later, Size drops back to what the file holds.
func (w *fileWriter) Write(b []byte) (int, error) {
	if w.err != nil {
		return 0, &storage.PathError{Op: "write", Path: w.path, Err: w.err}
	}
	written := 0
	for len(b) > 0 {
		var n int
		var err error
		switch {
		case w.st != nil:
			n = copy(w.st.free(), b)
			if err = w.staged(n); err != nil {
				return written + n, err
			}
		case !w.noDirect && w.size >= directThreshold && w.size%directAlign == 0:
			if setDirect(w.f, true) != nil {
				w.noDirect = true
			} else {
				w.st = newStager(w.f)
			}
			continue
		default:
			chunk := b
			if !w.noDirect {
				// Through the cache up to the aligned offset where
				// direct writes can begin.
				switchAt := max(directThreshold, alignDown(w.size+directAlign-1))
				chunk = b[:min(int64(len(b)), switchAt-w.size)]
			}
			n, err = w.f.Write(chunk)
			w.size += int64(n)
			w.dirty = w.dirty || n > 0
		}
		written += n
		b = b[n:]
		if err != nil {
			return written, &storage.PathError{Op: "write", Path: w.path, Err: err}
		}
	}
	return written, nil
}

// staged accounts for n bytes just put into the stage's free space, and
// passes the stage on to be written once it is full.
func (w *fileWriter) staged(n int) error {
	w.st.n += n
	w.size += int64(n)
	// Direct writes skip the page cache, not the need to sync: the file's
	// size and extents, and the device's write cache, still need the fsync.
	w.dirty = w.dirty || n > 0
	if w.st.full() {
		if err := w.flushStage(false); err != nil {
			return &storage.PathError{Op: "write", Path: w.path, Err: err}
		}
	}
	return nil
}

// flushStage passes a full stage on to be written or, with final set,
// writes everything staged and leaves direct mode. A failure drops the
// accepted bytes that did not reach the file (Size falls back to what the
// file holds, less than the writes reported; callers compare) and leaves
// direct mode for good, as does a filesystem refusing direct writes.
func (w *fileWriter) flushStage(final bool) error {
	var lost int
	var fellBack bool
	var err error
	if final {
		lost, err = w.st.finish()
	} else {
		lost, fellBack, err = w.st.flush()
	}
	w.size -= int64(lost)
	if err != nil || fellBack || final {
		w.st.release()
		w.st = nil
		if err != nil || fellBack {
			w.noDirect = true
			setDirect(w.f, false)
		}
	}
	return err
}

// finishWrites writes whatever is staged, so the file holds every accepted
// byte.
func (w *fileWriter) finishWrites() error {
	if w.st == nil {
		return nil
	}
	return w.flushStage(true)
}

// dropStage abandons direct mode without writing what is staged.
func (w *fileWriter) dropStage() {
	if w.st != nil {
		w.st.release()
		w.st = nil
	}
}

// ReadFrom reads r straight into the direct-I/O stage once the writer is
// past directThreshold, so each byte of a large upload is copied once, from
// the socket to the buffer the disk takes it from (and is hashed there by a
// caller's reader). Until then, and on filesystems refusing direct I/O, it
// reads into a pooled buffer of the same size and writes through the cache.
// Bytes read count as accepted even when r then fails, as with Write.
func (w *fileWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.err != nil {
		return 0, &storage.PathError{Op: "write", Path: w.path, Err: w.err}
	}
	var total int64
	var copyBuf *[]byte
	putBuf := func() {
		if copyBuf != nil {
			stagePool.Put(copyBuf)
			copyBuf = nil
		}
	}
	defer putBuf()
	for {
		var n int
		var rerr, werr error
		if w.st != nil {
			putBuf()
			n, rerr = r.Read(w.st.free())
			werr = w.staged(n)
		} else {
			if copyBuf == nil {
				copyBuf = stagePool.Get().(*[]byte)
			}
			n, rerr = r.Read(*copyBuf)
			n, werr = w.Write((*copyBuf)[:n])
		}
		total += int64(n)
		if werr != nil {
			return total, werr
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

func (w *fileWriter) Size() int64 { return w.size }

// Close is idempotent so callers can defer it and still Cancel or Commit.
// Staged bytes are written and everything written since the last sync is
// synced first: once a chunk has been acknowledged to a client, a crash
// must not take it back, or the upload's size and its saved hash state
// would disagree with what the client was told. After a failed Close, Size
// is what the file holds.
func (w *fileWriter) Close() error {
	if w.f == nil {
		return nil
	}
	var err error
	if w.err == nil {
		err = w.finishWrites()
		// What did reach the file is synced even if the rest failed:
		// Size reports it.
		if w.dirty {
			if serr := w.f.Sync(); err == nil {
				err = serr
			}
		}
	}
	w.dropStage() // nothing in flight may outlive the file
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if w.err == nil {
		w.err = errClosed
	}
	if err != nil {
		return &storage.PathError{Op: "close", Path: w.path, Err: err}
	}
	return nil
}

func (w *fileWriter) Cancel(ctx context.Context) error {
	if w.err != nil {
		return &storage.PathError{Op: "cancel", Path: w.path, Err: w.err}
	}
	name := w.f.Name()
	w.dropStage()
	w.f.Close() // the file is being discarded; its close error is moot
	w.f, w.err = nil, errCancelled
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &storage.PathError{Op: "cancel", Path: w.path, Err: err}
	}
	return nil
}

// Commit syncs the data (and the file's directory entry) so the blob is on
// disk before anything links to it. The bytes already sit at the path.
func (w *fileWriter) Commit(ctx context.Context) error {
	if w.err != nil {
		return &storage.PathError{Op: "commit", Path: w.path, Err: w.err}
	}
	if err := ctx.Err(); err != nil {
		return &storage.PathError{Op: "commit", Path: w.path, Err: err}
	}
	if err := w.finishWrites(); err != nil {
		return &storage.PathError{Op: "commit", Path: w.path, Err: err}
	}
	if err := w.f.Sync(); err != nil {
		return &storage.PathError{Op: "commit", Path: w.path, Err: err}
	}
	w.dirty = false
	if err := fsync.Dir(filepath.Dir(w.f.Name())); err != nil {
		return &storage.PathError{Op: "commit", Path: w.path, Err: err}
	}
	w.err = errCommitted
	return nil
}
