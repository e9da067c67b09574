// Package inmemory is a storage.Driver that keeps objects in a map, for tests.
//
// It mirrors the filesystem driver's semantics so the shared suite holds for
// both: directories are implicit (a directory exists while some object lies
// below it), a path cannot be both an object and a directory, and a Writer
// appends to the object at its path.
package inmemory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/berth-registry/berth/internal/storage"
)

// Driver is a goroutine-safe in-memory storage.Driver.
type Driver struct {
	mu    sync.RWMutex
	files map[string]*file
}

// file is shared by pointer between the map and open writers, like an inode:
// PutContent installs a new file, Move re-keys the same one.
type file struct {
	// data is only ever appended to or replaced, never modified in place, so
	// a reader can keep a length-capped slice of it without holding the lock.
	data    []byte
	modTime time.Time
}

var _ storage.Driver = (*Driver)(nil)

// New returns an empty driver.
func New() *Driver {
	return &Driver{files: make(map[string]*file)}
}

// Name implements storage.Driver.
func (d *Driver) Name() string { return "inmemory" }

var (
	errIsDir    = errors.New("is a directory")
	errNotDir   = errors.New("parent is not a directory")
	errMoveInto = errors.New("cannot move a directory into itself")
)

// GetContent implements storage.Driver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := storage.CheckOp(ctx, "get", p); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	f := d.files[p]
	if f == nil {
		return nil, notFound("get", p)
	}
	return bytes.Clone(f.data), nil
}

// PutContent implements storage.Driver.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if err := storage.CheckObject(ctx, "put", p); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.canCreate(p); err != nil {
		return &storage.PathError{Op: "put", Path: p, Err: err}
	}
	// Clone so the caller may reuse its slice; never return nil data so an
	// empty object is still distinguishable from none.
	d.files[p] = &file{data: append([]byte{}, content...), modTime: time.Now()}
	return nil
}

// Reader implements storage.Driver.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if err := storage.CheckOp(ctx, "reader", p); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, &storage.PathError{Op: "reader", Path: p, Err: fmt.Errorf("negative offset %d", offset)}
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	f := d.files[p]
	if f == nil {
		return nil, notFound("reader", p)
	}
	data := f.data[:len(f.data):len(f.data)]
	offset = min(offset, int64(len(data)))
	return io.NopCloser(bytes.NewReader(data[offset:])), nil
}

// Writer implements storage.Driver.
func (d *Driver) Writer(ctx context.Context, p string, resume bool) (storage.FileWriter, error) {
	if err := storage.CheckObject(ctx, "writer", p); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.files[p]
	if resume {
		if f == nil {
			return nil, notFound("writer", p)
		}
	} else {
		if err := d.canCreate(p); err != nil {
			return nil, &storage.PathError{Op: "writer", Path: p, Err: err}
		}
		f = &file{data: []byte{}, modTime: time.Now()}
		d.files[p] = f
	}
	return &writer{d: d, f: f, path: p, size: int64(len(f.data))}, nil
}

