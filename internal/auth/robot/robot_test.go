package robot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth"
)

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

func TestCreateAuthenticateRevoke(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth", "tokens.json")
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	server, err := Open(path, Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	// The CLI works on its own Store value, as another process would.
	cli, _ := Open(path, Options{Now: c.now})
	tok, secret, err := cli.Create("ci-bot", CreateOptions{Groups: []string{"ci"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, Prefix+tok.ID+"_") || len(secret) < 50 {
		t.Errorf("secret %q", secret)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), secret) || strings.Contains(string(data), secret[len(Prefix)+13:]) {
		t.Fatal("the file holds the secret")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	ctx := context.Background()
	if _, err := server.Authenticate(ctx, "ci-bot", secret); !errors.Is(err, auth.ErrUnknownUser) {
		t.Fatalf("before reload interval: %v", err)
	}
	c.add(time.Second)
	p, err := server.Authenticate(ctx, "ci-bot", secret)
	if err != nil {
		t.Fatal(err)
	}
	if p.Account != "ci-bot" || !slices.Equal(p.Groups, []string{"ci"}) || p.Source != SourceName || p.Ref != tok.ID {
		t.Errorf("principal %+v", p)
	}
	tests := []struct {
		user, pass string
		want       error
	}{
		{"ci-bot", secret + "x", auth.ErrBadPassword},
		{"ci-bot", strings.Replace(secret, tok.ID, "000000000000", 1), auth.ErrBadPassword},
		{"ci-bot", "hunter2", auth.ErrBadPassword},
		{"other", secret, auth.ErrUnknownUser},
	}
	for _, tc := range tests {
		if _, err := server.Authenticate(ctx, tc.user, tc.pass); !errors.Is(err, tc.want) {
			t.Errorf("%s/%s: %v, want %v", tc.user, tc.pass, err, tc.want)
		}
	}
	// A second token for the same robot (rotation), then revoke the first.
	tok2, secret2, err := cli.Create("ci-bot", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	removed, err := cli.Revoke(tok.ID)
	if err != nil || len(removed) != 1 || removed[0].ID != tok.ID {
		t.Fatalf("revoke: %v %v", removed, err)
	}
	c.add(time.Second)
	if _, err := server.Authenticate(ctx, "ci-bot", secret); !errors.Is(err, auth.ErrBadPassword) {
		t.Errorf("revoked token: %v", err)
	}
	if _, err := server.Lookup(ctx, *p); !errors.Is(err, auth.ErrRevoked) {
		t.Errorf("lookup of revoked token: %v", err)
	}
	if _, err := server.Authenticate(ctx, "ci-bot", secret2); err != nil {
		t.Errorf("second token: %v", err)
	}
	list, err := cli.List()
	if err != nil || len(list) != 1 || list[0].ID != tok2.ID {
		t.Errorf("list = %+v, %v", list, err)
	}
	if _, err := cli.Revoke("ci-bot"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke("ci-bot"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking nothing: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, _ := Open(path, Options{Now: c.now, ReloadInterval: time.Nanosecond})
	_, secret, err := s.Create("bot", CreateOptions{Expires: c.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c.add(time.Second)
	p, err := s.Authenticate(context.Background(), "bot", secret)
	if err != nil {
		t.Fatal(err)
	}
	c.add(time.Hour)
	if _, err := s.Authenticate(context.Background(), "bot", secret); !errors.Is(err, auth.ErrBadPassword) {
		t.Errorf("expired: %v", err)
	}
	if _, err := s.Lookup(context.Background(), *p); !errors.Is(err, auth.ErrRevoked) {
		t.Errorf("expired lookup: %v", err)
	}
}

func TestCreateValidation(t *testing.T) {
	s, _ := Open(filepath.Join(t.TempDir(), "tokens.json"), Options{})
	for _, name := range []string{"", "CI", "a b", "a:b", "-a", "a/b"} {
		if _, _, err := s.Create(name, CreateOptions{}); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if _, _, err := s.Create("ok", CreateOptions{Groups: []string{"a,b"}}); err == nil {
		t.Error("bad group accepted")
	}
}

func TestCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := Open(path, Options{}); err == nil {
		t.Error("corrupt file accepted at start")
	}
}

// Root (docker exec ... berth token create) keeps the store readable by
// the unprivileged registry that owns the directory.
func TestRootKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := filepath.Join(t.TempDir(), "berth")
	os.MkdirAll(dir, 0o700)
	if err := os.Chown(dir, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	s, _ := Open(filepath.Join(dir, "tokens.json"), Options{})
	if _, _, err := s.Create("bot", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tokens.json", "tokens.json.lock"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65532 || st.Gid != 65532 {
			t.Errorf("%s owned by %d:%d", name, st.Uid, st.Gid)
		}
	}
}
