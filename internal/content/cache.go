package content

import (
	"container/list"
	"sync"

	"github.com/opencontainers/go-digest"
)

// lru is a size-bounded least-recently-used map. berth caches only values
// that never change for their key (a manifest's bytes for its digest, a
// manifest's record for repository and digest), so entries never go stale
// and need no invalidation, even when several instances share storage:
// deleting a manifest makes its entry unreachable (resolution fails first)
// until it is evicted.
type lru[K comparable, V any] struct {
	mu      sync.Mutex
	max     int64
	size    int64
	cost    func(V) int64
	order   *list.List // front: most recently used
	entries map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](max int64, cost func(V) int64) *lru[K, V] {
	return &lru[K, V]{max: max, cost: cost, order: list.New(), entries: make(map[K]*list.Element)}
}

func (c *lru[K, V]) get(k K) (V, bool) {
	var zero V
	if c == nil || c.max <= 0 {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return zero, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruEntry[K, V]).val, true
}

func (c *lru[K, V]) put(k K, v V) {
	cost := c.costOf(v)
	if c == nil || cost > c.max/8 {
		return // one huge value must not flush everything else
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; ok {
		return
	}
	c.entries[k] = c.order.PushFront(&lruEntry[K, V]{key: k, val: v})
	c.size += cost
	for c.size > c.max {
		last := c.order.Back()
		ent := last.Value.(*lruEntry[K, V])
		c.order.Remove(last)
		delete(c.entries, ent.key)
		c.size -= c.costOf(ent.val)
	}
}

// remove forgets k.
func (c *lru[K, V]) remove(k K) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		c.order.Remove(e)
		delete(c.entries, k)
		c.size -= c.costOf(e.Value.(*lruEntry[K, V]).val)
	}
}

func (c *lru[K, V]) costOf(v V) int64 {
	if c == nil {
		return 0
	}
	return c.cost(v)
}

// bodyCache holds manifest bodies by digest, bounded by their bytes.
type bodyCache = lru[digest.Digest, []byte]

func newBodyCache(max int64) *bodyCache {
	return newLRU[digest.Digest](max, func(b []byte) int64 { return int64(len(b)) })
}

// recordKey names a manifest in a repository: the record of the same bytes
// may differ between repositories (the media type of a body without one is
// the Content-Type it was pushed with). Pushing a manifest again replaces
// its entry, for the same reason.
type recordKey struct {
	repo string
	d    digest.Digest
}

// recordCache holds decoded index records, so resolving a tag costs one
// index lookup instead of two plus a decode.
type recordCache = lru[recordKey, ManifestRecord]

// recordCost approximates a record's memory.
func recordCost(r ManifestRecord) int64 {
	n := int64(128 + len(r.MediaType) + len(r.ArtifactType) + len(r.Digest) + len(r.Subject))
	for k, v := range r.Annotations {
		n += int64(len(k) + len(v) + 32)
	}
	return n
}
