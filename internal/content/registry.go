// Package content is berth's registry model: blobs shared by all
// repositories, resumable uploads, manifests, tags and referrers. It enforces
// the rules that keep images intact (digests verified before anything becomes
// visible, references checked before a manifest is accepted) and writes
// distribution's storage layout through a storage.Driver, keeping an Index in
// step for listings.
package content

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/logctx"
	"github.com/berth-registry/berth/internal/storage"
)

// DefaultMaxManifestSize is the largest manifest accepted unless configured
// otherwise: 4 MiB, as distribution and most registries use.
const DefaultMaxManifestSize = 4 << 20

// Options configure a Registry.
type Options struct {
	// MaxManifestSize bounds manifest bodies; 0 means DefaultMaxManifestSize.
	MaxManifestSize int64
	// DeleteEnabled allows deleting manifests, tags and blobs.
	DeleteEnabled bool
	// ReadOnly refuses every write (storage.maintenance.readonly).
	ReadOnly bool
	// ManifestCacheSize bounds the bytes of manifest bodies kept in memory;
	// 0 means DefaultManifestCacheSize, negative disables the cache.
	ManifestCacheSize int64
	Logger            *slog.Logger
}

// DefaultManifestCacheSize is the default manifest body cache: enough for
// thousands of typical manifests, small next to the process's other needs.
const DefaultManifestCacheSize = 16 << 20

// Registry is the content model over one storage driver and one index.
type Registry struct {
	driver storage.Driver
	index  Index
	opts   Options
	log    *slog.Logger

	uploadLocks keyLock
	tagLocks    keyLock
	bodies      *bodyCache
	records     *recordCache

	build   atomic.Pointer[Build] // the background rebuild, if one was started
	waitLog sync.Once             // the first request to wait for it says so, once
}

// logger is the logger of the request ctx belongs to (carrying its
// request_id), or the registry's own.
func (r *Registry) logger(ctx context.Context) *slog.Logger {
	return logctx.FromContextOr(ctx, r.log)
}

// New returns a Registry. The index must already match storage: call Rebuild
// first when it may not.
func New(driver storage.Driver, index Index, opts Options) *Registry {
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = DefaultMaxManifestSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ManifestCacheSize == 0 {
		opts.ManifestCacheSize = DefaultManifestCacheSize
	}
	return &Registry{driver: driver, index: index, opts: opts, log: opts.Logger,
		bodies:  newBodyCache(opts.ManifestCacheSize),
		records: newLRU[recordKey](opts.ManifestCacheSize/4, recordCost)}
}

// MaxManifestSize is the configured manifest size limit.
func (r *Registry) MaxManifestSize() int64 { return r.opts.MaxManifestSize }

// DeleteEnabled reports whether deletes are allowed.
func (r *Registry) DeleteEnabled() bool { return r.opts.DeleteEnabled }

func (r *Registry) checkWritable() error {
	if r.opts.ReadOnly {
		return newError(CodeUnsupported, "registry is in read-only maintenance mode")
	}
	return nil
}

func (r *Registry) checkDeletable() error {
	if err := r.checkWritable(); err != nil {
		return err
	}
	if !r.opts.DeleteEnabled {
		return newError(CodeUnsupported, "deletes are disabled on this registry (storage.delete.enabled)")
	}
	return nil
}

// readLink reads a distribution link file: a digest as text.
func (r *Registry) readLink(ctx context.Context, p string) (digest.Digest, error) {
	b, err := r.driver.GetContent(ctx, p)
	if err != nil {
		return "", err
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("%w %s: %v", errCorruptLink, p, err)
	}
	return d, nil
}

// errCorruptLink marks a link file whose content is not a digest.
var errCorruptLink = errors.New("corrupt link")

func (r *Registry) writeLink(ctx context.Context, p string, d digest.Digest) error {
	return r.driver.PutContent(ctx, p, []byte(d))
}

func (r *Registry) exists(ctx context.Context, p string) (bool, error) {
	_, err := r.driver.Stat(ctx, p)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return false, err
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
