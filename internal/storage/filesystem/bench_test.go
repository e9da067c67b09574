package filesystem_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/berth-registry/berth/internal/storage"
)

const benchObjectSize = 64 << 20

// BenchmarkWriter streams a layer-sized object through a Writer and commits
// it. "Write" is an upload arriving in 1 MiB chunks; "ReadFrom" copies from
// another stored file through the writer's io.ReaderFrom, which reads
// straight into its direct-I/O stage (how uploads arrive).
func BenchmarkWriter(b *testing.B) {
	d := newDriver(b)
	ctx := context.Background()
	chunk := bytes.Repeat([]byte("berth layer data"), (1<<20)/16)

	b.Run("Write", func(b *testing.B) {
		b.SetBytes(benchObjectSize)
		for b.Loop() {
			w := mustWriter(b, d, "/bench/write/data")
			for range benchObjectSize / len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			commit(b, w)
		}
	})

	b.Run("ReadFrom", func(b *testing.B) {
		w := mustWriter(b, d, "/bench/src")
		for range benchObjectSize / len(chunk) {
			w.Write(chunk)
		}
		commit(b, w)
		b.SetBytes(benchObjectSize)
		b.ResetTimer()
		for b.Loop() {
			r, err := d.Reader(ctx, "/bench/src", 0)
			if err != nil {
				b.Fatal(err)
			}
			w := mustWriter(b, d, "/bench/copy/data")
			if n, err := io.Copy(w, r); err != nil || n != benchObjectSize {
				b.Fatalf("copied %d, %v", n, err)
			}
			r.Close()
			commit(b, w)
		}
	})
}

// BenchmarkPutContent writes link- and manifest-sized objects; the cost is
// dominated by the two fsyncs that make each write durable.
func BenchmarkPutContent(b *testing.B) {
	ctx := context.Background()
	for _, size := range []int{71, 4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			d := newDriver(b)
			content := bytes.Repeat([]byte("x"), size)
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				p := fmt.Sprintf("/bench/%d/link", i%100)
				if err := d.PutContent(ctx, p, content); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func mustWriter(b *testing.B, d storage.Driver, p string) storage.FileWriter {
	w, err := d.Writer(context.Background(), p, false)
	if err != nil {
		b.Fatal(err)
	}
	return w
}

func commit(b *testing.B, w storage.FileWriter) {
	if err := w.Commit(context.Background()); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}
