// Package storagetest is the conformance suite for storage.Driver
// implementations. Every backend runs it from its own tests:
//
//	func TestDriver(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Driver { return New() })
//	}
//
// Each subtest gets a fresh, empty driver from newDriver.
//
// The suite pins down what the rest of berth relies on, including behaviour
// the interface comments leave open: a path is never both an object and a
// directory, reading a directory is ErrNotFound, "/" cannot be written, moved
// or deleted, and FileWriter.Close is idempotent.
//
// It does not assert that a Writer's bytes are invisible before Commit (the
// filesystem driver, like distribution's, writes at the path itself), nor
// whether a directory emptied by Delete or Move still exists (a filesystem
// keeps it, an object store cannot).
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/berth-registry/berth/internal/storage"
)

// Run runs the whole suite against drivers made by newDriver.
func Run(t *testing.T, newDriver func(t *testing.T) storage.Driver) {
	tests := []struct {
		name string
		fn   func(*testing.T, storage.Driver)
	}{
		{"PutGetContent", testPutGetContent},
		{"PutContentOverwrite", testPutContentOverwrite},
		{"PutContentCallerOwnsSlice", testPutContentCallerOwnsSlice},
		{"AtomicOverwriteConcurrentReaders", testAtomicOverwrite},
		{"ConcurrentPutContent", testConcurrentPutContent},
		{"Reader", testReader},
		{"ReaderMissing", testReaderMissing},
		{"WriterStream", testWriterStream},
		{"WriterReadFrom", testWriterReadFrom},
		{"WriterReadFromFailingSource", testWriterReadFromFailingSource},
		{"WriterResume", testWriterResume},
		{"WriterRestartDiscards", testWriterRestartDiscards},
		{"WriterResumeMissing", testWriterResumeMissing},
		{"WriterCancel", testWriterCancel},
		{"WriterUseAfterEnd", testWriterUseAfterEnd},
		{"LargeObject", testLargeObject},
		{"Stat", testStat},
		{"List", testList},
		{"Move", testMove},
		{"MoveDirectory", testMoveDirectory},
		{"Delete", testDelete},
		{"DeleteSuspendedWriter", testDeleteSuspendedWriter},
		{"FileDirectoryConflicts", testConflicts},
		{"Root", testRoot},
		{"InvalidPaths", testInvalidPaths},
		{"CancelledContext", testCancelledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newDriver(t))
		})
	}
}

func testPutGetContent(t *testing.T, d storage.Driver) {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	for _, tc := range []struct {
		name    string
		path    string
		content []byte
	}{
		{"empty", "/empty", []byte{}},
		{"nil", "/nil", nil},
		{"small", "/small", []byte("hello")},
		{"all byte values", "/bin/all", allBytes},
		{"one MiB", "/big/blob", RandomBytes(1, 1<<20)},
		{"deep path", "/docker/registry/v2/repositories/library/alpine/_manifests/tags/latest/current/link", []byte("sha256:abc")},
		{"name alphabet", "/A-z_0.9/x.y-z_w", []byte("ok")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if err := d.PutContent(ctx, tc.path, tc.content); err != nil {
				t.Fatalf("PutContent: %v", err)
			}
			got, err := d.GetContent(ctx, tc.path)
			if err != nil {
				t.Fatalf("GetContent: %v", err)
			}
			if !bytes.Equal(got, tc.content) {
				t.Fatalf("GetContent = %d bytes, want %d bytes", len(got), len(tc.content))
			}
			info, err := d.Stat(ctx, tc.path)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if info.Size != int64(len(tc.content)) || info.IsDir {
				t.Fatalf("Stat = %+v, want size %d file", info, len(tc.content))
			}
		})
	}
}

func testPutContentOverwrite(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	// Shrinking, growing, and emptying: an overwrite must not leave a tail.
	for i, content := range [][]byte{
		[]byte("a fairly long first value"),
		[]byte("short"),
		bytes.Repeat([]byte("x"), 70000),
		{},
		[]byte("last"),
	} {
		MustPut(t, d, "/o/v", content)
		if got := MustGet(t, d, "/o/v"); !bytes.Equal(got, content) {
			t.Fatalf("after write %d: got %q, want %q", i, trunc(got), trunc(content))
		}
	}
	if got, err := d.List(ctx, "/o"); err != nil || !slices.Equal(got, []string{"/o/v"}) {
		t.Fatalf("List(/o) = %q, %v; want only /o/v", got, err)
	}
}

func testPutContentCallerOwnsSlice(t *testing.T, d storage.Driver) {
	buf := []byte("original")
	MustPut(t, d, "/s", buf)
	copy(buf, "XXXXXXXX")
	if got := MustGet(t, d, "/s"); string(got) != "original" {
		t.Fatalf("stored content changed with the caller's slice: %q", got)
	}
	got := MustGet(t, d, "/s")
	copy(got, "YYYYYYYY")
	if got := MustGet(t, d, "/s"); string(got) != "original" {
		t.Fatalf("stored content changed with a returned slice: %q", got)
	}
}

