// Package index keeps berth's metadata index (repositories, tags, manifest
// records, referrers) in an embedded bbolt database, so catalog, tag and
// referrer queries never walk storage.
//
// The storage layout is the single source of truth and the index is derived
// from it, so the index need not survive a crash, only never be trusted
// after one. While a process has the index open, a marker file next to it
// says so; a process that dies without closing leaves the marker behind, and
// the next Open starts from an empty database that the registry rebuilds
// from storage. That is what lets writes skip fsync (bbolt's NoSync): a
// manifest push costs no index sync, and concurrent pushes do not queue
// behind one another's syncs. Close makes everything durable before it
// removes the marker.
package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/fsync"
)

// schemaVersion changes whenever the bucket layout changes; a database with
// another version is rebuilt.
const schemaVersion = "1"

var (
	bucketMeta  = []byte("meta")
	bucketRepos = []byte("repos")

	keyState   = []byte("state")
	keyVersion = []byte("version")

	// The state key predates the marker file and is still kept, so a
	// database closed by this version reads as clean to an older one.
	stateClean = []byte("clean")
	stateOpen  = []byte("open")

	subManifests = []byte("manifests")
	subTags      = []byte("tags")
	subReferrers = []byte("referrers")
)

// Bolt is a content.Index in a bbolt file.
type Bolt struct {
	db     *bolt.DB
	tags   *tagCache
	marker string
	unlock func()
	stale  bool
}

var _ content.Index = (*Bolt)(nil)

// ErrLocked is Open's error when another process (a running berth, or
// `berth index rebuild`) holds the index.
var ErrLocked = errors.New("locked by another berth process")

// lockTimeout is how long Open waits for another process to release the
// index before failing instead of hanging.
const lockTimeout = 2 * time.Second

// Open opens or creates the index at path. Another process holding the file
// makes Open fail after a short wait instead of hanging.
func Open(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	// A lock of our own, not bbolt's lock on the database file: with it
	// held, a database left behind by a crash can be replaced (bbolt's lock
	// goes with the file being replaced, and a torn file may not open).
	unlock, err := lockFile(path+".lock", lockTimeout)
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	b, err := open(path)
	if errors.Is(err, bolterrors.ErrTimeout) {
		err = ErrLocked // bbolt's own lock, where there is no flock
	}
	if err != nil {
		unlock()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	b.unlock = unlock
	return b, nil
}

func open(path string) (*Bolt, error) {
	marker := path + ".open"
	_, err := os.Stat(marker)
	crashed := err == nil
	if crashed {
		// Written without syncs and never closed: its pages may be torn,
		// and reading torn pages can panic inside bbolt. Start empty.
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	db, err := openBolt(path)
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
		// Unreadable for another reason (a disk problem, a foreign
		// file): it holds nothing storage cannot give again.
		if err := os.Remove(path); err != nil {
			return nil, err
		}
		crashed = true
		db, err = openBolt(path)
	}
	if err != nil {
		return nil, err
	}
	b := &Bolt{db: db, tags: newTagCache(), marker: marker, stale: crashed}
	// This write is synced (NoSync is still off): the database on disk is
	// consistent before the unsynced writes begin.
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketRepos); err != nil {
			return err
		}
		if !bytes.Equal(meta.Get(keyState), stateClean) || string(meta.Get(keyVersion)) != schemaVersion {
			b.stale = true
		}
		return meta.Put(keyState, stateOpen)
	})
	if err == nil {
		err = writeMarker(marker)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	db.NoSync = true
	return b, nil
}

func openBolt(path string) (*bolt.DB, error) {
	// A large initial mapping (address space, not memory) spares a rebuild
	// the remaps, and the copies of every open node each remap costs, as
	// the file grows.
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, InitialMmapSize: 1 << 30})
}

