package tlsconf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/acme/autocert"
)

// cacheFormat marks a file written by FileCache.
const cacheFormat = "berth-acme-cache/1"

// FileCache is an autocert.Cache kept in one file, so that registry:2's
// http.tls.letsencrypt.cachefile keeps its meaning (a file, not a
// directory). It holds the ACME account key and every certificate with its
// private key, as JSON; it is written with mode 0600, atomically (temporary
// file, fsync, rename), and re-read on every Get so that a second berth
// process sharing the file sees what the first one stored.
type FileCache struct {
	path string
	mu   sync.Mutex // serializes read-modify-write within this process
}

type cacheFileData struct {
	Format  string            `json:"format"`
	Entries map[string][]byte `json:"entries"`
}

// OpenFileCache returns the cache kept in path, creating its directory
// (mode 0700) if needed. A file that exists but was not written by berth,
// such as registry:2's rsc.io/letsencrypt state (ACME v1, which Let's
// Encrypt no longer serves), is moved aside to path+".registry2" with a
// warning, and berth starts with an empty cache.
func OpenFileCache(path string, log *slog.Logger) (*FileCache, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ACME cache file %s: %w", path, err)
	}
	c := &FileCache{path: path}
	if _, err := c.load(); err != nil {
		var foreign *foreignCacheError
		if !errors.As(err, &foreign) {
			return nil, err
		}
		aside := path + ".registry2"
		if err := os.Rename(path, aside); err != nil {
			return nil, fmt.Errorf("ACME cache file %s is not berth's and cannot be moved aside: %w", path, err)
		}
		log.Warn("ACME cache file was not written by berth (registry:2's format?); moved it aside and starting with an empty cache: certificates will be issued again",
			"cachefile", path, "moved_to", aside)
	}
	// Fail now, not at the first certificate, if the file cannot be written.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ACME cache file: %w", err)
	}
	return c, f.Close()
}

type foreignCacheError struct{ path string }

func (e *foreignCacheError) Error() string {
	return fmt.Sprintf("ACME cache file %s was not written by berth", e.path)
}

func (c *FileCache) load() (map[string][]byte, error) {
	data, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ACME cache file: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return map[string][]byte{}, nil
	}
	var d cacheFileData
	if err := json.Unmarshal(data, &d); err != nil || d.Format != cacheFormat {
		return nil, &foreignCacheError{c.path}
	}
	if d.Entries == nil {
		d.Entries = map[string][]byte{}
	}
	return d.Entries, nil
}

func (c *FileCache) store(entries map[string][]byte) error {
	data, err := json.MarshalIndent(cacheFileData{Format: cacheFormat, Entries: entries}, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(c.path, data, 0o600)
}

// Get returns the entry for key, or autocert.ErrCacheMiss.
func (c *FileCache) Get(ctx context.Context, key string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	entries, err := c.load()
	if err != nil {
		return nil, err
	}
	v, ok := entries[key]
	if !ok {
		return nil, autocert.ErrCacheMiss
	}
	return v, nil
}

// Put stores data under key.
func (c *FileCache) Put(ctx context.Context, key string, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	entries, err := c.load()
	if err != nil {
		return err
	}
	entries[key] = append([]byte(nil), data...)
	return c.store(entries)
}

// Delete removes key; a missing key is not an error.
func (c *FileCache) Delete(ctx context.Context, key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	entries, err := c.load()
	if err != nil {
		return err
	}
	if _, ok := entries[key]; !ok {
		return nil
	}
	delete(entries, key)
	return c.store(entries)
}

// writeFileAtomic replaces path with data: readers see the old or the new
// content, never a mix, and after a crash one of them is on disk.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
