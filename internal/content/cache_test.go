package content

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestBodyCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newBodyCache(800) // entries up to 100 bytes are cached
	body := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 100) }
	d := func(i int) digest.Digest { return digest.FromString(fmt.Sprint(i)) }
	for i := 0; i < 8; i++ {
		c.put(d(i), body(i))
	}
	if _, ok := c.get(d(0)); !ok { // touch 0: now most recent
		t.Fatal("entry 0 missing before the cache was full")
	}
	c.put(d(8), body(8)) // evicts 1, the least recently used
	if _, ok := c.get(d(1)); ok {
		t.Error("entry 1 should have been evicted")
	}
	for _, i := range []int{0, 2, 7, 8} {
		got, ok := c.get(d(i))
		if !ok || !bytes.Equal(got, body(i)) {
			t.Errorf("entry %d: ok=%v", i, ok)
		}
	}
	if c.size > c.max {
		t.Errorf("cache holds %d bytes, limit %d", c.size, c.max)
	}
}

func TestBodyCacheSkipsHugeBodies(t *testing.T) {
	c := newBodyCache(800)
	c.put(digest.FromString("big"), make([]byte, 101))
	if _, ok := c.get(digest.FromString("big")); ok {
		t.Error("a body over an eighth of the cache must not be cached")
	}
	var disabled *bodyCache
	disabled.put(digest.FromString("x"), []byte("x"))
	if _, ok := disabled.get(digest.FromString("x")); ok {
		t.Error("a nil cache caches nothing")
	}
}
