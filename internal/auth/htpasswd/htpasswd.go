// Package htpasswd authenticates against Apache htpasswd files with bcrypt
// entries, as registry:2's auth.htpasswd does, with two additions: several
// files at once, each naming a group its users belong to, and reloading a
// file when it changes on disk (checked at most once per interval, on use),
// so removing a line revokes that user within seconds, without a restart.
package htpasswd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/internal/auth"
)

// SourceName is the Source name of htpasswd principals.
const SourceName = "htpasswd"

// DefaultReloadInterval is how often, at most, a file is stat'ed for
// changes.
const DefaultReloadInterval = time.Second

// FileSpec names one htpasswd file and the group its users belong to
// ("" for none).
type FileSpec struct {
	Path  string
	Group string
}

// Options configure a Set.
type Options struct {
	// ReloadInterval bounds how often each file is checked for changes;
	// zero means DefaultReloadInterval.
	ReloadInterval time.Duration
	Logger         *slog.Logger
	// now is the clock (tests).
	now func() time.Time
}

// entry is one user line.
type entry struct {
	hash []byte
	// id is a digest of the hash, carried in tokens: a changed password
	// gives a different id.
	id string
}

type snapshot struct {
	users   map[string]entry
	modTime time.Time
	size    int64
	missing bool
}

type file struct {
	spec     FileSpec
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex   // serialises reloads
	checked atomic.Int64 // unix nanoseconds of the last stat
	cur     atomic.Pointer[snapshot]
}

// Set is an auth.Source over one or more htpasswd files.
type Set struct {
	files []*file
	log   *slog.Logger

	// cache remembers passwords that matched a bcrypt entry (as an HMAC
	// under a per-process key) so clients sending Basic credentials on
	// every request do not pay a bcrypt comparison each time. An entry is
	// used only while the file still holds the same hash.
	cacheKey []byte
	cacheMu  sync.Mutex
	cache    map[cacheKey][]byte

	dummyMu sync.Mutex
	dummy   map[int][]byte // bcrypt hash per cost, for unknown users
}

type cacheKey struct {
	file int
	user string
	id   string
}

const maxCache = 10000

// New loads every file. A file that cannot be read or holds no usable entry
// is an error at start-up; later, a file that disappears counts as empty
// (its users are revoked) until it comes back.
func New(specs []FileSpec, opts Options) (*Set, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("htpasswd: no files")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	interval := opts.ReloadInterval
	if interval <= 0 {
		interval = DefaultReloadInterval
	}
	now := opts.now
	if now == nil {
		now = time.Now
	}
	s := &Set{log: log, cache: map[cacheKey][]byte{}, dummy: map[int][]byte{}}
	s.cacheKey = make([]byte, 32)
	rand.Read(s.cacheKey)
	for _, spec := range specs {
		if spec.Path == "" {
			return nil, fmt.Errorf("htpasswd: a file without a path")
		}
		f := &file{spec: spec, interval: interval, log: log, now: now}
		snap, err := f.load()
		if err != nil {
			return nil, err
		}
		if snap.missing {
			return nil, fmt.Errorf("htpasswd file %s does not exist", spec.Path)
		}
		f.cur.Store(snap)
		f.checked.Store(now().UnixNano())
		s.files = append(s.files, f)
	}
	return s, nil
}

// Name implements auth.Source.
func (s *Set) Name() string { return SourceName }

