package objstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/storage"
)

func TestStat(t *testing.T) {
	mod := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	boom := errors.New("store down")
	object := func(context.Context) (Object, bool, error) { return Object{Size: 7, ModTime: mod}, true, nil }
	none := func(context.Context) (Object, bool, error) { return Object{}, false, nil }
	headFails := func(context.Context) (Object, bool, error) { return Object{}, false, boom }
	children := func(context.Context) (bool, error) { return true, nil }
	empty := func(context.Context) (bool, error) { return false, nil }
	listFails := func(context.Context) (bool, error) { return false, boom }
	for _, tc := range []struct {
		name     string
		p        string
		head     func(context.Context) (Object, bool, error)
		children func(context.Context) (bool, error)
		want     storage.FileInfo
		wantErr  error
	}{
		{"root", "/", headFails, listFails, storage.FileInfo{Path: "/", IsDir: true}, nil},
		{"object", "/a/b", object, listFails, storage.FileInfo{Path: "/a/b", Size: 7, ModTime: mod}, nil},
		{"directory", "/a", none, children, storage.FileInfo{Path: "/a", IsDir: true}, nil},
		{"missing", "/a/c", none, empty, storage.FileInfo{}, storage.ErrNotFound},
		{"head fails", "/a/b", headFails, children, storage.FileInfo{}, boom},
		{"listing fails", "/a", none, listFails, storage.FileInfo{}, boom},
		{"bad path", "/a/../b", object, children, storage.FileInfo{}, storage.ErrInvalidPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Stat(context.Background(), tc.p, tc.head, tc.children)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("Stat = %+v, want %+v", got, tc.want)
			}
		})
	}
}
