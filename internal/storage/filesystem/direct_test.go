package filesystem

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/berth-registry/berth/internal/storage/storagetest"
)

// writeChunks writes data in pieces of varying, mostly unaligned sizes, as
// reads from a socket arrive.
func writeChunks(t *testing.T, w *fileWriter, data []byte, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	for len(data) > 0 {
		n := min(len(data), 1+r.IntN(3<<20))
		got, err := w.Write(data[:n])
		if err != nil || got != n {
			t.Fatalf("Write(%d bytes) = %d, %v", n, got, err)
		}
		data = data[n:]
	}
}

func openWriter(t *testing.T, d *Driver, p string, resume bool) *fileWriter {
	t.Helper()
	fw, err := d.Writer(context.Background(), p, resume)
	if err != nil {
		t.Fatal(err)
	}
	return fw.(*fileWriter)
}

func checkFile(t *testing.T, d *Driver, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(d.root, p))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes stored, want %d (equal prefix: %d)", p, len(got), len(want), commonPrefix(got, want))
	}
}

func commonPrefix(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// Past directThreshold a writer stages its bytes and writes them around the
// page cache; whatever the chunking, the file ends up byte for byte what
// was written, through Close, Commit, and a resume at an unaligned size.
func TestDirectWrites(t *testing.T) {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	total := 3*directThreshold + 3*directStage + 12345
	data := storagetest.RandomBytes(1, total)

	t.Run("close", func(t *testing.T) {
		w := openWriter(t, d, "/close/data", false)
		writeChunks(t, w, data, 2)
		if w.st == nil && !w.noDirect {
			t.Fatal("a writer past the threshold neither went direct nor found it refused")
		}
		if w.noDirect {
			t.Logf("direct I/O refused by the filesystem under %s: the page-cache fallback is tested", d.root)
		}
		if w.Size() != int64(total) {
			t.Fatalf("Size = %d, want %d", w.Size(), total)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		checkFile(t, d, "/close/data", data)
	})

	t.Run("resume unaligned", func(t *testing.T) {
		cut := directThreshold + 4097 // past the threshold, not on a block
		w := openWriter(t, d, "/resume/data", false)
		writeChunks(t, w, data[:cut], 3)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		checkFile(t, d, "/resume/data", data[:cut])
		w = openWriter(t, d, "/resume/data", true)
		if w.Size() != int64(cut) {
			t.Fatalf("resumed at %d, want %d", w.Size(), cut)
		}
		writeChunks(t, w, data[cut:], 4)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		checkFile(t, d, "/resume/data", data)
	})

	t.Run("commit", func(t *testing.T) {
		w := openWriter(t, d, "/commit/data", false)
		writeChunks(t, w, data[:2*directThreshold+7], 5)
		if err := w.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		checkFile(t, d, "/commit/data", data[:2*directThreshold+7])
	})

	t.Run("cancel", func(t *testing.T) {
		w := openWriter(t, d, "/cancel/data", false)
		writeChunks(t, w, data, 6)
		if err := w.Cancel(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(d.root, "/cancel/data")); !os.IsNotExist(err) {
			t.Fatalf("cancelled file still there: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ReadFrom", func(t *testing.T) {
		w := openWriter(t, d, "/readfrom/data", false)
		n, err := w.ReadFrom(bytes.NewReader(data))
		if err != nil || n != int64(total) {
			t.Fatalf("ReadFrom = %d, %v", n, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		checkFile(t, d, "/readfrom/data", data)
	})
}

func TestAlignedBuffers(t *testing.T) {
	for range 20 {
		b := newAligned(directStage)
		if len(*b) != directStage {
			t.Fatalf("len %d", len(*b))
		}
		if a := addr(*b); a%directAlign != 0 {
			t.Fatalf("buffer at %#x is not %d-aligned", a, directAlign)
		}
	}
}

// When a staged write fails, the writer reports it and Size falls back to
// exactly what the file holds: the bytes accepted but lost must not be
// counted (an upload's saved hash state is keyed by that size).
func TestDirectWriteFailureKeepsSizeTrue(t *testing.T) {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := openWriter(t, d, "/fail/data", false)
	data := storagetest.RandomBytes(7, directThreshold+5*directStage+100)
	writeChunks(t, w, data[:directThreshold+3*directStage+50], 8)
	if w.st == nil {
		t.Skipf("direct I/O refused under %s; nothing staged to fail", d.root)
	}
	f := w.f
	f.Close() // the disk goes away under the writer
	var werr error
	for rest := data[directThreshold+3*directStage+50:]; len(rest) > 0 && werr == nil; {
		n := min(len(rest), 1<<20)
		_, werr = w.Write(rest[:n])
		rest = rest[n:]
	}
	if werr == nil {
		werr = w.finishWrites()
	}
	if werr == nil {
		t.Fatal("writes to a closed file succeeded")
	}
	fi, err := os.Stat(filepath.Join(d.root, "/fail/data"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != fi.Size() {
		t.Fatalf("after the failure Size = %d, the file holds %d", w.Size(), fi.Size())
	}
	w.f = nil // already closed above
	w.dropStage()
}

// A writer resumed at an aligned size past the threshold goes direct from
// its first byte, and must still sync on Close.
func TestDirectResumeAlignedSyncs(t *testing.T) {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := storagetest.RandomBytes(9, directThreshold+3*directStage)
	cut := directThreshold + directStage
	w := openWriter(t, d, "/aligned/data", false)
	writeChunks(t, w, data[:cut], 10)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openWriter(t, d, "/aligned/data", true)
	writeChunks(t, w, data[cut:], 11)
	if w.st == nil && !w.noDirect {
		t.Fatal("a writer resumed past the threshold did not go direct")
	}
	if !w.dirty {
		t.Fatal("direct writes left the writer clean: Close would not sync them")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, d, "/aligned/data", data)
}

// A filesystem that refuses a direct write (EINVAL; forced here with a
// misaligned staging buffer) gets the bytes through the page cache, and
// the writer stays there.
func TestDirectRefusedFallsBack(t *testing.T) {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := storagetest.RandomBytes(12, directThreshold+3*directStage+99)
	w := openWriter(t, d, "/refused/data", false)
	writeChunks(t, w, data[:directThreshold+10], 13)
	if w.st == nil {
		t.Skipf("direct I/O refused under %s already", d.root)
	}
	// Misalign the staging buffer: every direct write from it is refused.
	raw := make([]byte, directStage+directAlign+1)
	off := directAlign - int(addr(raw)%directAlign) + 1
	mis := raw[off : off+directStage : off+directStage]
	copy(mis, (*w.st.cur)[:w.st.n])
	w.st.cur = &mis // release will not pool it
	writeChunks(t, w, data[directThreshold+10:], 14)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !w.noDirect {
		t.Fatal("a refused direct write did not move the writer to the page cache")
	}
	checkFile(t, d, "/refused/data", data)
}

// ReadFrom reads into the stage itself once the writer is past the
// threshold. Whatever sizes the reads come in, the file is byte for byte
// the stream; bytes read before the source fails are kept and counted; a
// writer kept off direct I/O copies through the cache.
func TestDirectReadFrom(t *testing.T) {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := storagetest.RandomBytes(15, directThreshold+4*directStage+777)
	errCut := errors.New("connection reset")
	for _, tc := range []struct {
		name     string
		cut      int // the source fails after this many bytes (0: it does not)
		noDirect bool
	}{
		{name: "whole"},
		{name: "source-fails", cut: directThreshold + 2*directStage + 5},
		{name: "no-direct-io", noDirect: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := "/" + tc.name + "/data"
			w := openWriter(t, d, p, false)
			w.noDirect = tc.noDirect
			want := data
			var src io.Reader = &oddReader{data: data, rng: rand.New(rand.NewPCG(16, 1))}
			if tc.cut > 0 {
				want = data[:tc.cut]
				src = io.MultiReader(&oddReader{data: want, rng: rand.New(rand.NewPCG(17, 1))}, iotest.ErrReader(errCut))
			}
			var staged bool
			n, err := w.ReadFrom(readHook{src, func() { staged = staged || w.st != nil }})
			if tc.cut > 0 && !errors.Is(err, errCut) {
				t.Fatalf("ReadFrom = %d, %v; want the source's error", n, err)
			} else if tc.cut == 0 && err != nil {
				t.Fatalf("ReadFrom = %d, %v", n, err)
			}
			if n != int64(len(want)) || w.Size() != int64(len(want)) {
				t.Fatalf("ReadFrom = %d, Size %d; want %d", n, w.Size(), len(want))
			}
			if !staged && !tc.noDirect && w.noDirect {
				t.Skipf("direct I/O refused under %s", d.root)
			}
			if staged == tc.noDirect {
				t.Fatalf("staged = %v with noDirect = %v", staged, tc.noDirect)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			checkFile(t, d, p, want)
		})
	}
}

// oddReader hands out data in reads of random sizes, never filling p.
type oddReader struct {
	data []byte
	rng  *rand.Rand
}

func (r *oddReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:1+r.rng.IntN(min(len(p), 1<<20))], r.data)
	r.data = r.data[n:]
	return n, nil
}

// readHook calls after on every read, to look at the writer mid-stream.
type readHook struct {
	r     io.Reader
	after func()
}

func (h readHook) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.after()
	return n, err
}