// testAtomicOverwrite keeps replacing an object with one of two values of
// different lengths until every reader has checked a number of full reads,
// so writes overlap the whole reading period regardless of scheduling.
func testAtomicOverwrite(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	values := [][]byte{
		bytes.Repeat([]byte("a"), 256<<10),
		bytes.Repeat([]byte("b"), 256<<10+4097),
	}
	MustPut(t, d, "/atomic/v", values[0])

	const readers, reads = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for r := range readers {
		wg.Go(func() {
			for range reads {
				var got []byte
				var err error
				if r%2 == 0 {
					got, err = d.GetContent(ctx, "/atomic/v")
				} else {
					got, err = readSlowly(ctx, d, "/atomic/v")
				}
				if err != nil {
					errs <- fmt.Errorf("read: %w", err)
					return
				}
				if !bytes.Equal(got, values[0]) && !bytes.Equal(got, values[1]) {
					errs <- fmt.Errorf("read a mix: %d bytes, %d of them 'a'", len(got), bytes.Count(got, []byte("a")))
					return
				}
			}
		})
	}
	readersDone := make(chan struct{})
	go func() { wg.Wait(); close(readersDone) }()
writing:
	for i := 0; ; i++ {
		select {
		case <-readersDone:
			break writing
		default:
		}
		if err := d.PutContent(ctx, "/atomic/v", values[i%2]); err != nil {
			t.Errorf("PutContent: %v", err)
			<-readersDone
			break
		}
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// readSlowly streams an object in small chunks, keeping the reader open
// across many of a concurrent writer's replacements.
func readSlowly(ctx context.Context, d storage.Driver, p string) ([]byte, error) {
	r, err := d.Reader(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var buf bytes.Buffer
	_, err = io.CopyBuffer(&buf, struct{ io.Reader }{r}, make([]byte, 4096))
	return buf.Bytes(), err
}

func testConcurrentPutContent(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	const writers = 8
	for round := range 5 {
		values := make([][]byte, writers)
		for i := range values {
			values[i] = bytes.Repeat([]byte{byte('A' + i)}, 64<<10+i*1000)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				<-start
				if err := d.PutContent(ctx, "/race/v", values[i]); err != nil {
					t.Errorf("round %d writer %d: %v", round, i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		got := MustGet(t, d, "/race/v")
		if !slices.ContainsFunc(values, func(v []byte) bool { return bytes.Equal(v, got) }) {
			t.Fatalf("round %d: final content is no single writer's value: %d bytes starting %q", round, len(got), trunc(got))
		}
	}
	if got, err := d.List(ctx, "/race"); err != nil || !slices.Equal(got, []string{"/race/v"}) {
		t.Fatalf("List(/race) = %q, %v; want only /race/v", got, err)
	}
}

func testReader(t *testing.T, d storage.Driver) {
	content := RandomBytes(2, 10000)
	MustPut(t, d, "/r/blob", content)
	for _, offset := range []int64{0, 1, 4096, 5000, 9999, 10000, 10001, 1 << 40} {
		t.Run(fmt.Sprint(offset), func(t *testing.T) {
			got, err := readAll(context.Background(), d, "/r/blob", offset)
			if err != nil {
				t.Fatalf("Reader(%d): %v", offset, err)
			}
			want := content[min(offset, int64(len(content))):]
			if !bytes.Equal(got, want) {
				t.Fatalf("Reader(%d) = %d bytes, want %d", offset, len(got), len(want))
			}
		})
	}
	t.Run("negative", func(t *testing.T) {
		r, err := d.Reader(context.Background(), "/r/blob", -1)
		if err == nil {
			r.Close()
			t.Fatal("Reader(-1) succeeded")
		}
	})
	t.Run("empty object", func(t *testing.T) {
		MustPut(t, d, "/r/empty", nil)
		for _, offset := range []int64{0, 1} {
			got, err := readAll(context.Background(), d, "/r/empty", offset)
			if err != nil || len(got) != 0 {
				t.Fatalf("Reader(%d) = %q, %v; want empty", offset, got, err)
			}
		}
	})
}

func testReaderMissing(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	MustPut(t, d, "/m/dir/file", []byte("x"))
	for _, p := range []string{"/nope", "/m/nope", "/m/dir", "/m/dir/file/below"} {
		r, err := d.Reader(ctx, p, 0)
		if err == nil {
			r.Close()
		}
		wantErr(t, "Reader("+p+")", err, storage.ErrNotFound)
		_, err = d.GetContent(ctx, p)
		wantErr(t, "GetContent("+p+")", err, storage.ErrNotFound)
	}
}

func testWriterStream(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	content := RandomBytes(3, 5<<20+123)
	w, err := d.Writer(ctx, "/w/stream", false)
	if err != nil {
		t.Fatalf("Writer: %v", err)
	}
	defer w.Close()
	if w.Size() != 0 {
		t.Fatalf("new writer Size = %d", w.Size())
	}
	// Chunk sizes from a single byte to 100 KiB, like a network stream.
	rng := rand.New(rand.NewPCG(4, 4))
	var writes int
	for rest := content; len(rest) > 0; writes++ {
		n := min(len(rest), 1+rng.IntN(100<<10))
		if n, err := w.Write(rest[:n]); err != nil || n != len(rest[:n]) {
			t.Fatalf("Write: %d, %v", n, err)
		}
		rest = rest[n:]
		if want := int64(len(content) - len(rest)); w.Size() != want {
			t.Fatalf("after %d writes Size = %d, want %d", writes+1, w.Size(), want)
		}
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if w.Size() != int64(len(content)) {
		t.Fatalf("Size after Commit = %d", w.Size())
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := MustGet(t, d, "/w/stream"); !bytes.Equal(got, content) {
		t.Fatalf("content after %d writes differs: got %d bytes, want %d", writes, len(got), len(content))
	}
	if info, err := d.Stat(ctx, "/w/stream"); err != nil || info.Size != int64(len(content)) {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
}

// testWriterReadFrom copies an object into a writer with io.Copy, which is
// how blobs are mounted and how writers implementing io.ReaderFrom get used.
func testWriterReadFrom(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	content := RandomBytes(5, 3<<20+7)
	MustPut(t, d, "/rf/src", content)
	w, err := d.Writer(ctx, "/rf/dst", false)
	if err != nil {
		t.Fatalf("Writer: %v", err)
	}
	defer w.Close()
	w.Write(content[:10])
	r, err := d.Reader(ctx, "/rf/src", 10)
	if err != nil {
		t.Fatalf("Reader: %v", err)
	}
	n, err := io.Copy(w, r)
	r.Close()
	if err != nil || n != int64(len(content)-10) {
		t.Fatalf("io.Copy = %d, %v; want %d", n, err, len(content)-10)
	}
	// And from a plain reader, which cannot take a zero-copy path.
	if _, err := io.Copy(w, bytes.NewReader(content)); err != nil {
		t.Fatalf("io.Copy: %v", err)
	}
	want := append(slices.Clone(content), content...)
	if w.Size() != int64(len(want)) {
		t.Fatalf("Size = %d, want %d", w.Size(), len(want))
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := MustGet(t, d, "/rf/dst"); !bytes.Equal(got, want) {
		t.Fatalf("content differs: got %d bytes, want %d", len(got), len(want))
	}
}

// testWriterReadFromFailingSource cuts the source off midway, as a client
// that disconnects during a chunk: io.Copy reports the source's error, and
// every byte read before it is kept (the content layer resumes the upload
// from Size).
func testWriterReadFromFailingSource(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	content := RandomBytes(9, 3<<20+7)
	errCut := errors.New("connection reset")
	w, err := d.Writer(ctx, "/rf/cut", false)
	if err != nil {
		t.Fatalf("Writer: %v", err)
	}
	defer w.Close()
	n, err := io.Copy(w, io.MultiReader(bytes.NewReader(content), iotest.ErrReader(errCut)))
	if !errors.Is(err, errCut) || n != int64(len(content)) {
		t.Fatalf("io.Copy = %d, %v; want %d and the source's error", n, err, len(content))
	}
	if w.Size() != int64(len(content)) {
		t.Fatalf("Size = %d, want %d", w.Size(), len(content))
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := MustGet(t, d, "/rf/cut"); !bytes.Equal(got, content) {
		t.Fatalf("content differs: got %d bytes, want %d", len(got), len(content))
	}
}

func testWriterResume(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	parts := [][]byte{RandomBytes(6, 100<<10), RandomBytes(7, 1), {}, RandomBytes(8, 1<<20)}
	var want []byte
	for i, part := range parts {
		w, err := d.Writer(ctx, "/_uploads/u1/data", i > 0)
		if err != nil {
			t.Fatalf("session %d: Writer: %v", i, err)
		}
		if w.Size() != int64(len(want)) {
			t.Fatalf("session %d: Size = %d, want %d", i, w.Size(), len(want))
		}
		if _, err := w.Write(part); err != nil {
			t.Fatalf("session %d: Write: %v", i, err)
		}
		want = append(want, part...)
		if i == len(parts)-1 {
			if err := w.Commit(ctx); err != nil {
				t.Fatalf("Commit: %v", err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatalf("session %d: Close: %v", i, err)
		}
	}
	if got := MustGet(t, d, "/_uploads/u1/data"); !bytes.Equal(got, want) {
		t.Fatalf("content is not the concatenation: got %d bytes, want %d", len(got), len(want))
	}
}

func testWriterRestartDiscards(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	w, err := d.Writer(ctx, "/restart", false)
	if err != nil {
		t.Fatalf("Writer: %v", err)
	}
	w.Write([]byte("stale bytes that must go"))
	w.Close()
	w, err = d.Writer(ctx, "/restart", false)
	if err != nil {
		t.Fatalf("Writer: %v", err)
	}
	defer w.Close()
	if w.Size() != 0 {
		t.Fatalf("Size = %d after resume=false, want 0", w.Size())
	}
	w.Write([]byte("fresh"))
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := MustGet(t, d, "/restart"); string(got) != "fresh" {
		t.Fatalf("content = %q, want %q", got, "fresh")
	}
}

func testWriterResumeMissing(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	MustPut(t, d, "/rm/dir/file", []byte("x"))
	for _, p := range []string{"/rm/nope", "/rm/dir", "/rm/dir/file/below"} {
		w, err := d.Writer(ctx, p, true)
		if err == nil {
			w.Close()
		}
		wantErr(t, "Writer("+p+", resume)", err, storage.ErrNotFound)
	}
	if _, err := d.Stat(ctx, "/rm/nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("failed resume created something: Stat = %v", err)
	}
}

func testWriterCancel(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	for _, resumed := range []bool{false, true} {
		t.Run(fmt.Sprintf("resumed=%v", resumed), func(t *testing.T) {
			p := fmt.Sprintf("/cancel/%v/data", resumed)
			w, err := d.Writer(ctx, p, false)
			if err != nil {
				t.Fatalf("Writer: %v", err)
			}
			w.Write([]byte("doomed"))
			if resumed {
				w.Close()
				if w, err = d.Writer(ctx, p, true); err != nil {
					t.Fatalf("resume: %v", err)
				}
				w.Write([]byte(" too"))
			}
			if err := w.Cancel(ctx); err != nil {
				t.Fatalf("Cancel: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close after Cancel: %v", err)
			}
			_, err = d.Stat(ctx, p)
			wantErr(t, "Stat after Cancel", err, storage.ErrNotFound)
			_, err = d.Writer(ctx, p, true)
			wantErr(t, "resume after Cancel", err, storage.ErrNotFound)
		})
	}
}

func testWriterUseAfterEnd(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	ends := []struct {
		name string
		end  func(storage.FileWriter) error
	}{
		{"Close", func(w storage.FileWriter) error { return w.Close() }},
		{"Commit", func(w storage.FileWriter) error { return w.Commit(ctx) }},
		{"Cancel", func(w storage.FileWriter) error { return w.Cancel(ctx) }},
	}
	for _, e := range ends {
		t.Run(e.name, func(t *testing.T) {
			p := "/end/" + e.name
			w, err := d.Writer(ctx, p, false)
			if err != nil {
				t.Fatalf("Writer: %v", err)
			}
			w.Write([]byte("abc"))
			if err := e.end(w); err != nil {
				t.Fatalf("%s: %v", e.name, err)
			}
			if n, err := w.Write([]byte("more")); err == nil || n != 0 {
				t.Errorf("Write after %s = %d, %v; want an error", e.name, n, err)
			}
			if rf, ok := w.(io.ReaderFrom); ok {
				if n, err := rf.ReadFrom(bytes.NewReader([]byte("more"))); err == nil || n != 0 {
					t.Errorf("ReadFrom after %s = %d, %v; want an error", e.name, n, err)
				}
			}
			if err := w.Commit(ctx); err == nil {
				t.Errorf("Commit after %s succeeded", e.name)
			}
			if e.name != "Cancel" {
				if err := w.Cancel(ctx); err == nil {
					t.Errorf("Cancel after %s succeeded", e.name)
				}
			}
			if err := w.Close(); err != nil {
				t.Errorf("Close after %s: %v", e.name, err)
			}
			if w.Size() != 3 {
				t.Errorf("Size after %s = %d, want 3", e.name, w.Size())
			}
			if e.name != "Cancel" {
				if got := MustGet(t, d, p); string(got) != "abc" {
					t.Errorf("content after %s = %q, want %q", e.name, got, "abc")
				}
			}
		})
	}
}

// testLargeObject streams a generated object through a Writer and reads it
// back through a Reader, comparing digests so the test never holds it whole.
func testLargeObject(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	size := int64(64 << 20)
	if testing.Short() {
		size = 8 << 20
	}
	src := io.LimitReader(rand.NewChaCha8([32]byte{9}), size)
	wantSum := sha256.New()

	w, err := d.Writer(ctx, "/large/blob", false)
	if err != nil {
		t.Fatalf("Writer: %v", err)
	}
	defer w.Close()
	// Plain Writes (hiding io.ReaderFrom) in 1 MiB chunks, as an upload does.
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, io.TeeReader(src, wantSum), buf)
	if err != nil || n != size || w.Size() != size {
		t.Fatalf("copy = %d, %v; Size = %d; want %d", n, err, w.Size(), size)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	r, err := d.Reader(ctx, "/large/blob", 0)
	if err != nil {
		t.Fatalf("Reader: %v", err)
	}
	defer r.Close()
	gotSum := sha256.New()
	if n, err := io.CopyBuffer(gotSum, r, buf); err != nil || n != size {
		t.Fatalf("read back %d bytes, %v; want %d", n, err, size)
	}
	if !bytes.Equal(gotSum.Sum(nil), wantSum.Sum(nil)) {
		t.Fatalf("sha256 differs: got %x, want %x", gotSum.Sum(nil), wantSum.Sum(nil))
	}
	if info, err := d.Stat(ctx, "/large/blob"); err != nil || info.Size != size {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, size)
	}
}

func testStat(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	MustPut(t, d, "/st/dir/sub/file", []byte("12345"))
	MustPut(t, d, "/st/empty", nil)

	for _, tc := range []struct {
		path  string
		size  int64
		isDir bool
	}{
		{"/st/dir/sub/file", 5, false},
		{"/st/empty", 0, false},
		{"/st/dir/sub", 0, true},
		{"/st/dir", 0, true},
		{"/st", 0, true},
		{"/", 0, true},
	} {
		info, err := d.Stat(ctx, tc.path)
		if err != nil {
			t.Errorf("Stat(%s): %v", tc.path, err)
			continue
		}
		if info.Path != tc.path || info.IsDir != tc.isDir || (!tc.isDir && info.Size != tc.size) {
			t.Errorf("Stat(%s) = %+v, want size %d, dir %v", tc.path, info, tc.size, tc.isDir)
		}
		if !tc.isDir && info.ModTime.IsZero() {
			t.Errorf("Stat(%s) has no ModTime", tc.path)
		}
	}
	for _, p := range []string{"/nope", "/st/nope", "/st/dir/sub/file/below", "/st/di"} {
		_, err := d.Stat(ctx, p)
		wantErr(t, "Stat("+p+")", err, storage.ErrNotFound)
	}
}

func testList(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	if got, err := d.List(ctx, "/"); err != nil || len(got) != 0 {
		t.Fatalf("List(/) on an empty driver = %q, %v; want empty", got, err)
	}
	for _, p := range []string{"/t/a", "/t/b/c", "/t/b/d/e", "/t/b/d/f", "/t/f", "/t2", "/tt/x"} {
		MustPut(t, d, p, []byte(p))
	}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/", []string{"/t", "/t2", "/tt"}},
		{"/t", []string{"/t/a", "/t/b", "/t/f"}},
		{"/t/b", []string{"/t/b/c", "/t/b/d"}},
		{"/t/b/d", []string{"/t/b/d/e", "/t/b/d/f"}},
		{"/tt", []string{"/tt/x"}},
	} {
		got, err := d.List(ctx, tc.path)
		if err != nil {
			t.Errorf("List(%s): %v", tc.path, err)
			continue
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%s) = %q, want %q", tc.path, got, tc.want)
		}
	}
	// A file is not a directory, and a prefix of a name is not a parent.
	for _, p := range []string{"/nope", "/t/nope", "/t/a", "/t2", "/t/b/d/e/f"} {
		_, err := d.List(ctx, p)
		wantErr(t, "List("+p+")", err, storage.ErrNotFound)
	}
}

func testMove(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	t.Run("to new path", func(t *testing.T) {
		content := RandomBytes(10, 300<<10)
		MustPut(t, d, "/mv/new/src", content)
		if err := d.Move(ctx, "/mv/new/src", "/mv/new/deep/er/dst"); err != nil {
			t.Fatalf("Move: %v", err)
		}
		if got := MustGet(t, d, "/mv/new/deep/er/dst"); !bytes.Equal(got, content) {
			t.Fatalf("dst content differs")
		}
		_, err := d.Stat(ctx, "/mv/new/src")
		wantErr(t, "Stat(src)", err, storage.ErrNotFound)
	})
	t.Run("over existing", func(t *testing.T) {
		MustPut(t, d, "/mv/over/src", []byte("new"))
		MustPut(t, d, "/mv/over/dst", []byte("old and longer"))
		if err := d.Move(ctx, "/mv/over/src", "/mv/over/dst"); err != nil {
			t.Fatalf("Move: %v", err)
		}
		if got := MustGet(t, d, "/mv/over/dst"); string(got) != "new" {
			t.Fatalf("dst = %q, want %q", got, "new")
		}
		_, err := d.GetContent(ctx, "/mv/over/src")
		wantErr(t, "GetContent(src)", err, storage.ErrNotFound)
	})
	t.Run("missing source", func(t *testing.T) {
		MustPut(t, d, "/mv/missing/dst", []byte("keep"))
		err := d.Move(ctx, "/mv/missing/src", "/mv/missing/dst")
		wantErr(t, "Move", err, storage.ErrNotFound)
		if got := MustGet(t, d, "/mv/missing/dst"); string(got) != "keep" {
			t.Fatalf("dst = %q after failed Move", got)
		}
		err = d.Move(ctx, "/mv/missing/src", "/mv/missing/elsewhere/dst")
		wantErr(t, "Move", err, storage.ErrNotFound)
		_, err = d.Stat(ctx, "/mv/missing/elsewhere")
		wantErr(t, "Stat(dst parent) after failed Move", err, storage.ErrNotFound)
	})
	t.Run("onto itself", func(t *testing.T) {
		MustPut(t, d, "/mv/self", []byte("same"))
		if err := d.Move(ctx, "/mv/self", "/mv/self"); err != nil {
			t.Fatalf("Move: %v", err)
		}
		if got := MustGet(t, d, "/mv/self"); string(got) != "same" {
			t.Fatalf("content = %q", got)
		}
	})
	t.Run("upload written by Writer", func(t *testing.T) {
		w, err := d.Writer(ctx, "/mv/_uploads/id/data", false)
		if err != nil {
			t.Fatalf("Writer: %v", err)
		}
		w.Write([]byte("layer"))
		if err := w.Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		w.Close()
		if err := d.Move(ctx, "/mv/_uploads/id/data", "/mv/blobs/sha256/ab/abcd/data"); err != nil {
			t.Fatalf("Move: %v", err)
		}
		if got := MustGet(t, d, "/mv/blobs/sha256/ab/abcd/data"); string(got) != "layer" {
			t.Fatalf("content = %q", got)
		}
	})
}

func testMoveDirectory(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	MustPut(t, d, "/md/src/a", []byte("a"))
	MustPut(t, d, "/md/src/b/c", []byte("c"))
	if err := d.Move(ctx, "/md/src", "/md/dst/moved"); err != nil {
		t.Fatalf("Move: %v", err)
	}
	if got := MustGet(t, d, "/md/dst/moved/a"); string(got) != "a" {
		t.Fatalf("moved a = %q", got)
	}
	if got := MustGet(t, d, "/md/dst/moved/b/c"); string(got) != "c" {
		t.Fatalf("moved b/c = %q", got)
	}
	_, err := d.Stat(ctx, "/md/src")
	wantErr(t, "Stat(src)", err, storage.ErrNotFound)
}

func testDelete(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	t.Run("file", func(t *testing.T) {
		MustPut(t, d, "/del/f/x", []byte("x"))
		MustPut(t, d, "/del/f/y", []byte("y"))
		if err := d.Delete(ctx, "/del/f/x"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		_, err := d.GetContent(ctx, "/del/f/x")
		wantErr(t, "GetContent after Delete", err, storage.ErrNotFound)
		if got := MustGet(t, d, "/del/f/y"); string(got) != "y" {
			t.Fatalf("sibling = %q", got)
		}
		wantErr(t, "second Delete", d.Delete(ctx, "/del/f/x"), storage.ErrNotFound)
	})
	t.Run("subtree", func(t *testing.T) {
		for _, p := range []string{"/del/t/x/y/z", "/del/t/x/w", "/del/t/x2", "/del/t/other"} {
			MustPut(t, d, p, []byte(p))
		}
		if err := d.Delete(ctx, "/del/t/x"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		for _, p := range []string{"/del/t/x", "/del/t/x/y", "/del/t/x/y/z", "/del/t/x/w"} {
			_, err := d.Stat(ctx, p)
			wantErr(t, "Stat("+p+")", err, storage.ErrNotFound)
		}
		// "/del/t/x" is a prefix of "/del/t/x2" but not its parent.
		for _, p := range []string{"/del/t/x2", "/del/t/other"} {
			if got := MustGet(t, d, p); string(got) != p {
				t.Fatalf("%s = %q after deleting a sibling tree", p, got)
			}
		}
	})
	t.Run("missing", func(t *testing.T) {
		wantErr(t, "Delete", d.Delete(ctx, "/del/never"), storage.ErrNotFound)
		MustPut(t, d, "/del/file", nil)
		wantErr(t, "Delete below a file", d.Delete(ctx, "/del/file/below"), storage.ErrNotFound)
	})
}

// testDeleteSuspendedWriter deletes the directory of an upload whose
// writer was suspended (Close) after growing past a buffer, segment or
// part, as the upload purge does: nothing of it may remain, and no writer
// can resume it.
func testDeleteSuspendedWriter(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	const dir = "/ds/_uploads/u1"
	for i, n := range []int{6<<20 + 3, 1 << 20} {
		w, err := d.Writer(ctx, dir+"/data", i > 0)
		if err != nil {
			t.Fatalf("Writer %d: %v", i, err)
		}
		if _, err := w.Write(RandomBytes(uint64(40+i), n)); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close %d: %v", i, err)
		}
	}
	MustPut(t, d, dir+"/startedat", []byte("2024-01-01T00:00:00Z"))
	MustPut(t, d, "/ds/_uploads/u2/startedat", []byte("2024-01-01T00:00:00Z"))
	if err := d.Delete(ctx, dir); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if w, err := d.Writer(ctx, dir+"/data", true); !errors.Is(err, storage.ErrNotFound) {
		if err == nil {
			w.Close()
		}
		t.Fatalf("Writer(resume) after Delete: %v, want ErrNotFound", err)
	}
	for _, p := range []string{dir, dir + "/data", dir + "/startedat"} {
		_, err := d.Stat(ctx, p)
		wantErr(t, "Stat("+p+") after Delete", err, storage.ErrNotFound)
	}
	got, err := d.List(ctx, "/ds/_uploads")
	if err != nil || !slices.Equal(got, []string{"/ds/_uploads/u2"}) {
		t.Fatalf("List after Delete = %q, %v; want only the other upload", got, err)
	}
}

// testConflicts checks that a path is never both an object and a directory,
// as on a filesystem, and that failing writes do not report ErrNotFound.
func testConflicts(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	MustPut(t, d, "/c/file", []byte("file"))
	MustPut(t, d, "/c/dir/child", []byte("child"))
	MustPut(t, d, "/c/src", []byte("src"))

	writeFails := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s succeeded", what)
		} else if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrInvalidPath) {
			t.Errorf("%s = %v; want an error other than ErrNotFound/ErrInvalidPath", what, err)
		}
	}
	writeFails("PutContent below a file", d.PutContent(ctx, "/c/file/x", nil))
	writeFails("PutContent over a directory", d.PutContent(ctx, "/c/dir", nil))
	w, err := d.Writer(ctx, "/c/file/x", false)
	if err == nil {
		w.Close()
	}
	writeFails("Writer below a file", err)
	w, err = d.Writer(ctx, "/c/dir", false)
	if err == nil {
		w.Close()
	}
	writeFails("Writer over a directory", err)
	writeFails("Move below a file", d.Move(ctx, "/c/src", "/c/file/x"))
	writeFails("Move over a directory", d.Move(ctx, "/c/src", "/c/dir"))

	for p, want := range map[string]string{"/c/file": "file", "/c/dir/child": "child", "/c/src": "src"} {
		if got := MustGet(t, d, p); string(got) != want {
			t.Errorf("%s = %q after failed writes, want %q", p, got, want)
		}
	}
	got, err := d.List(ctx, "/c")
	slices.Sort(got)
	if want := []string{"/c/dir", "/c/file", "/c/src"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("List(/c) = %q, %v; want %q", got, err, want)
	}
}

// testRoot checks "/": a directory that always exists and can be listed, but
// never read, written, moved or deleted as an object.
func testRoot(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	MustPut(t, d, "/keep", []byte("k"))
	if info, err := d.Stat(ctx, "/"); err != nil || !info.IsDir {
		t.Fatalf("Stat(/) = %+v, %v", info, err)
	}
	_, err := d.GetContent(ctx, "/")
	wantErr(t, "GetContent(/)", err, storage.ErrNotFound)
	r, err := d.Reader(ctx, "/", 0)
	if err == nil {
		r.Close()
	}
	wantErr(t, "Reader(/)", err, storage.ErrNotFound)
	wantErr(t, "PutContent(/)", d.PutContent(ctx, "/", nil), storage.ErrInvalidPath)
	_, err = d.Writer(ctx, "/", false)
	wantErr(t, "Writer(/)", err, storage.ErrInvalidPath)
	wantErr(t, "Move(/, x)", d.Move(ctx, "/", "/x"), storage.ErrInvalidPath)
	wantErr(t, "Move(x, /)", d.Move(ctx, "/keep", "/"), storage.ErrInvalidPath)
	wantErr(t, "Delete(/)", d.Delete(ctx, "/"), storage.ErrInvalidPath)
	if got := MustGet(t, d, "/keep"); string(got) != "k" {
		t.Fatalf("/keep = %q", got)
	}
}

func testInvalidPaths(t *testing.T, d storage.Driver) {
	ctx := context.Background()
	// Objects the invalid paths might reach if they were not rejected.
	MustPut(t, d, "/a/b", []byte("b"))
	MustPut(t, d, "/b", []byte("top"))

	ops := []struct {
		name string
		call func(p string) error
	}{
		{"GetContent", func(p string) error { _, err := d.GetContent(ctx, p); return err }},
		{"PutContent", func(p string) error { return d.PutContent(ctx, p, []byte("bad")) }},
		{"Reader", func(p string) error {
			r, err := d.Reader(ctx, p, 0)
			if err == nil {
				r.Close()
			}
			return err
		}},
		{"Writer", func(p string) error {
			w, err := d.Writer(ctx, p, false)
			if err == nil {
				w.Close()
			}
			return err
		}},
		{"WriterResume", func(p string) error {
			w, err := d.Writer(ctx, p, true)
			if err == nil {
				w.Close()
			}
			return err
		}},
		{"Stat", func(p string) error { _, err := d.Stat(ctx, p); return err }},
		{"List", func(p string) error { _, err := d.List(ctx, p); return err }},
		{"MoveSrc", func(p string) error { return d.Move(ctx, p, "/moved") }},
		{"MoveDst", func(p string) error { return d.Move(ctx, "/b", p) }},
		{"Delete", func(p string) error { return d.Delete(ctx, p) }},
	}
	paths := []string{
		"", "relative", "a/b", "/a/../b", "/a/./b", "/a//b", "/a/", "//", "/a/b c",
		"/a/\x00", "/..", "/.", "/a/b\n", "/a\\b", "/a/b?", "/a/b#c", "/ä",
	}
	for _, op := range ops {
		for _, p := range paths {
			wantErr(t, fmt.Sprintf("%s(%q)", op.name, p), op.call(p), storage.ErrInvalidPath)
		}
	}
	if got := MustGet(t, d, "/a/b"); string(got) != "b" {
		t.Fatalf("/a/b = %q after invalid calls", got)
	}
	if got := MustGet(t, d, "/b"); string(got) != "top" {
		t.Fatalf("/b = %q after invalid calls", got)
	}
	got, err := d.List(ctx, "/")
	slices.Sort(got)
	if want := []string{"/a", "/b"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("List(/) = %q, %v; invalid calls changed the tree", got, err)
	}
}

func testCancelledContext(t *testing.T, d storage.Driver) {
	MustPut(t, d, "/ctx/f", []byte("f"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"GetContent": func() error { _, err := d.GetContent(ctx, "/ctx/f"); return err },
		"PutContent": func() error { return d.PutContent(ctx, "/ctx/g", nil) },
		"Reader":     func() error { _, err := d.Reader(ctx, "/ctx/f", 0); return err },
		"Writer":     func() error { _, err := d.Writer(ctx, "/ctx/g", false); return err },
		"Stat":       func() error { _, err := d.Stat(ctx, "/ctx/f"); return err },
		"List":       func() error { _, err := d.List(ctx, "/ctx"); return err },
		"Move":       func() error { return d.Move(ctx, "/ctx/f", "/ctx/g") },
		"Delete":     func() error { return d.Delete(ctx, "/ctx/f") },
	}
	for name, call := range calls {
		wantErr(t, name, call(), context.Canceled)
	}
	if got, err := d.List(context.Background(), "/ctx"); err != nil || !slices.Equal(got, []string{"/ctx/f"}) {
		t.Fatalf("List(/ctx) = %q, %v; cancelled calls changed the tree", got, err)
	}

	w, err := d.Writer(context.Background(), "/ctx/w", false)
	if err != nil {
		t.Fatalf("Writer: %v", err)
	}
	defer w.Close()
	w.Write([]byte("w"))
	wantErr(t, "Commit", w.Commit(ctx), context.Canceled)
	if err := w.Commit(context.Background()); err != nil {
		t.Fatalf("Commit after a cancelled Commit: %v", err)
	}
}

// MustPut stores content at p or fails the test.
func MustPut(t testing.TB, d storage.Driver, p string, content []byte) {
	t.Helper()
	if err := d.PutContent(context.Background(), p, content); err != nil {
		t.Fatalf("PutContent(%s): %v", p, err)
	}
}

// MustGet reads p whole or fails the test.
func MustGet(t testing.TB, d storage.Driver, p string) []byte {
	t.Helper()
	b, err := d.GetContent(context.Background(), p)
	if err != nil {
		t.Fatalf("GetContent(%s): %v", p, err)
	}
	return b
}

func readAll(ctx context.Context, d storage.Driver, p string, offset int64) ([]byte, error) {
	r, err := d.Reader(ctx, p, offset)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}

// RandomBytes returns n bytes that depend only on seed.
func RandomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// trunc shortens content for failure messages.
func trunc(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}
