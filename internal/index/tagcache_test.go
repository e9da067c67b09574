package index

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// A lookup that read bbolt before a write committed must not fill the cache
// with what it saw once the write has updated the cache.
func TestTagCacheFillAfterWriteIsDropped(t *testing.T) {
	c := newTagCache()
	old, moved := digest.FromString("old"), digest.FromString("moved")
	_, ok, gen := c.get("r", "latest") // a reader misses...
	if ok {
		t.Fatal("empty cache hit")
	}
	c.set("r", "latest", moved) // ...a PutTag commits and updates...
	c.fill(gen, "r", "latest", old)
	if d, ok, _ := c.get("r", "latest"); !ok || d != moved {
		t.Fatalf("after a late fill: %s, %v; want %s", d, ok, moved)
	}

	_, _, gen = c.get("r", "gone")
	c.forget("r", "gone") // a DeleteTag of a tag never cached
	c.fill(gen, "r", "gone", old)
	if d, ok, _ := c.get("r", "gone"); ok {
		t.Fatalf("deleted tag filled back: %s", d)
	}
}

func TestTagCacheBounded(t *testing.T) {
	c := newTagCache()
	for i := range tagCacheMax + 10 {
		c.set(fmt.Sprintf("repo%d", i), "t", digest.FromString("x"))
	}
	if c.n > tagCacheMax || c.n != len(c.repos) {
		t.Fatalf("%d entries in %d repositories, max %d", c.n, len(c.repos), tagCacheMax)
	}
}

// Readers racing a writer that moves a tag back and forth: once the last
// move returns, every lookup answers its digest (run with -race).
func TestTagCacheUnderConcurrentMoves(t *testing.T) {
	ctx := context.Background()
	b := openT(t, filepath.Join(t.TempDir(), "index.db"))
	defer b.Close()
	ds := []digest.Digest{digest.FromString("a"), digest.FromString("b")}
	final := digest.FromString("final")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := b.Tag(ctx, "r", "latest"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range 300 {
		if err := b.PutTag(ctx, "r", "latest", ds[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.PutTag(ctx, "r", "latest", final); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if d, ok, err := b.Tag(ctx, "r", "latest"); err != nil || !ok || d != final {
			t.Fatalf("after the last move: %s, %v, %v; want %s", d, ok, err, final)
		}
	}
	close(stop)
	wg.Wait()
}