// Users lists the accounts of every file (for diagnostics and tests).
func (s *Set) Users() []string {
	var out []string
	for _, f := range s.files {
		for u := range f.snapshot().users {
			if !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Authenticate implements auth.Source. The principal's groups are those of
// the files whose entry for user matches password.
func (s *Set) Authenticate(_ context.Context, user, password string) (*auth.Principal, error) {
	known := false
	var groups, ids []string
	for i, f := range s.files {
		e, ok := f.snapshot().users[user]
		if !ok {
			continue
		}
		known = true
		if !s.matches(i, user, e, password) {
			continue
		}
		ids = append(ids, e.id)
		if f.spec.Group != "" && !slices.Contains(groups, f.spec.Group) {
			groups = append(groups, f.spec.Group)
		}
	}
	if !known {
		// Spend the time a real comparison takes, so response times do
		// not reveal which accounts exist.
		bcrypt.CompareHashAndPassword(s.dummyHash(s.typicalCost()), []byte(password))
		return nil, auth.ErrUnknownUser
	}
	if len(ids) == 0 {
		return nil, auth.ErrBadPassword
	}
	return &auth.Principal{Account: user, Groups: groups, Source: SourceName, Ref: strings.Join(ids, ".")}, nil
}

// Lookup implements auth.Source: the principal stands while at least one of
// the entries it authenticated with is still in its file unchanged; its
// groups are those files'.
func (s *Set) Lookup(_ context.Context, p auth.Principal) (*auth.Principal, error) {
	if p.Source != SourceName {
		return nil, auth.ErrRevoked
	}
	ids := strings.Split(p.Ref, ".")
	var groups, kept []string
	for _, f := range s.files {
		e, ok := f.snapshot().users[p.Account]
		if !ok || !slices.Contains(ids, e.id) {
			continue
		}
		kept = append(kept, e.id)
		if f.spec.Group != "" && !slices.Contains(groups, f.spec.Group) {
			groups = append(groups, f.spec.Group)
		}
	}
	if len(kept) == 0 {
		return nil, auth.ErrRevoked
	}
	return &auth.Principal{Account: p.Account, Groups: groups, Source: SourceName, Ref: p.Ref}, nil
}

func (s *Set) matches(i int, user string, e entry, password string) bool {
	mac := hmac.New(sha256.New, s.cacheKey)
	mac.Write([]byte(password))
	sum := mac.Sum(nil)
	k := cacheKey{file: i, user: user, id: e.id}
	s.cacheMu.Lock()
	cached, ok := s.cache[k]
	s.cacheMu.Unlock()
	if ok && subtle.ConstantTimeCompare(cached, sum) == 1 {
		return true
	}
	if bcrypt.CompareHashAndPassword(e.hash, []byte(password)) != nil {
		return false
	}
	s.cacheMu.Lock()
	if len(s.cache) >= maxCache {
		clear(s.cache)
	}
	s.cache[k] = sum
	s.cacheMu.Unlock()
	return true
}

// typicalCost is the bcrypt cost of the first entry found, so the dummy
// comparison for unknown users costs what a real one does.
func (s *Set) typicalCost() int {
	for _, f := range s.files {
		for _, e := range f.snapshot().users {
			if c, err := bcrypt.Cost(e.hash); err == nil {
				return c
			}
		}
	}
	return bcrypt.DefaultCost
}

func (s *Set) dummyHash(cost int) []byte {
	s.dummyMu.Lock()
	defer s.dummyMu.Unlock()
	if h, ok := s.dummy[cost]; ok {
		return h
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	h, err := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(secret)), cost)
	if err != nil {
		h, _ = bcrypt.GenerateFromPassword(secret, bcrypt.DefaultCost)
	}
	s.dummy[cost] = h
	return h
}

// snapshot returns the file's users, re-reading the file first if the
// check interval has passed and its size or modification time changed.
func (f *file) snapshot() *snapshot {
	cur := f.cur.Load()
	now := f.now()
	if now.Sub(time.Unix(0, f.checked.Load())) < f.interval {
		return cur
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(time.Unix(0, f.checked.Load())) < f.interval {
		return f.cur.Load()
	}
	f.checked.Store(now.UnixNano())
	cur = f.cur.Load()
	fi, err := os.Stat(f.spec.Path)
	if err == nil && !cur.missing && fi.ModTime().Equal(cur.modTime) && fi.Size() == cur.size {
		return cur
	}
	next, err := f.load()
	if err != nil {
		// Unreadable (permissions, I/O): keep serving what we had rather
		// than locking everyone out, and say so.
		f.log.Error("htpasswd: reload failed; keeping the previous contents", "path", f.spec.Path, "err", err)
		return cur
	}
	switch {
	case next.missing && !cur.missing:
		f.log.Error("htpasswd: file removed; its users are refused until it is back", "path", f.spec.Path)
	case !next.missing:
		f.log.Info("htpasswd: reloaded", "path", f.spec.Path, "group", f.spec.Group, "users", len(next.users))
	}
	f.cur.Store(next)
	return next
}

// load reads and parses the file.
func (f *file) load() (*snapshot, error) {
	fh, err := os.Open(f.spec.Path)
	if os.IsNotExist(err) {
		return &snapshot{users: map[string]entry{}, missing: true}, nil
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("htpasswd file %s is a directory", f.spec.Path)
	}
	users, err := Parse(fh, func(line int, user, why string) {
		f.log.Warn("htpasswd: entry ignored", "path", f.spec.Path, "line", line, "user", user, "reason", why)
	})
	if err != nil {
		return nil, fmt.Errorf("htpasswd file %s: %w", f.spec.Path, err)
	}
	snap := &snapshot{users: map[string]entry{}, modTime: fi.ModTime(), size: fi.Size()}
	for u, h := range users {
		sum := sha256.Sum256(append([]byte(u+":"), h...))
		snap.users[u] = entry{hash: h, id: hex.EncodeToString(sum[:8])}
	}
	return snap, nil
}

// Parse reads htpasswd lines ("user:hash"), skipping blank lines and
// comments. Only bcrypt hashes ($2a$, $2b$, $2y$) are accepted, as in
// registry:2; other entries are reported to skipped (never with the hash)
// and left out. The first entry for a user wins, as in Apache.
func Parse(r io.Reader, skipped func(line int, user, why string)) (map[string][]byte, error) {
	users := map[string][]byte{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			if skipped != nil {
				skipped(n, "", "not user:hash")
			}
			continue
		}
		hash = strings.TrimSpace(hash)
		if !isBcrypt(hash) {
			if skipped != nil {
				skipped(n, user, "not a bcrypt hash (create entries with htpasswd -B)")
			}
			continue
		}
		if _, dup := users[user]; dup {
			if skipped != nil {
				skipped(n, user, "duplicate user; the first entry is used")
			}
			continue
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return users, nil
}

func isBcrypt(h string) bool {
	if !(strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$")) {
		return false
	}
	_, err := bcrypt.Cost([]byte(h))
	return err == nil
}

// Line returns an htpasswd line for user with a bcrypt hash of password.
func Line(user, password string, cost int) (string, error) {
	if user == "" || strings.ContainsAny(user, ":\n\r") {
		return "", fmt.Errorf("invalid user name %q", user)
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", err
	}
	return user + ":" + string(bytes.TrimSpace(h)) + "\n", nil
}
