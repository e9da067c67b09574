package filesystem_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/filesystem"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

func TestDriver(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver { return newDriver(t) })
}

func newDriver(t testing.TB) *filesystem.Driver {
	t.Helper()
	d, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func TestNewCreatesRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "not", "there", "yet")
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		t.Fatalf("root not created: %v", err)
	}
	if d.Root() != root {
		t.Fatalf("Root() = %q, want %q", d.Root(), root)
	}
	// A second driver on an existing root is fine.
	if _, err := filesystem.New(root); err != nil {
		t.Fatalf("New on existing root: %v", err)
	}
}

func TestNewRootIsFile(t *testing.T) {
	root := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(root, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := filesystem.New(root); err == nil {
		t.Fatal("New on a file succeeded")
	}
}

// The HTTP layer type-asserts *os.File to serve blobs with sendfile.
func TestReaderIsFile(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	content := []byte("0123456789")
	if err := d.PutContent(ctx, "/blob", content); err != nil {
		t.Fatal(err)
	}
	for _, offset := range []int64{0, 4, 10, 11} {
		r, err := d.Reader(ctx, "/blob", offset)
		if err != nil {
			t.Fatalf("Reader(%d): %v", offset, err)
		}
		f, ok := r.(*os.File)
		if !ok {
			r.Close()
			t.Fatalf("Reader returned %T, want *os.File", r)
		}
		if pos, err := f.Seek(0, io.SeekCurrent); err != nil || pos != offset {
			t.Errorf("Reader(%d) positioned at %d, %v", offset, pos, err)
		}
		f.Close()
	}
}

// The on-disk layout must be distribution's: <root><path>.
func TestLayout(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	const (
		link   = "/docker/registry/v2/repositories/library/alpine/_layers/sha256/abcd/link"
		upload = "/docker/registry/v2/repositories/library/alpine/_uploads/0c4e/data"
		blob   = "/docker/registry/v2/blobs/sha256/ab/abcd/data"
	)
	if err := d.PutContent(ctx, link, []byte("sha256:abcd")); err != nil {
		t.Fatal(err)
	}
	w, err := d.Writer(ctx, upload, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("layer bytes"))
	// The writer's bytes sit at the path itself, as in distribution.
	assertFile(t, d.Root(), upload, "layer bytes")
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := d.Move(ctx, upload, blob); err != nil {
		t.Fatal(err)
	}
	assertFile(t, d.Root(), link, "sha256:abcd")
	assertFile(t, d.Root(), blob, "layer bytes")
	if _, err := os.Stat(filepath.Join(d.Root(), filepath.FromSlash(upload))); !os.IsNotExist(err) {
		t.Fatalf("upload still on disk after Move: %v", err)
	}
}

// A root populated by another registry is readable as is.
func TestReadsExistingTree(t *testing.T) {
	root := t.TempDir()
	full := filepath.Join(root, "docker", "registry", "v2", "blobs", "sha256", "12", "1234", "data")
	if err := os.MkdirAll(filepath.Dir(full), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte("from registry:2"), 0o666); err != nil {
		t.Fatal(err)
	}
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.GetContent(context.Background(), "/docker/registry/v2/blobs/sha256/12/1234/data")
	if err != nil || string(got) != "from registry:2" {
		t.Fatalf("GetContent = %q, %v", got, err)
	}
}

func TestPutContentLeavesNoTempFiles(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				content := bytes.Repeat([]byte{byte(i)}, 1000*j)
				if err := d.PutContent(ctx, fmt.Sprintf("/dir/%d", j%3), content); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// Failed writes must clean up too: a directory is in the way here.
	if err := d.PutContent(ctx, "/dir", []byte("x")); err == nil {
		t.Fatal("PutContent over a directory succeeded")
	}
	got := tree(t, d.Root())
	if want := []string{"dir", "dir/0", "dir/1", "dir/2"}; !slices.Equal(got, want) {
		t.Fatalf("files on disk = %q, want %q", got, want)
	}
}

// Temp files of interrupted writes and names outside the path alphabet (such
// as lost+found) exist on real volumes; List must not return them.
func TestListSkipsForeignEntries(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	if err := d.PutContent(ctx, "/x/real", nil); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(d.Root(), "x")
	for _, name := range []string{".berth-tmp-0123abcd", "lost+found", "with space"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.List(ctx, "/x")
	if err != nil || !slices.Equal(got, []string{"/x/real"}) {
		t.Fatalf("List = %q, %v; want [/x/real]", got, err)
	}
}

// A resumed upload may land on another process sharing the root; sessions
// end below, at and past the direct-I/O threshold, aligned or not.
func TestWriterResumeAcrossDrivers(t *testing.T) {
	const mib = 1 << 20
	for i, sessions := range [][]int{
		{6, 6},
		{1000, 3 * mib, 1, 0, 2 * mib},
		{2 * mib, 2 * mib, 4096, 5*mib + 3},
		{9*mib + 7, 10, 4 * mib},
	} {
		t.Run(fmt.Sprint(sessions), func(t *testing.T) {
			root := t.TempDir()
			d1, err := filesystem.New(root)
			if err != nil {
				t.Fatal(err)
			}
			d2, err := filesystem.New(root)
			if err != nil {
				t.Fatal(err)
			}
			storagetest.ResumeAcrossInstances(t, d1, d2, sessions, mib, uint64(i))
		})
	}
}

func assertFile(t *testing.T, root, p, want string) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(p)))
	if err != nil || string(got) != want {
		t.Fatalf("%s on disk = %q, %v; want %q", p, got, err, want)
	}
}

// tree lists everything under root, relative and slash-separated.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	for _, n := range names {
		if strings.Contains(n, ".berth-tmp-") {
			t.Errorf("temp file left behind: %s", n)
		}
	}
	return names
}

// PutScratch has PutContent's semantics except durability: atomic
// replacement under concurrent writers, exact content, no temp files left,
// the same path checks.
func TestPutScratch(t *testing.T) {
	d := newDriver(t)
	var _ storage.ScratchPutter = d
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				if err := d.PutScratch(ctx, "/state/s", bytes.Repeat([]byte{byte(i)}, 100+j)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got, err := d.GetContent(ctx, "/state/s")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 100 || !bytes.Equal(got, bytes.Repeat(got[:1], len(got))) {
		t.Fatalf("PutScratch content is a mix of writers: %q", got)
	}
	if files := tree(t, d.Root()); !slices.Equal(files, []string{"state", "state/s"}) {
		t.Fatalf("files on disk = %q", files)
	}
	if err := d.PutScratch(ctx, "/a/../b", []byte("x")); !errors.Is(err, storage.ErrInvalidPath) {
		t.Errorf("PutScratch of a bad path: %v, want ErrInvalidPath", err)
	}
}