// Stat implements storage.Driver.
func (d *Driver) Stat(ctx context.Context, p string) (storage.FileInfo, error) {
	if err := storage.CheckOp(ctx, "stat", p); err != nil {
		return storage.FileInfo{}, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if f := d.files[p]; f != nil {
		return storage.FileInfo{Path: p, Size: int64(len(f.data)), ModTime: f.modTime}, nil
	}
	// An implicit directory is as new as its newest object.
	info := storage.FileInfo{Path: p, IsDir: true}
	found := p == "/"
	for _, f := range d.below(p) {
		found = true
		if f.modTime.After(info.ModTime) {
			info.ModTime = f.modTime
		}
	}
	if !found {
		return storage.FileInfo{}, notFound("stat", p)
	}
	return info, nil
}

// List implements storage.Driver.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if err := storage.CheckOp(ctx, "list", p); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	prefix := dirPrefix(p)
	seen := make(map[string]bool)
	children := []string{}
	for name := range d.below(p) {
		child := prefix + strings.SplitN(name[len(prefix):], "/", 2)[0]
		if !seen[child] {
			seen[child] = true
			children = append(children, child)
		}
	}
	if len(children) == 0 && p != "/" {
		return nil, notFound("list", p)
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
	d.mu.Lock()
	defer d.mu.Unlock()
	if f := d.files[src]; f != nil {
		if src == dst {
			return nil
		}
		if err := d.canCreate(dst); err != nil {
			return &storage.PathError{Op: "move", Path: dst, Err: err}
		}
		d.files[dst] = f
		delete(d.files, src)
		return nil
	}

	// Directory move: like rename(2), the destination must not exist (an
	// implicit directory is never empty) and must not lie inside the source.
	moved := make(map[string]*file)
	for name, f := range d.below(src) {
		moved[name] = f
	}
	if len(moved) == 0 {
		return notFound("move", src)
	}
	if src == dst {
		return nil
	}
	if strings.HasPrefix(dst, dirPrefix(src)) {
		return &storage.PathError{Op: "move", Path: dst, Err: errMoveInto}
	}
	if err := d.canCreate(dst); err != nil {
		return &storage.PathError{Op: "move", Path: dst, Err: err}
	}
	if d.files[dst] != nil {
		return &storage.PathError{Op: "move", Path: dst, Err: errors.New("destination is a file")}
	}
	for name, f := range moved {
		delete(d.files, name)
		d.files[dst+name[len(src):]] = f
	}
	return nil
}

// Delete implements storage.Driver.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if err := storage.CheckObject(ctx, "delete", p); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	found := d.files[p] != nil
	delete(d.files, p)
	for name := range d.below(p) {
		found = true
		delete(d.files, name)
	}
	if !found {
		return notFound("delete", p)
	}
	return nil
}

// below yields the objects inside directory p. Linear in the number of
// objects, which is fine for a test driver.
func (d *Driver) below(p string) func(yield func(string, *file) bool) {
	prefix := dirPrefix(p)
	return func(yield func(string, *file) bool) {
		for name, f := range d.files {
			if strings.HasPrefix(name, prefix) && !yield(name, f) {
				return
			}
		}
	}
}

// canCreate reports why an object cannot be placed at p: a filesystem cannot
// put a file where a directory is, or below a file.
func (d *Driver) canCreate(p string) error {
	for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
		if d.files[dir] != nil {
			return errNotDir
		}
	}
	for range d.below(p) {
		return errIsDir
	}
	return nil
}

func dirPrefix(p string) string {
	if p == "/" {
		return p
	}
	return p + "/"
}

func notFound(op, p string) error {
	return &storage.PathError{Op: op, Path: p, Err: storage.ErrNotFound}
}

var (
	errClosed    = errors.New("writer closed")
	errCommitted = errors.New("writer already committed")
	errCancelled = errors.New("writer cancelled")
)

// writer appends to its file under the driver lock. Like an open file
// descriptor it keeps writing to the same file if the path is replaced or
// moved meanwhile.
type writer struct {
	d    *Driver
	f    *file
	path string
	size int64
	err  error // non-nil once closed, committed or cancelled
}

func (w *writer) Write(b []byte) (int, error) {
	if w.err != nil {
		return 0, &storage.PathError{Op: "write", Path: w.path, Err: w.err}
	}
	w.d.mu.Lock()
	w.f.data = append(w.f.data, b...)
	w.f.modTime = time.Now()
	w.d.mu.Unlock()
	w.size += int64(len(b))
	return len(b), nil
}

func (w *writer) Size() int64 { return w.size }

// Close is idempotent so callers can defer it and still Cancel or Commit.
func (w *writer) Close() error {
	if w.err == nil {
		w.err = errClosed
	}
	return nil
}

func (w *writer) Cancel(ctx context.Context) error {
	if w.err != nil {
		return &storage.PathError{Op: "cancel", Path: w.path, Err: w.err}
	}
	w.err = errCancelled
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	if w.d.files[w.path] == w.f {
		delete(w.d.files, w.path)
	}
	return nil
}

func (w *writer) Commit(ctx context.Context) error {
	if w.err != nil {
		return &storage.PathError{Op: "commit", Path: w.path, Err: w.err}
	}
	if err := ctx.Err(); err != nil {
		return &storage.PathError{Op: "commit", Path: w.path, Err: err}
	}
	w.err = errCommitted
	return nil
}
