package content

import (
	"container/list"
	"sync"

	"github.com/opencontainers/go-digest"
)

// bodyCache keeps recently served manifest bodies in memory, bounded by
// their total size. Keys are digests and the bytes behind a digest never
// change, so entries never go stale and need no invalidation, even when
// several instances share storage; deleting a manifest only makes its entry
// unreachable (resolve fails first) until it is evicted.
type bodyCache struct {
	mu      sync.Mutex
	max     int64
	size    int64
	order   *list.List // front: most recently used
	entries map[digest.Digest]*list.Element
}

type cacheEntry struct {
	d    digest.Digest
	body []byte
}

func newBodyCache(max int64) *bodyCache {
	return &bodyCache{max: max, order: list.New(), entries: make(map[digest.Digest]*list.Element)}
}

func (c *bodyCache) get(d digest.Digest) ([]byte, bool) {
	if c == nil || c.max <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[d]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).body, true
}

func (c *bodyCache) put(d digest.Digest, body []byte) {
	if c == nil || int64(len(body)) > c.max/8 {
		return // one huge manifest must not flush everything else
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[d]; ok {
		return
	}
	c.entries[d] = c.order.PushFront(&cacheEntry{d: d, body: body})
	c.size += int64(len(body))
	for c.size > c.max {
		last := c.order.Back()
		ent := last.Value.(*cacheEntry)
		c.order.Remove(last)
		delete(c.entries, ent.d)
		c.size -= int64(len(ent.body))
	}
}
