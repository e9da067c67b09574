// Package ldap authenticates against an LDAP directory (OpenLDAP, Active
// Directory, ...) by binding as the user, and reads the user's groups. The
// user's DN is found by a search (as a service account, or anonymously) or
// built from a template. Successful logins are remembered for a short
// while so clients sending Basic credentials on every request do not bind
// each time.
package ldap

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/berth-registry/berth/internal/auth"
)

// SourceName is the Source name of LDAP principals.
const SourceName = "ldap"

// Options configure the directory.
type Options struct {
	// URL is ldap://host:port or ldaps://host:port.
	URL string
	// StartTLS upgrades an ldap:// connection.
	StartTLS bool
	// CAFile holds the CA certificates the server's certificate must chain
	// to (default: the system's). InsecureSkipVerify disables the check.
	CAFile             string
	InsecureSkipVerify bool
	// BindDN and BindPassword: the service account used to search for
	// users and groups. Empty BindDN searches anonymously.
	BindDN       string
	BindPassword string
	// UserDN is a DN template with {username}, used instead of a search.
	UserDN string
	// UserBase and UserFilter find the user's entry; UserFilter has
	// {username}. Default filter (uid={username}).
	UserBase   string
	UserFilter string
	// GroupBase and GroupFilter find the user's groups; GroupFilter has
	// {dn} and {username}. Default
	// (|(member={dn})(uniqueMember={dn})(memberUid={username})).
	// GroupAttribute names a group (default cn). Empty GroupBase: no
	// groups are read.
	GroupBase      string
	GroupFilter    string
	GroupAttribute string
	// Timeout for connecting and each operation. Default 10s.
	Timeout time.Duration
	// CacheTTL is how long a successful login (and a lookup) is
	// remembered. Default 1m; negative disables the cache.
	CacheTTL time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// Source is an auth.Source backed by LDAP.
type Source struct {
	o      Options
	tlsCfg *tls.Config
	log    *slog.Logger

	key     []byte
	mu      sync.Mutex
	logins  map[string]cached // by user
	lookups map[string]cached // by user
}

type cached struct {
	mac     []byte // HMAC of the password (logins only)
	p       auth.Principal
	expires time.Time
}

const maxCache = 10000

// New checks the options; it does not connect.
func New(o Options) (*Source, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return nil, fmt.Errorf("ldap: url must be ldap://host[:port] or ldaps://host[:port], got %q", o.URL)
	}
	if o.UserDN == "" && o.UserBase == "" {
		return nil, errors.New("ldap: userbase (with userfilter) or userdn is required")
	}
	if o.UserDN != "" && !strings.Contains(o.UserDN, "{username}") {
		return nil, errors.New("ldap: userdn must contain {username}")
	}
	if o.UserFilter == "" {
		o.UserFilter = "(uid={username})"
	}
	if !strings.Contains(o.UserFilter, "{username}") {
		return nil, errors.New("ldap: userfilter must contain {username}")
	}
	if _, err := goldap.CompileFilter(strings.ReplaceAll(o.UserFilter, "{username}", "x")); err != nil {
		return nil, fmt.Errorf("ldap: userfilter: %w", err)
	}
	if o.GroupFilter == "" {
		o.GroupFilter = "(|(member={dn})(uniqueMember={dn})(memberUid={username}))"
	}
	if _, err := goldap.CompileFilter(strings.NewReplacer("{dn}", "x", "{username}", "x").Replace(o.GroupFilter)); err != nil {
		return nil, fmt.Errorf("ldap: groupfilter: %w", err)
	}
	if o.GroupAttribute == "" {
		o.GroupAttribute = "cn"
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Source{o: o, log: o.Logger, logins: map[string]cached{}, lookups: map[string]cached{}}
	s.key = make([]byte, 32)
	rand.Read(s.key)
	if u.Scheme == "ldaps" || o.StartTLS {
		host, _, err := net.SplitHostPort(u.Host)
		if err != nil {
			host = u.Host
		}
		s.tlsCfg = &tls.Config{ServerName: host, InsecureSkipVerify: o.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ldap: cafile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ldap: cafile %s: no certificates", o.CAFile)
			}
			s.tlsCfg.RootCAs = pool
		}
	}
	return s, nil
}

// Name implements auth.Source.
func (s *Source) Name() string { return SourceName }

func (s *Source) dial() (*goldap.Conn, error) {
	d := &net.Dialer{Timeout: s.o.Timeout}
	opts := []goldap.DialOpt{goldap.DialWithDialer(d)}
	if s.tlsCfg != nil {
		opts = append(opts, goldap.DialWithTLSConfig(s.tlsCfg))
	}
	c, err := goldap.DialURL(s.o.URL, opts...)
	if err != nil {
		return nil, err
	}
	c.SetTimeout(s.o.Timeout)
	if s.o.StartTLS && strings.HasPrefix(s.o.URL, "ldap://") {
		if err := c.StartTLS(s.tlsCfg); err != nil {
			c.Close()
			return nil, fmt.Errorf("starttls: %w", err)
		}
	}
	return c, nil
}

// serviceBind binds as the service account (or stays anonymous).
func (s *Source) serviceBind(c *goldap.Conn) error {
	if s.o.BindDN == "" {
		return nil
	}
	if err := c.Bind(s.o.BindDN, s.o.BindPassword); err != nil {
		return fmt.Errorf("service bind as %s: %w", s.o.BindDN, err)
	}
	return nil
}

func (s *Source) mac(password string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(password))
	return m.Sum(nil)
}

