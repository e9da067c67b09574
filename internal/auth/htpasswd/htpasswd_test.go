package htpasswd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/internal/auth"
)

func line(t *testing.T, user, pass string) string {
	t.Helper()
	l, err := Line(user, pass, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func write(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// clock is a manual clock for reload checks.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestParse(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	in := "# comment\n\nalice:" + string(h) + "\r\n" +
		"bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n" +
		"carol:$apr1$abc$def\n" +
		"nocolon\n" +
		"alice:" + string(h) + "\n" +
		"  dave:" + string(h) + "  \n"
	var skipped []string
	users, err := Parse(strings.NewReader(in), func(n int, u, why string) {
		skipped = append(skipped, u)
		if strings.Contains(why, "$") {
			t.Errorf("skip reason leaks hash: %s", why)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for u := range users {
		got = append(got, u)
	}
	slices.Sort(got)
	if want := []string{"  dave", "alice"}; !slices.Equal(got, want) {
		t.Errorf("users = %q, want %q", got, want)
	}
	if want := []string{"bob", "carol", "", "alice"}; !slices.Equal(skipped, want) {
		t.Errorf("skipped = %q, want %q", skipped, want)
	}
}

func TestAuthenticate(t *testing.T) {
	dir := t.TempDir()
	fpro, fent, admin := filepath.Join(dir, "fpro"), filepath.Join(dir, "fent"), filepath.Join(dir, "admin")
	write(t, fpro, line(t, "alice", "a1"), line(t, "both", "b1"))
	write(t, fent, line(t, "bob", "b2"), line(t, "both", "b1"))
	write(t, admin, line(t, "root", "r1"))
	s, err := New([]FileSpec{{fpro, "fpro"}, {fent, "fent"}, {admin, ""}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, pass string
		groups     []string
		err        error
	}{
		{"alice", "a1", []string{"fpro"}, nil},
		{"bob", "b2", []string{"fent"}, nil},
		{"both", "b1", []string{"fpro", "fent"}, nil},
		{"root", "r1", nil, nil},
		{"alice", "wrong", nil, auth.ErrBadPassword},
		{"alice", "", nil, auth.ErrBadPassword},
		{"nobody", "a1", nil, auth.ErrUnknownUser},
		{"Alice", "a1", nil, auth.ErrUnknownUser},
	}
	for _, tc := range tests {
		p, err := s.Authenticate(context.Background(), tc.user, tc.pass)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s/%s: err = %v, want %v", tc.user, tc.pass, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if p.Account != tc.user || !slices.Equal(p.Groups, tc.groups) || p.Source != SourceName {
			t.Errorf("%s: principal = %+v, want groups %q", tc.user, p, tc.groups)
		}
		// A second call is answered from the cache with the same result.
		p2, err := s.Authenticate(context.Background(), tc.user, tc.pass)
		if err != nil || !slices.Equal(p2.Groups, p.Groups) {
			t.Errorf("%s: cached call = %+v, %v", tc.user, p2, err)
		}
	}
}

func TestReloadRevokes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	write(t, path, line(t, "alice", "a1"), line(t, "bob", "b1"))
	c := &clock{t: time.Unix(1000, 0)}
	var logs bytes.Buffer
	s, err := New([]FileSpec{{path, "g"}}, Options{now: c.now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := s.Authenticate(ctx, "bob", "b1")
	if err != nil {
		t.Fatal(err)
	}
	// Remove bob (different size, so the change is seen even within the
	// filesystem's timestamp resolution).
	write(t, path, line(t, "alice", "a1"))
	if _, err := s.Authenticate(ctx, "bob", "b1"); err != nil {
		t.Fatalf("before the reload interval the old contents stand: %v", err)
	}
	c.add(DefaultReloadInterval)
	if _, err := s.Authenticate(ctx, "bob", "b1"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Fatalf("after removal: err = %v, want unknown user", err)
	}
	if _, err := s.Lookup(ctx, *p); !errors.Is(err, auth.ErrRevoked) {
		t.Fatalf("lookup after removal: %v, want revoked", err)
	}
	// Changing alice's password revokes tokens issued for the old one.
	pa, err := s.Authenticate(ctx, "alice", "a1")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Lookup(ctx, *pa); err != nil || !slices.Equal(got.Groups, []string{"g"}) {
		t.Fatalf("lookup = %+v, %v", got, err)
	}
	write(t, path, line(t, "alice", "a2"), "# padding\n")
	c.add(DefaultReloadInterval)
	if _, err := s.Lookup(ctx, *pa); !errors.Is(err, auth.ErrRevoked) {
		t.Fatalf("lookup after password change: %v, want revoked", err)
	}
	if _, err := s.Authenticate(ctx, "alice", "a1"); !errors.Is(err, auth.ErrBadPassword) {
		t.Fatalf("old password after change: %v", err)
	}
	// A removed file revokes everyone in it; it counts again once back.
	os.Remove(path)
	c.add(DefaultReloadInterval)
	if _, err := s.Authenticate(ctx, "alice", "a2"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Fatalf("file removed: %v", err)
	}
	write(t, path, line(t, "alice", "a2"))
	c.add(DefaultReloadInterval)
	if _, err := s.Authenticate(ctx, "alice", "a2"); err != nil {
		t.Fatalf("file back: %v", err)
	}
	for _, secret := range []string{"a1", "a2", "b1", "$2"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log mentions %q:\n%s", secret, logs.String())
		}
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(nil, Options{}); err == nil {
		t.Error("no files: want error")
	}
	if _, err := New([]FileSpec{{Path: filepath.Join(dir, "missing")}}, Options{}); err == nil {
		t.Error("missing file: want error")
	}
	if _, err := New([]FileSpec{{Path: dir}}, Options{}); err == nil {
		t.Error("directory: want error")
	}
}
