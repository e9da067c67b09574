// Package index keeps berth's metadata index (repositories, tags, manifest
// records, referrers) in an embedded bbolt database, so catalog, tag and
// referrer queries never walk storage.
//
// The database records whether it was closed cleanly. A process that dies
// without closing may have written storage without updating the index, so
// Open reports such a database as stale and the registry rebuilds it from the
// storage layout, which stays the single source of truth.
package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/berth-registry/berth/internal/content"
)

// schemaVersion changes whenever the bucket layout changes; a database with
// another version is rebuilt.
const schemaVersion = "1"

var (
	bucketMeta  = []byte("meta")
	bucketRepos = []byte("repos")

	keyState   = []byte("state")
	keyVersion = []byte("version")

	stateClean = []byte("clean")
	stateOpen  = []byte("open")

	subManifests = []byte("manifests")
	subTags      = []byte("tags")
	subReferrers = []byte("referrers")
)

// Bolt is a content.Index in a bbolt file.
type Bolt struct {
	db    *bolt.DB
	stale bool
}

var _ content.Index = (*Bolt)(nil)

// Open opens or creates the index at path. Another process holding the file
// makes Open fail after a short wait instead of hanging.
func Open(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	// A large initial mapping (address space, not memory) spares a rebuild
	// the remaps, and the copies of every open node each remap costs, as
	// the file grows.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, InitialMmapSize: 1 << 30})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open index %s: locked by another berth process", path)
		}
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	b := &Bolt{db: db}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketRepos); err != nil {
			return err
		}
		b.stale = !bytes.Equal(meta.Get(keyState), stateClean) ||
			string(meta.Get(keyVersion)) != schemaVersion
		return meta.Put(keyState, stateOpen)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	return b, nil
}

// Stale reports whether the index may not match storage (new database, other
// schema, or not closed cleanly) and must be rebuilt before use.
func (b *Bolt) Stale() bool { return b.stale }

// Close marks the index clean and closes it.
func (b *Bolt) Close() error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyState, stateClean)
	})
	if cerr := b.db.Close(); err == nil {
		err = cerr
	}
	return err
}

func repoBucket(tx *bolt.Tx, repo string, create bool) (*bolt.Bucket, error) {
	repos := tx.Bucket(bucketRepos)
	if !create {
		return repos.Bucket([]byte(repo)), nil
	}
	rb, err := repos.CreateBucketIfNotExists([]byte(repo))
	if err != nil {
		return nil, err
	}
	for _, name := range [][]byte{subManifests, subTags, subReferrers} {
		if _, err := rb.CreateBucketIfNotExists(name); err != nil {
			return nil, err
		}
	}
	return rb, nil
}

func referrerKey(subject, d digest.Digest) []byte {
	return []byte(string(subject) + "|" + string(d))
}

func putManifest(tx *bolt.Tx, repo string, rec content.ManifestRecord) error {
	rb, err := repoBucket(tx, repo, true)
	if err != nil {
		return err
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := rb.Bucket(subManifests).Put([]byte(rec.Digest), val); err != nil {
		return err
	}
	if rec.Subject != "" {
		return rb.Bucket(subReferrers).Put(referrerKey(rec.Subject, rec.Digest), val)
	}
	return nil
}

func (b *Bolt) PutManifest(ctx context.Context, repo string, rec content.ManifestRecord) error {
	err := b.db.Update(func(tx *bolt.Tx) error { return putManifest(tx, repo, rec) })
	if err != nil {
		return fmt.Errorf("index put manifest %s@%s: %w", repo, rec.Digest, err)
	}
	return nil
}

func (b *Bolt) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		rb, err := repoBucket(tx, repo, false)
		if err != nil || rb == nil {
			return err
		}
		manifests := rb.Bucket(subManifests)
		if val := manifests.Get([]byte(d)); val != nil {
			var rec content.ManifestRecord
			if err := json.Unmarshal(val, &rec); err == nil && rec.Subject != "" {
				if err := rb.Bucket(subReferrers).Delete(referrerKey(rec.Subject, d)); err != nil {
					return err
				}
			}
		}
		if err := manifests.Delete([]byte(d)); err != nil {
			return err
		}
		tags := rb.Bucket(subTags)
		var doomed [][]byte
		if err := tags.ForEach(func(k, v []byte) error {
			if string(v) == string(d) {
				doomed = append(doomed, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range doomed {
			if err := tags.Delete(k); err != nil {
				return err
			}
		}
		// The repository stays listed with no tags, as its directory stays
		// in storage; the conformance suite expects its tag list to answer.
		return nil
	})
	if err != nil {
		return fmt.Errorf("index delete manifest %s@%s: %w", repo, d, err)
	}
	return nil
}

func (b *Bolt) Manifest(ctx context.Context, repo string, d digest.Digest) (content.ManifestRecord, bool, error) {
	var rec content.ManifestRecord
	var found bool
	err := b.db.View(func(tx *bolt.Tx) error {
		rb, _ := repoBucket(tx, repo, false)
		if rb == nil {
			return nil
		}
		val := rb.Bucket(subManifests).Get([]byte(d))
		if val == nil {
			return nil
		}
		found = true
		return json.Unmarshal(val, &rec)
	})
	if err != nil {
		return rec, false, fmt.Errorf("index manifest %s@%s: %w", repo, d, err)
	}
	return rec, found, nil
}

func (b *Bolt) PutTag(ctx context.Context, repo, tag string, d digest.Digest) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		rb, err := repoBucket(tx, repo, true)
		if err != nil {
			return err
		}
		return rb.Bucket(subTags).Put([]byte(tag), []byte(d))
	})
	if err != nil {
		return fmt.Errorf("index put tag %s:%s: %w", repo, tag, err)
	}
	return nil
}

