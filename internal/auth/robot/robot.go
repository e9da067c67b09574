// Package robot keeps long-lived tokens for CI robots and other machine
// accounts. A token is a random secret shown once, when created
// ("berth token create"); the store keeps only its SHA-256 (the secret has
// 256 bits of entropy, so a fast hash is enough), in a JSON file written
// atomically. The running registry re-reads the file when it changes, so a
// revoked token stops working within about a second.
//
// A robot logs in with its name as the user name and the secret as the
// password, with Basic auth or at the token service.
package robot

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berth-registry/berth/internal/auth"
)

// SourceName is the Source name of robot principals.
const SourceName = "robot"

// Prefix starts every secret, so secret scanners can recognise them.
const Prefix = "berth_"

// Token is one stored token (never the secret).
type Token struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Groups  []string  `json:"groups,omitempty"`
	Hash    string    `json:"hash"` // "sha256:<hex>"
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
	Note    string    `json:"note,omitempty"`
}

// Expired reports whether t has expired at now.
func (t Token) Expired(now time.Time) bool {
	return !t.Expires.IsZero() && !now.Before(t.Expires)
}

type fileFormat struct {
	Version int     `json:"version"`
	Tokens  []Token `json:"tokens"`
}

// NameRE is what robot names look like: an account name usable in
// repository patterns (${account}) and as a Basic auth user.
var NameRE = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

var idRE = regexp.MustCompile(`^[0-9a-f]{12}$`)

// Store is the token file.
type Store struct {
	path     string
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	checked atomic.Int64
	cur     atomic.Pointer[snapshot]
}

type snapshot struct {
	byID    map[string]Token
	names   map[string]bool
	modTime time.Time
	size    int64
	exists  bool
}

// Options configure a Store.
type Options struct {
	// ReloadInterval bounds how often the file is checked for changes.
	// Default 1s.
	ReloadInterval time.Duration
	Logger         *slog.Logger
	Now            func() time.Time
}

