package index

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index/indextest"
)

func TestIndexSuite(t *testing.T) {
	indextest.Run(t, func(t *testing.T) content.Index {
		b, err := Open(filepath.Join(t.TempDir(), "index.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}

var testDigest = digest.FromString("manifest")

func openT(t *testing.T, path string) *Bolt {
	t.Helper()
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tagOf(t *testing.T, b *Bolt) (digest.Digest, bool) {
	t.Helper()
	d, ok, err := b.Tag(context.Background(), "org/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	return d, ok
}

// crash drops the index the way a killed process does: the database file and
// the lock are released, nothing is marked clean.
func crash(t *testing.T, b *Bolt) {
	t.Helper()
	if err := b.db.Close(); err != nil {
		t.Fatal(err)
	}
	b.unlock()
}

func TestCleanCloseKeepsIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	b := openT(t, path)
	if !b.Stale() {
		t.Fatal("a new index must be stale (built from storage before use)")
	}
	if err := b.Replace(context.Background(), content.Snapshots(nil)); err != nil {
		t.Fatal(err)
	}
	if err := b.PutTag(context.Background(), "org/app", "v1", testDigest); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".open"); err != nil {
		t.Fatalf("an open index must have its marker: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".open"); !os.IsNotExist(err) {
		t.Fatalf("Close must remove the marker, stat: %v", err)
	}

	b = openT(t, path)
	defer b.Close()
	if b.Stale() {
		t.Fatal("a cleanly closed index must not be stale")
	}
	if d, ok := tagOf(t, b); !ok || d != testDigest {
		t.Fatalf("tag after reopen = %q, %v; want %s", d, ok, testDigest)
	}
}

func TestCrashStartsEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	b := openT(t, path)
	if err := b.Replace(context.Background(), content.Snapshots(nil)); err != nil {
		t.Fatal(err)
	}
	if err := b.PutTag(context.Background(), "org/app", "v1", testDigest); err != nil {
		t.Fatal(err)
	}
	crash(t, b)

	b = openT(t, path)
	defer b.Close()
	if !b.Stale() {
		t.Fatal("an index not closed cleanly must be stale")
	}
	// Unsynced writes of a crashed process are never trusted, even when
	// they reached the file: the rebuild starts from nothing.
	if d, ok := tagOf(t, b); ok {
		t.Fatalf("an index left by a crash must start empty, has tag -> %s", d)
	}
}

func TestTornFileIsReplaced(t *testing.T) {
	for _, tc := range []struct {
		name   string
		marker bool
	}{
		{"after a crash", true},
		{"without a marker", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "index.db")
			garbage := []byte(strings.Repeat("not a bbolt page ", 2000))
			if err := os.WriteFile(path, garbage, 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.marker {
				if err := os.WriteFile(path+".open", nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			b := openT(t, path)
			defer b.Close()
			if !b.Stale() {
				t.Fatal("a replaced index must be stale")
			}
			if err := b.PutTag(context.Background(), "org/app", "v1", testDigest); err != nil {
				t.Fatalf("the new index must be writable: %v", err)
			}
		})
	}
}

func TestSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	b := openT(t, path)
	defer b.Close()
	_, err := Open(path)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "locked by another berth process") {
		t.Fatalf("second Open: %v; want ErrLocked", err)
	}
	if _, err := os.Stat(path + ".open"); err != nil {
		t.Fatalf("a refused Open must leave the holder's marker: %v", err)
	}
}

// cancelAfter is a context that reports cancellation from its nth Err call
// on, to stop Replace between two of its transactions.
type cancelAfter struct {
	context.Context
	n int
}

func (c *cancelAfter) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

func snapshots(n int) []content.RepositorySnapshot {
	repos := make([]content.RepositorySnapshot, n)
	for i := range repos {
		repos[i] = content.RepositorySnapshot{
			Name:      fmt.Sprintf("org/app%05d", i),
			Manifests: []content.ManifestRecord{{Digest: testDigest, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 2}},
			Tags:      []content.Tag{{Name: "v1", Digest: testDigest}},
		}
	}
	return repos
}

func TestReplaceInBatches(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	b := openT(t, path)
	want := snapshots(2*replaceBatch + 7)
	if err := b.Replace(ctx, content.Snapshots(want)); err != nil {
		t.Fatal(err)
	}
	if b.Stale() {
		t.Fatal("stale after a successful Replace")
	}
	got, err := b.Repositories(ctx, "", 10*replaceBatch)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || got[0] != want[0].Name || got[len(got)-1] != want[len(want)-1].Name {
		t.Fatalf("after Replace: %d repositories (%v ... ), want %d", len(got), got[:1], len(want))
	}

	// Stopped after its first batch, Replace fails and leaves an index
	// that is stale even after a clean close.
	if err := b.Replace(&cancelAfter{Context: ctx, n: 1}, content.Snapshots(want)); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Replace: %v, want context.Canceled", err)
	}
	wantStaleAfterReopen(t, b, path, "an index whose Replace stopped halfway")
}

// wantStaleAfterReopen closes b cleanly, opens the index again and checks
// that it still asks for a rebuild.
func wantStaleAfterReopen(t *testing.T, b *Bolt, path, what string) {
	t.Helper()
	if !b.Stale() {
		t.Fatalf("%s must read as stale", what)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openT(t, path)
	defer b.Close()
	if !b.Stale() {
		t.Fatalf("%s must be stale after a clean close", what)
	}
}

// An error from the snapshots stops Replace with that error, and the index
// stays stale.
func TestReplaceStopsAtSourceError(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	b := openT(t, path)
	boom := errors.New("storage went away")
	repos := snapshots(replaceBatch + 3)
	err := b.Replace(ctx, func(yield func(content.RepositorySnapshot, error) bool) {
		for i, r := range repos {
			if i == replaceBatch+1 {
				yield(content.RepositorySnapshot{}, boom)
				return
			}
			if !yield(r, nil) {
				return
			}
		}
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Replace = %v, want the source's error", err)
	}
	wantStaleAfterReopen(t, b, path, "an index whose source failed")
}
