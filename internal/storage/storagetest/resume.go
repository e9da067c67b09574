package storagetest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/berth-registry/berth/internal/storage"
)

// ResumeAcrossInstances writes one upload in sessions of the given sizes,
// alternating between two drivers on the same storage (two berth
// processes): each session resumes where the last Close left off, the last
// one commits. Even sessions Write in pieces of writeSize, odd ones go
// through io.Copy (the writer's io.ReaderFrom, how the content layer feeds
// it). After every Close the other driver must Stat the stored size (the
// content layer reads an upload's size that way), and at the end the
// object must hold every byte in order. Backends run it with the session
// sizes that matter to them (part or segment boundaries).
func ResumeAcrossInstances(t *testing.T, d1, d2 storage.Driver, sessions []int, writeSize int, seed uint64) {
	t.Helper()
	ctx := context.Background()
	const p = "/docker/registry/v2/repositories/r/_uploads/u/data"
	drivers := []storage.Driver{d1, d2}
	var want []byte
	for j, n := range sessions {
		w, err := drivers[j%2].Writer(ctx, p, j > 0)
		if err != nil {
			t.Fatalf("session %d: Writer: %v", j, err)
		}
		if w.Size() != int64(len(want)) {
			t.Fatalf("session %d: Size = %d, want %d", j, w.Size(), len(want))
		}
		chunk := RandomBytes(seed*100+uint64(j), n)
		if j%2 == 0 {
			for rest := chunk; len(rest) > 0; {
				k := min(len(rest), writeSize)
				if _, err := w.Write(rest[:k]); err != nil {
					t.Fatalf("session %d: Write: %v", j, err)
				}
				rest = rest[k:]
			}
		} else if _, err := io.Copy(w, struct{ io.Reader }{bytes.NewReader(chunk)}); err != nil {
			t.Fatalf("session %d: io.Copy: %v", j, err)
		}
		want = append(want, chunk...)
		if w.Size() != int64(len(want)) {
			t.Fatalf("session %d: Size = %d after writing, want %d", j, w.Size(), len(want))
		}
		if j == len(sessions)-1 {
			if err := w.Commit(ctx); err != nil {
				t.Fatalf("Commit: %v", err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatalf("session %d: Close: %v", j, err)
		}
		info, err := drivers[(j+1)%2].Stat(ctx, p)
		if err != nil || info.Size != int64(len(want)) {
			t.Fatalf("session %d: Stat from the other driver = %+v, %v; want size %d", j, info, err, len(want))
		}
	}
	if got := MustGet(t, d2, p); !bytes.Equal(got, want) {
		t.Fatalf("content differs: %d bytes, want %d", len(got), len(want))
	}
}