// Open opens the store at path. A missing file is an empty store.
func Open(path string, o Options) (*Store, error) {
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{path: path, interval: o.ReloadInterval, log: o.Logger, now: o.Now}
	snap, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(snap)
	s.checked.Store(s.now().UnixNano())
	return s, nil
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

func (s *Store) load() (*snapshot, error) {
	snap := &snapshot{byID: map[string]Token{}, names: map[string]bool{}}
	data, err := os.ReadFile(s.path)
	if os.IsNotExist(err) {
		return snap, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token store: %w", err)
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return nil, fmt.Errorf("token store: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("token store %s: %w", s.path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("token store %s: unknown version %d", s.path, f.Version)
	}
	for _, t := range f.Tokens {
		if !idRE.MatchString(t.ID) || !strings.HasPrefix(t.Hash, "sha256:") {
			return nil, fmt.Errorf("token store %s: malformed entry %q", s.path, t.ID)
		}
		snap.byID[t.ID] = t
		snap.names[t.Name] = true
	}
	snap.modTime, snap.size, snap.exists = fi.ModTime(), fi.Size(), true
	return snap, nil
}

func (s *Store) snapshot() *snapshot {
	cur := s.cur.Load()
	now := s.now()
	if now.Sub(time.Unix(0, s.checked.Load())) < s.interval {
		return cur
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(time.Unix(0, s.checked.Load())) < s.interval {
		return s.cur.Load()
	}
	s.checked.Store(now.UnixNano())
	cur = s.cur.Load()
	fi, err := os.Stat(s.path)
	if err == nil && cur.exists && fi.ModTime().Equal(cur.modTime) && fi.Size() == cur.size {
		return cur
	}
	if err != nil && os.IsNotExist(err) && !cur.exists {
		return cur
	}
	next, err := s.load()
	if err != nil {
		s.log.Error("token store: reload failed; keeping the previous contents", "path", s.path, "err", err)
		return cur
	}
	s.log.Info("token store: reloaded", "path", s.path, "tokens", len(next.byID))
	s.cur.Store(next)
	return next
}

// Name implements auth.Source.
func (s *Store) Name() string { return SourceName }

// splitSecret returns the token id inside a secret.
func splitSecret(secret string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(secret, Prefix)
	if !ok {
		return "", false
	}
	id, _, ok = strings.Cut(rest, "_")
	return id, ok && idRE.MatchString(id)
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Authenticate implements auth.Source: user must be the token's robot
// name and password its secret.
func (s *Store) Authenticate(_ context.Context, user, password string) (*auth.Principal, error) {
	snap := s.snapshot()
	if !snap.names[user] {
		return nil, auth.ErrUnknownUser
	}
	id, ok := splitSecret(password)
	if !ok {
		return nil, auth.ErrBadPassword
	}
	t, found := snap.byID[id]
	// Compare even when the id is unknown, so timing says nothing.
	want := t.Hash
	if !found {
		want = hashSecret("")
	}
	match := subtle.ConstantTimeCompare([]byte(hashSecret(password)), []byte(want)) == 1
	if !found || !match || t.Name != user || t.Expired(s.now()) {
		return nil, auth.ErrBadPassword
	}
	return &auth.Principal{Account: t.Name, Groups: slices.Clone(t.Groups), Source: SourceName, Ref: t.ID}, nil
}

// Lookup implements auth.Source: the token must still exist, unexpired.
func (s *Store) Lookup(_ context.Context, p auth.Principal) (*auth.Principal, error) {
	t, ok := s.snapshot().byID[p.Ref]
	if !ok || p.Source != SourceName || t.Name != p.Account || t.Expired(s.now()) {
		return nil, auth.ErrRevoked
	}
	return &auth.Principal{Account: t.Name, Groups: slices.Clone(t.Groups), Source: SourceName, Ref: t.ID}, nil
}

// List returns the stored tokens, oldest first.
func (s *Store) List() ([]Token, error) {
	snap, err := s.load()
	if err != nil {
		return nil, err
	}
	var out []Token
	for _, t := range snap.byID {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Token) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// CreateOptions describe a new token.
type CreateOptions struct {
	Groups  []string
	Expires time.Time // zero: never
	Note    string
}

// Create adds a token for robot name and returns it with its secret,
// which is not stored and cannot be shown again.
func (s *Store) Create(name string, o CreateOptions) (Token, string, error) {
	if !NameRE.MatchString(name) || len(name) > 128 {
		return Token{}, "", fmt.Errorf("invalid robot name %q: lower-case letters, digits and . _ - between them", name)
	}
	for _, g := range o.Groups {
		if g == "" || strings.ContainsAny(g, " \t\n,") {
			return Token{}, "", fmt.Errorf("invalid group name %q", g)
		}
	}
	idb := make([]byte, 6)
	sec := make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return Token{}, "", err
	}
	if _, err := rand.Read(sec); err != nil {
		return Token{}, "", err
	}
	id := hex.EncodeToString(idb)
	secret := Prefix + id + "_" + base64.RawURLEncoding.EncodeToString(sec)
	t := Token{ID: id, Name: name, Groups: o.Groups, Hash: hashSecret(secret), Created: s.now().UTC().Truncate(time.Second), Note: o.Note}
	if !o.Expires.IsZero() {
		t.Expires = o.Expires.UTC().Truncate(time.Second)
	}
	err := s.update(func(f *fileFormat) error {
		f.Tokens = append(f.Tokens, t)
		return nil
	})
	if err != nil {
		return Token{}, "", err
	}
	return t, secret, nil
}

// ErrNotFound: no token matched a revocation.
var ErrNotFound = errors.New("no such token")

// Revoke removes the token with id idOrName, or every token of the robot
// named idOrName, and returns what it removed.
func (s *Store) Revoke(idOrName string) ([]Token, error) {
	var removed []Token
	err := s.update(func(f *fileFormat) error {
		kept := f.Tokens[:0]
		for _, t := range f.Tokens {
			if t.ID == idOrName || t.Name == idOrName {
				removed = append(removed, t)
				continue
			}
			kept = append(kept, t)
		}
		if len(removed) == 0 {
			return ErrNotFound
		}
		f.Tokens = kept
		return nil
	})
	return removed, err
}

// update rewrites the file under an exclusive lock: read, change, write a
// temporary file, sync, rename.
func (s *Store) update(change func(*fileFormat) error) error {
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	lock, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	defer lock.Close()
	keepOwner(lock.Name(), "", dir)
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("token store: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	f := fileFormat{Version: 1, Tokens: []Token{}}
	data, err := os.ReadFile(s.path)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &f); err != nil {
			return fmt.Errorf("token store %s: %w", s.path, err)
		}
		if f.Version != 1 {
			return fmt.Errorf("token store %s: unknown version %d", s.path, f.Version)
		}
	case !os.IsNotExist(err):
		return fmt.Errorf("token store: %w", err)
	}
	if err := change(&f); err != nil {
		return err
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tokens-*")
	if err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("token store: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("token store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	keepOwner(tmp.Name(), s.path, dir)
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// keepOwner gives a file root wrote the owner of the file it replaces, or
// of its directory: `berth token create` run as root (docker exec) must
// not leave a store the unprivileged registry process cannot read.
func keepOwner(file, replaces, dir string) {
	if os.Geteuid() != 0 {
		return
	}
	fi, err := os.Stat(replaces)
	if err != nil {
		if fi, err = os.Stat(dir); err != nil {
			return
		}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (st.Uid != 0 || st.Gid != 0) {
		os.Chown(file, int(st.Uid), int(st.Gid))
	}
}
