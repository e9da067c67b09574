package index

import (
	"sync"

	"github.com/opencontainers/go-digest"
)

// tagCache remembers tag -> digest answers of the embedded index, which
// only this process writes, so every change is seen here and the cache is
// exact: a write updates or drops its entries before it returns, and a
// tag moved or deleted is never answered from the cache afterwards.
//
// A lookup that misses reads bbolt and fills the cache, unless some write
// happened meanwhile: its read transaction may predate that write, and
// filling with what it saw could bring back an old value for good. The
// write generation tells.
type tagCache struct {
	mu    sync.Mutex
	gen   uint64
	n     int
	repos map[string]map[string]digest.Digest
}

// tagCacheMax bounds the entries (about 200 bytes each); past it, a fill
// evicts a whole repository's entries (an arbitrary one, as map order is).
const tagCacheMax = 100_000

func newTagCache() *tagCache {
	return &tagCache{repos: make(map[string]map[string]digest.Digest)}
}

func (c *tagCache) get(repo, tag string) (d digest.Digest, ok bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok = c.repos[repo][tag]
	return d, ok, c.gen
}

// fill stores what a read that began at generation gen found.
func (c *tagCache) fill(gen uint64, repo, tag string, d digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	c.setLocked(repo, tag, d)
}

func (c *tagCache) setLocked(repo, tag string, d digest.Digest) {
	tags := c.repos[repo]
	if tags == nil {
		for c.n >= tagCacheMax && len(c.repos) > 0 {
			for victim, vt := range c.repos {
				c.n -= len(vt)
				delete(c.repos, victim)
				break
			}
		}
		tags = make(map[string]digest.Digest)
		c.repos[repo] = tags
	}
	if _, ok := tags[tag]; !ok {
		c.n++
	}
	tags[tag] = d
}

// set records a committed PutTag.
func (c *tagCache) set(repo, tag string, d digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.setLocked(repo, tag, d)
}

// forget records a committed change to repo's tags other than a set: one
// tag, or all of them when tag is "".
func (c *tagCache) forget(repo, tag string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	tags := c.repos[repo]
	if tag == "" {
		c.n -= len(tags)
		delete(c.repos, repo)
		return
	}
	if _, ok := tags[tag]; ok {
		c.n--
		delete(tags, tag)
	}
}

// reset drops everything (Replace).
func (c *tagCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.n = 0
	c.repos = make(map[string]map[string]digest.Digest)
}
