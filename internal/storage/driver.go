// Package storage defines the interface between berth's content model and the
// place bytes live: a local filesystem, memory, or (later) an object store.
//
// The interface is shaped by the weakest backend berth must support. Object
// stores have no atomic rename, no append and no free directory listing, so:
//   - whole small objects are written with PutContent, which must be atomic
//     (a reader sees the old content or the new, never a mix);
//   - large objects are streamed through a Writer, which keeps its state in
//     the backend itself (a multipart upload, segments, an append file) so a
//     write suspended with Close can be resumed by another process;
//   - Move is the only way a finished object reaches its final name, and the
//     destination becomes visible in one step.
//
// Paths are slash-separated, absolute, and limited to a conservative alphabet;
// every driver rejects anything else with ErrInvalidPath before touching the
// backend, so a bug higher up cannot walk out of the root.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Driver is implemented by every storage backend.
type Driver interface {
	// Name identifies the backend in logs ("filesystem", "inmemory", ...).
	Name() string

	// GetContent returns the whole object at path. Meant for small objects
	// (links, manifests); large ones are read with Reader.
	GetContent(ctx context.Context, path string) ([]byte, error)

	// PutContent atomically replaces the object at path.
	PutContent(ctx context.Context, path string, content []byte) error

	// Reader streams the object at path starting at offset. An offset at or
	// beyond the end yields an empty reader, not an error.
	Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error)

	// Writer opens a resumable writer for path. With resume=false any earlier
	// partial write is discarded; with resume=true writing continues after the
	// bytes already written (ErrNotFound if there are none).
	Writer(ctx context.Context, path string, resume bool) (FileWriter, error)

	// Stat describes the object or directory at path.
	Stat(ctx context.Context, path string) (FileInfo, error)

	// List returns the full paths of the direct children of the directory at
	// path, in no particular order.
	List(ctx context.Context, path string) ([]string, error)

	// Move makes the object at src available at dst, replacing dst, and
	// removes src. dst appears in one step.
	Move(ctx context.Context, src, dst string) error

	// Delete removes the object or the whole tree at path.
	Delete(ctx context.Context, path string) error
}

// FileWriter streams a large object. Readers must not rely on the object at
// the path before Commit (object stores only create it then; the filesystem
// writes in place); Close suspends the write, keeping what was written
// durable, so Writer(path, true) can continue it, in this or another process.
type FileWriter interface {
	io.Writer
	// Size is the number of bytes written so far, including earlier sessions.
	Size() int64
	// Close releases local resources; written bytes stay resumable.
	Close() error
	// Cancel discards everything written.
	Cancel(ctx context.Context) error
	// Commit makes the bytes durable and the object readable at its path.
	// The writer must still be closed afterwards.
	Commit(ctx context.Context) error
}

// ScratchPutter is an optional capability: PutScratch stores a small object
// atomically, like PutContent, but need not make it durable, so a crash may
// lose it (it is then missing or holds its previous content). Callers use it
// for state that only saves work, such as an upload's hash state, and fall
// back to PutContent on drivers without it.
type ScratchPutter interface {
	PutScratch(ctx context.Context, path string, content []byte) error
}

// FileInfo describes a stored object or directory.
type FileInfo struct {
	Path    string
	Size    int64
	ModTime time.Time
	IsDir   bool
}

// Sentinel errors. Drivers wrap them with the path for context; callers test
// with errors.Is.
var (
	ErrNotFound    = errors.New("storage: not found")
	ErrInvalidPath = errors.New("storage: invalid path")
)

// PathError wraps a driver error with the operation and path.
type PathError struct {
	Op   string
	Path string
	Err  error
}

func (e *PathError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, e.Path, e.Err) }
func (e *PathError) Unwrap() error { return e.Err }

// CheckPath rejects paths that are not absolute, contain empty, "." or ".."
// components, or use characters outside the alphabet registry paths need
// (repository names, tags, digests, upload ids). Drivers call it first.
func CheckPath(p string) error {
	if p == "/" {
		return nil
	}
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' || len(p) > 4096 {
		return &PathError{Op: "check", Path: p, Err: ErrInvalidPath}
	}
	for _, part := range strings.Split(p[1:], "/") {
		if part == "" || part == "." || part == ".." {
			return &PathError{Op: "check", Path: p, Err: ErrInvalidPath}
		}
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '/', c == '.', c == '_', c == '-':
		default:
			return &PathError{Op: "check", Path: p, Err: ErrInvalidPath}
		}
	}
	return nil
}

// CheckOp is what a driver runs first for operation op on p: CheckPath,
// then a cancelled ctx gives up early, wrapped with op and p.
func CheckOp(ctx context.Context, op, p string) error {
	if err := CheckPath(p); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return &PathError{Op: op, Path: p, Err: err}
	}
	return nil
}

// CheckObject is CheckOp for operations that create, replace, remove or
// address an object: "/" names the root directory, never an object, and
// must not be deleted or moved.
func CheckObject(ctx context.Context, op, p string) error {
	if p == "/" {
		return &PathError{Op: op, Path: p, Err: ErrInvalidPath}
	}
	return CheckOp(ctx, op, p)
}
