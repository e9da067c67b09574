// Package objstore holds what berth's object-store drivers (s3, swift)
// share beyond the storage interface itself.
package objstore

import (
	"path"
	"sync"
	"time"
)

// AncestorTTL is how long a path found not to be an object is trusted to
// stay one. Registry paths never turn from directories into objects; the
// bound only limits how long a bucket or container changed behind berth's
// back can go unnoticed by the conflict checks.
const AncestorTTL = 30 * time.Second

// AncestorCache remembers paths recently found not to be objects, so that
// writes deep in the tree do not HEAD every ancestor every time. It holds
// at most max paths, and forgets them all when it is full.
type AncestorCache struct {
	ttl time.Duration
	max int
	mu  sync.Mutex
	m   map[string]time.Time
}

// NewAncestorCache returns an empty cache that trusts an entry for ttl
// and holds at most max of them.
func NewAncestorCache(ttl time.Duration, max int) *AncestorCache {
	return &AncestorCache{ttl: ttl, max: max, m: make(map[string]time.Time)}
}

// Has reports whether p was found not to be an object within the TTL.
func (c *AncestorCache) Has(p string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[p]
	if ok && time.Since(t) > c.ttl {
		delete(c.m, p)
		ok = false
	}
	return ok
}

// Add records that p was just found not to be an object.
func (c *AncestorCache) Add(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[p] = time.Now()
}

// Forget drops p: an object was just written there.
func (c *AncestorCache) Forget(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, p)
}

// Uncached returns the ancestors of p below the root, nearest first, that
// the cache does not hold: those a write to p must still check.
func (c *AncestorCache) Uncached(p string) []string {
	var ancestors []string
	for a := path.Dir(p); a != "/"; a = path.Dir(a) {
		if !c.Has(a) {
			ancestors = append(ancestors, a)
		}
	}
	return ancestors
}