// Authenticate implements auth.Source.
func (s *Source) Authenticate(ctx context.Context, user, password string) (*auth.Principal, error) {
	// An empty password would be an unauthenticated bind, which servers
	// accept as success.
	if password == "" || user == "" {
		return nil, auth.ErrBadPassword
	}
	sum := s.mac(password)
	now := s.o.Now()
	if s.o.CacheTTL > 0 {
		s.mu.Lock()
		e, ok := s.logins[user]
		s.mu.Unlock()
		if ok && now.Before(e.expires) && subtle.ConstantTimeCompare(e.mac, sum) == 1 {
			p := e.p
			return &p, nil
		}
	}
	c, err := s.dial()
	if err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	defer c.Close()
	dn, err := s.userDN(c, user)
	if err != nil {
		return nil, err
	}
	if err := c.Bind(dn, password); err != nil {
		if goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
			return nil, auth.ErrBadPassword
		}
		return nil, fmt.Errorf("ldap: bind: %w", err)
	}
	// Read groups as the service account if there is one (users often
	// may not search groups), else as the user.
	if s.o.BindDN != "" {
		if err := s.serviceBind(c); err != nil {
			return nil, fmt.Errorf("ldap: %w", err)
		}
	}
	groups, err := s.groups(c, dn, user)
	if err != nil {
		return nil, err
	}
	p := auth.Principal{Account: user, Groups: groups, Source: SourceName, Ref: dn}
	if s.o.CacheTTL > 0 {
		s.mu.Lock()
		if len(s.logins) >= maxCache {
			clear(s.logins)
		}
		s.logins[user] = cached{mac: sum, p: p, expires: now.Add(s.o.CacheTTL)}
		s.mu.Unlock()
	}
	return &p, nil
}

// userDN finds the entry of user.
func (s *Source) userDN(c *goldap.Conn, user string) (string, error) {
	if s.o.UserDN != "" {
		return strings.ReplaceAll(s.o.UserDN, "{username}", goldap.EscapeDN(user)), nil
	}
	if err := s.serviceBind(c); err != nil {
		return "", fmt.Errorf("ldap: %w", err)
	}
	filter := strings.ReplaceAll(s.o.UserFilter, "{username}", goldap.EscapeFilter(user))
	res, err := c.Search(goldap.NewSearchRequest(s.o.UserBase, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases,
		2, int(s.o.Timeout/time.Second), false, filter, []string{"dn"}, nil))
	if err != nil {
		if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
			return "", auth.ErrUnknownUser
		}
		return "", fmt.Errorf("ldap: user search: %w", err)
	}
	switch len(res.Entries) {
	case 0:
		return "", auth.ErrUnknownUser
	case 1:
		return res.Entries[0].DN, nil
	}
	s.log.Warn("ldap: user filter matches several entries; refusing the login", "user", user)
	return "", auth.ErrUnknownUser
}

func (s *Source) groups(c *goldap.Conn, dn, user string) ([]string, error) {
	if s.o.GroupBase == "" {
		return nil, nil
	}
	filter := strings.NewReplacer("{dn}", goldap.EscapeFilter(dn), "{username}", goldap.EscapeFilter(user)).Replace(s.o.GroupFilter)
	res, err := c.Search(goldap.NewSearchRequest(s.o.GroupBase, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases,
		0, int(s.o.Timeout/time.Second), false, filter, []string{s.o.GroupAttribute}, nil))
	if err != nil {
		return nil, fmt.Errorf("ldap: group search: %w", err)
	}
	var out []string
	for _, e := range res.Entries {
		for _, v := range e.GetAttributeValues(s.o.GroupAttribute) {
			if v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Lookup implements auth.Source: with a search configuration, the user
// must still be found at the same DN; groups are read again. The answer
// is cached like logins. With only a DN template and no service account
// the directory cannot be asked without the password, and the principal
// stands as issued.
func (s *Source) Lookup(ctx context.Context, p auth.Principal) (*auth.Principal, error) {
	if p.Source != SourceName {
		return nil, auth.ErrRevoked
	}
	if s.o.UserDN != "" && s.o.BindDN == "" {
		return &p, nil
	}
	now := s.o.Now()
	if s.o.CacheTTL > 0 {
		s.mu.Lock()
		e, ok := s.lookups[p.Account]
		s.mu.Unlock()
		if ok && now.Before(e.expires) && e.p.Ref == p.Ref {
			q := e.p
			return &q, nil
		}
	}
	c, err := s.dial()
	if err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	defer c.Close()
	dn, err := s.userDN(c, p.Account)
	if errors.Is(err, auth.ErrUnknownUser) {
		return nil, auth.ErrRevoked
	}
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(dn, p.Ref) {
		return nil, auth.ErrRevoked
	}
	if err := s.serviceBind(c); err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	if s.o.UserDN != "" {
		// A DN from the template: make sure the entry still exists.
		_, err := c.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases,
			1, int(s.o.Timeout/time.Second), false, "(objectClass=*)", []string{"dn"}, nil))
		if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
			return nil, auth.ErrRevoked
		}
		if err != nil {
			return nil, fmt.Errorf("ldap: user lookup: %w", err)
		}
	}
	groups, err := s.groups(c, dn, p.Account)
	if err != nil {
		return nil, err
	}
	q := auth.Principal{Account: p.Account, Groups: groups, Source: SourceName, Ref: dn}
	if s.o.CacheTTL > 0 {
		s.mu.Lock()
		if len(s.lookups) >= maxCache {
			clear(s.lookups)
		}
		s.lookups[p.Account] = cached{p: q, expires: now.Add(s.o.CacheTTL)}
		s.mu.Unlock()
	}
	return &q, nil
}
