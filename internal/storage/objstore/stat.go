package objstore

import (
	"context"
	"time"

	"github.com/berth-registry/berth/internal/storage"
)

// Object is what a store's HEAD of one object tells.
type Object struct {
	Size    int64
	ModTime time.Time
}

// Stat is storage.Driver.Stat for a store without directories: p is an
// object if head finds one, a directory if anything lies below it
// (hasChildren), and missing otherwise (a *storage.PathError wrapping
// storage.ErrNotFound). Errors from head and hasChildren are returned as
// they are, for the driver to wrap.
func Stat(ctx context.Context, p string, head func(context.Context) (Object, bool, error), hasChildren func(context.Context) (bool, error)) (storage.FileInfo, error) {
	if err := storage.CheckOp(ctx, "stat", p); err != nil {
		return storage.FileInfo{}, err
	}
	if p == "/" {
		return storage.FileInfo{Path: p, IsDir: true}, nil
	}
	obj, found, err := head(ctx)
	if err != nil {
		return storage.FileInfo{}, err
	}
	if found {
		return storage.FileInfo{Path: p, Size: obj.Size, ModTime: obj.ModTime}, nil
	}
	dir, err := hasChildren(ctx)
	if err != nil {
		return storage.FileInfo{}, err
	}
	if !dir {
		return storage.FileInfo{}, &storage.PathError{Op: "stat", Path: p, Err: storage.ErrNotFound}
	}
	return storage.FileInfo{Path: p, IsDir: true}, nil
}
