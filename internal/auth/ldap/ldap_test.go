package ldap

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/ldap/slapdtest"
)

func TestOptions(t *testing.T) {
	tests := []struct {
		o    Options
		want string
	}{
		{Options{URL: "http://x", UserBase: "dc=x"}, "url must be"},
		{Options{URL: "ldap://"}, "url must be"},
		{Options{URL: "ldap://x"}, "userbase"},
		{Options{URL: "ldap://x", UserDN: "cn=x"}, "{username}"},
		{Options{URL: "ldap://x", UserBase: "dc=x", UserFilter: "(uid=x)"}, "{username}"},
		{Options{URL: "ldap://x", UserBase: "dc=x", UserFilter: "(uid={username}"}, "userfilter"},
		{Options{URL: "ldap://x", UserBase: "dc=x", GroupFilter: "((("}, "groupfilter"},
	}
	for _, tc := range tests {
		if _, err := New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

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

// TestSlapd runs the source against a real OpenLDAP server.
func TestSlapd(t *testing.T) {
	srv := slapdtest.Start(t)
	srv.AddUser(t, "alice", "alice-pw")
	srv.AddUser(t, "bob", "bob-pw")
	srv.AddUser(t, "carol", "carol-pw")
	srv.AddUser(t, "star*", "star-pw")
	srv.AddGroup(t, "admins", "alice")
	srv.AddGroup(t, "developers", "alice", "bob")
	srv.AddPosixGroup(t, "ci", 5000, "carol")

	c := &clock{t: time.Now()}
	search := Options{
		URL:          srv.URL,
		BindDN:       slapdtest.AdminDN,
		BindPassword: slapdtest.AdminPassword,
		UserBase:     slapdtest.PeopleDN,
		GroupBase:    slapdtest.GroupsDN,
		Now:          c.now,
	}
	template := Options{
		URL:       srv.URL,
		UserDN:    "uid={username}," + slapdtest.PeopleDN,
		GroupBase: slapdtest.GroupsDN,
		CacheTTL:  -1,
	}
	ctx := context.Background()
	for name, o := range map[string]Options{"search": search, "template": template} {
		t.Run(name, func(t *testing.T) {
			s, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				user, pass string
				groups     []string
				err        error
			}{
				{"alice", "alice-pw", []string{"admins", "developers"}, nil},
				{"bob", "bob-pw", []string{"developers"}, nil},
				{"carol", "carol-pw", []string{"ci"}, nil},
				{"alice", "wrong", nil, auth.ErrBadPassword},
				{"alice", "", nil, auth.ErrBadPassword},
				{"nobody", "x", nil, auth.ErrUnknownUser},
				{"*", "alice-pw", nil, auth.ErrUnknownUser},
				{"alice)(uid=*", "alice-pw", nil, auth.ErrUnknownUser},
			}
			if name == "template" {
				// Without a search, an unknown DN fails the bind.
				tests[5].err, tests[6].err, tests[7].err = auth.ErrBadPassword, auth.ErrBadPassword, auth.ErrBadPassword
			}
			for _, tc := range tests {
				p, err := s.Authenticate(ctx, tc.user, tc.pass)
				if tc.err != nil {
					if !errors.Is(err, tc.err) {
						t.Errorf("%s/%s: err = %v, want %v", tc.user, tc.pass, err, tc.err)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", tc.user, err)
					continue
				}
				if p.Account != tc.user || !slices.Equal(p.Groups, tc.groups) || p.Source != SourceName || p.Ref != slapdtest.UserDN(tc.user) {
					t.Errorf("%s: %+v, want groups %q", tc.user, p, tc.groups)
				}
			}
		})
	}

	// Lookup follows the directory: a deleted user is revoked once the
	// cache entry expires; group changes show up.
	s, _ := New(search)
	p, err := s.Authenticate(ctx, "bob", "bob-pw")
	if err != nil {
		t.Fatal(err)
	}
	if q, err := s.Lookup(ctx, *p); err != nil || !slices.Equal(q.Groups, []string{"developers"}) {
		t.Fatalf("lookup: %+v %v", q, err)
	}
	srv.Delete(t, "cn=developers,"+slapdtest.GroupsDN)
	srv.Delete(t, slapdtest.UserDN("bob"))
	if _, err := s.Lookup(ctx, *p); err != nil {
		t.Fatalf("cached lookup: %v", err)
	}
	// Logins are cached too: the cache answers without the directory.
	if _, err := s.Authenticate(ctx, "bob", "bob-pw"); err != nil {
		t.Fatalf("cached login: %v", err)
	}
	if _, err := s.Authenticate(ctx, "bob", "other"); err == nil {
		t.Fatal("cache accepted another password")
	}
	c.add(2 * time.Minute)
	if _, err := s.Lookup(ctx, *p); !errors.Is(err, auth.ErrRevoked) {
		t.Fatalf("lookup of deleted user: %v", err)
	}
	if _, err := s.Authenticate(ctx, "bob", "bob-pw"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Fatalf("login of deleted user: %v", err)
	}
	pa, _ := s.Authenticate(ctx, "alice", "alice-pw")
	if q, err := s.Lookup(ctx, *pa); err != nil || !slices.Equal(q.Groups, []string{"admins"}) {
		t.Fatalf("groups after a group was deleted: %+v %v", q, err)
	}

	// A directory that is down is an error, not a wrong password.
	down, _ := New(Options{URL: "ldap://127.0.0.1:1", UserBase: slapdtest.PeopleDN, Timeout: 2 * time.Second})
	if _, err := down.Authenticate(ctx, "alice", "alice-pw"); err == nil || errors.Is(err, auth.ErrBadPassword) || errors.Is(err, auth.ErrUnknownUser) {
		t.Fatalf("directory down: %v", err)
	}
	// A wrong service password is an error too.
	bad := search
	bad.BindPassword = "wrong"
	sb, _ := New(bad)
	if _, err := sb.Authenticate(ctx, "alice", "alice-pw"); err == nil || errors.Is(err, auth.ErrBadPassword) {
		t.Fatalf("bad service bind: %v", err)
	}
	if strings.Contains(err2str(sb.Authenticate(ctx, "alice", "alice-pw")), "wrong") {
		t.Fatal("the error mentions the service password")
	}
}

func err2str(_ *auth.Principal, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// With a DN template and a service account, Lookup notices a deleted entry.
func TestSlapdTemplateLookup(t *testing.T) {
	srv := slapdtest.Start(t)
	srv.AddUser(t, "dave", "dave-pw")
	s, err := New(Options{URL: srv.URL, UserDN: "uid={username}," + slapdtest.PeopleDN, BindDN: slapdtest.AdminDN,
		BindPassword: slapdtest.AdminPassword, GroupBase: slapdtest.GroupsDN, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := s.Authenticate(ctx, "dave", "dave-pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, *p); err != nil {
		t.Fatalf("lookup: %v", err)
	}
	srv.Delete(t, slapdtest.UserDN("dave"))
	if _, err := s.Lookup(ctx, *p); !errors.Is(err, auth.ErrRevoked) {
		t.Fatalf("lookup of a deleted entry: %v", err)
	}
}