func (b *Bolt) DeleteTag(ctx context.Context, repo, tag string) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		rb, err := repoBucket(tx, repo, false)
		if err != nil || rb == nil {
			return err
		}
		return rb.Bucket(subTags).Delete([]byte(tag))
	})
	if err != nil {
		return fmt.Errorf("index delete tag %s:%s: %w", repo, tag, err)
	}
	return nil
}

func (b *Bolt) Tag(ctx context.Context, repo, tag string) (digest.Digest, bool, error) {
	var d digest.Digest
	err := b.db.View(func(tx *bolt.Tx) error {
		rb, _ := repoBucket(tx, repo, false)
		if rb == nil {
			return nil
		}
		d = digest.Digest(rb.Bucket(subTags).Get([]byte(tag)))
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("index tag %s:%s: %w", repo, tag, err)
	}
	return d, d != "", nil
}

// page walks the keys of bkt in order, starting after last, collecting at
// most n (n < 0: all) values produced by fn.
func page(bkt *bolt.Bucket, last string, n int, fn func(k, v []byte)) {
	if n == 0 {
		return
	}
	c := bkt.Cursor()
	var k, v []byte
	if last == "" {
		k, v = c.First()
	} else {
		k, v = c.Seek([]byte(last))
		if k != nil && string(k) == last {
			k, v = c.Next()
		}
	}
	for count := 0; k != nil && (n < 0 || count < n); k, v = c.Next() {
		fn(k, v)
		count++
	}
}

func (b *Bolt) Tags(ctx context.Context, repo, last string, n int) ([]content.Tag, error) {
	var out []content.Tag
	err := b.db.View(func(tx *bolt.Tx) error {
		rb, _ := repoBucket(tx, repo, false)
		if rb == nil {
			return nil
		}
		page(rb.Bucket(subTags), last, n, func(k, v []byte) {
			out = append(out, content.Tag{Name: string(k), Digest: digest.Digest(v)})
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index tags %s: %w", repo, err)
	}
	return out, nil
}

func (b *Bolt) Repositories(ctx context.Context, last string, n int) ([]string, error) {
	var out []string
	err := b.db.View(func(tx *bolt.Tx) error {
		page(tx.Bucket(bucketRepos), last, n, func(k, _ []byte) { out = append(out, string(k)) })
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index repositories: %w", err)
	}
	return out, nil
}

func (b *Bolt) HasRepository(ctx context.Context, repo string) (bool, error) {
	var found bool
	err := b.db.View(func(tx *bolt.Tx) error {
		rb, _ := repoBucket(tx, repo, false)
		found = rb != nil
		return nil
	})
	return found, err
}

func (b *Bolt) Referrers(ctx context.Context, repo string, d digest.Digest) ([]content.ManifestRecord, error) {
	var out []content.ManifestRecord
	err := b.db.View(func(tx *bolt.Tx) error {
		rb, _ := repoBucket(tx, repo, false)
		if rb == nil {
			return nil
		}
		prefix := []byte(string(d) + "|")
		c := rb.Bucket(subReferrers).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var rec content.ManifestRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index referrers %s@%s: %w", repo, d, err)
	}
	return out, nil
}

func (b *Bolt) Replace(ctx context.Context, repos []content.RepositorySnapshot) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketRepos); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		if _, err := tx.CreateBucket(bucketRepos); err != nil {
			return err
		}
		for _, r := range repos {
			if _, err := repoBucket(tx, r.Name, true); err != nil {
				return err
			}
			for _, m := range r.Manifests {
				if err := putManifest(tx, r.Name, m); err != nil {
					return err
				}
			}
			rb, err := repoBucket(tx, r.Name, true)
			if err != nil {
				return err
			}
			for _, t := range r.Tags {
				if err := rb.Bucket(subTags).Put([]byte(t.Name), []byte(t.Digest)); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte(schemaVersion))
	})
	if err != nil {
		return fmt.Errorf("index replace: %w", err)
	}
	b.stale = false
	return nil
}