// writeMarker creates the "open" marker durably: it must be on disk before
// any unsynced write to the database is.
func writeMarker(marker string) error {
	f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString("berth has this index open; if no berth runs, it stopped without closing the index, which is rebuilt at the next start\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsync.Dir(filepath.Dir(marker))
	}
	return err
}

// Stale reports whether the index may not match storage (new database, other
// schema, or not closed cleanly) and must be rebuilt before use.
func (b *Bolt) Stale() bool { return b.stale }

// Close makes the index durable, marks it clean and closes it. Only a
// successful Close removes the "open" marker.
func (b *Bolt) Close() error {
	// A synced commit: its fdatasync also covers every unsynced write
	// before it, so the clean state reaches the disk after all of them.
	b.db.NoSync = false
	err := b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyState, stateClean)
	})
	if cerr := b.db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Remove(b.marker)
		if err == nil {
			err = fsync.Dir(filepath.Dir(b.marker))
		}
	}
	b.unlock()
	if err != nil {
		return fmt.Errorf("close index: %w", err)
	}
	return nil
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
	b.tags.forget(repo, "")
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
		b.tags.forget(repo, tag)
		return fmt.Errorf("index put tag %s:%s: %w", repo, tag, err)
	}
	b.tags.set(repo, tag, d)
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
	b.tags.forget(repo, tag)
	if err != nil {
		return fmt.Errorf("index delete tag %s:%s: %w", repo, tag, err)
	}
	return nil
}

func (b *Bolt) Tag(ctx context.Context, repo, tag string) (digest.Digest, bool, error) {
	d, ok, gen := b.tags.get(repo, tag)
	if ok {
		return d, true, nil
	}
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
	if d == "" {
		return "", false, nil
	}
	b.tags.fill(gen, repo, tag, d)
	return d, true, nil
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

// Replace writes the snapshot in transactions of replaceBatch repositories:
// one transaction for a whole registry holds every node it touches in
// memory (most of a rebuild's peak RSS) and grows the file under it. The
// result is only trusted once the last transaction records the schema
// version: an index left halfway (a failure, or a crash, which the marker
// catches anyway) reads as stale at the next Open and is rebuilt again.
// Nobody reads the index meanwhile: the registry rebuilds before serving,
// and `berth index rebuild` holds the lock.
func (b *Bolt) Replace(ctx context.Context, repos iter.Seq2[content.RepositorySnapshot, error]) error {
	defer b.tags.reset()
	// Stale from here, in this process as on disk, until the end.
	b.stale = true
	err := b.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Delete(keyVersion); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketRepos); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		_, err := tx.CreateBucket(bucketRepos)
		return err
	})
	batch := make([]content.RepositorySnapshot, 0, replaceBatch)
	flush := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := b.db.Update(func(tx *bolt.Tx) error { return putSnapshots(tx, batch) })
		clear(batch) // let the written snapshots go
		batch = batch[:0]
		return err
	}
	if err == nil {
		for r, rerr := range repos {
			if err = rerr; err != nil {
				break
			}
			if batch = append(batch, r); len(batch) == replaceBatch {
				if err = flush(); err != nil {
					break
				}
			}
		}
	}
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	if err == nil {
		err = b.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyVersion, []byte(schemaVersion))
		})
	}
	if err != nil {
		return fmt.Errorf("index replace: %w", err)
	}
	b.stale = false
	return nil
}

// replaceBatch is how many repositories one transaction of Replace writes.
const replaceBatch = 500

func putSnapshots(tx *bolt.Tx, repos []content.RepositorySnapshot) error {
	for _, r := range repos {
		rb, err := repoBucket(tx, r.Name, true)
		if err != nil {
			return err
		}
		for _, m := range r.Manifests {
			if err := putManifest(tx, r.Name, m); err != nil {
				return err
			}
		}
		for _, t := range r.Tags {
			if err := rb.Bucket(subTags).Put([]byte(t.Name), []byte(t.Digest)); err != nil {
				return err
			}
		}
	}
	return nil
}
