// Package gate is berth's auth.Authorizer: it reads the credentials of a
// request (Basic, or a Bearer token from berth's own token service or an
// external issuer), checks them against the configured sources with
// brute-force protection, decides with the policy, and answers refusals
// the way the distribution and token-auth specs describe: 401 with a
// WWW-Authenticate challenge, 403 DENIED, 429 TOOMANYREQUESTS. It also
// serves berth's token endpoint (the realm of the Bearer challenge).
package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/policy"
	"github.com/berth-registry/berth/internal/auth/ratelimit"
	"github.com/berth-registry/berth/internal/auth/token"
	"github.com/berth-registry/berth/internal/forwarded"
	"github.com/berth-registry/berth/internal/logctx"
	"github.com/berth-registry/berth/internal/tlsconf"
)

// Mode selects how clients authenticate to the registry.
type Mode int

const (
	// Basic: HTTP Basic credentials checked against the sources on every
	// request; the challenge is "Basic realm=...". registry:2's
	// auth.htpasswd.
	Basic Mode = iota
	// Token: berth's own token service. The challenge is "Bearer
	// realm=<berth's token endpoint>,service=..."; Basic credentials are
	// accepted on the API too.
	Token
	// External: tokens from an external issuer (registry:2's auth.token);
	// only they are accepted and they carry the access granted.
	External
)

func (m Mode) String() string {
	switch m {
	case Basic:
		return "basic"
	case Token:
		return "token"
	case External:
		return "external token"
	}
	return "unknown"
}

// Defaults.
const (
	DefaultTokenPath     = "/auth/token"
	DefaultExpiry        = 5 * time.Minute
	DefaultRefreshExpiry = 30 * 24 * time.Hour
	DefaultBasicRealm    = "Registry Realm"
	// MaxAuthorization bounds the Authorization header; longer ones are
	// refused without being parsed.
	MaxAuthorization = 16 << 10
	maxUser          = 256
	maxPassword      = 4096
	maxScopes        = 100
)

// Options configure a Gate.
type Options struct {
	Mode Mode
	// Sources check user names and passwords (Basic and Token modes).
	Sources auth.Chain
	// Policy decides access in Basic and Token modes; nil means every
	// authenticated user may do everything (registry:2's htpasswd).
	Policy *policy.Policy
	// Realm: the Basic realm (Basic mode); the token endpoint URL of the
	// challenge (Token mode: empty derives it from the request; External
	// mode: the issuer's URL, required unless AutoRedirect).
	Realm string
	// Service is the "service" of Bearer challenges and tokens' audience.
	Service string
	// Signer issues berth's tokens (Token mode).
	Signer *token.Signer
	// Verifier checks presented tokens (Token and External modes).
	Verifier *token.Verifier
	// AutoRedirect (External mode, registry:2's auth.token.autoredirect)
	// derives the realm from the request's host and AutoRedirectPath.
	AutoRedirect     bool
	AutoRedirectPath string
	// TokenPath is where the token endpoint is mounted, below Prefix.
	TokenPath string
	// Host is http.host: the externally visible base URL, if configured.
	Host string
	// Prefix is http.prefix.
	Prefix string
	// Expiry of access tokens (at least 60s); RefreshExpiry of refresh
	// (identity) tokens.
	Expiry        time.Duration
	RefreshExpiry time.Duration
	// ClientCertificates accepts a verified TLS client certificate as a
	// login when a request carries no other credentials: its common name is
	// the account (berth.auth.clientcertificates).
	ClientCertificates bool
	// Limiter slows down and refuses repeated failures; nil: none.
	Limiter *ratelimit.Limiter
	// TrustedProxies are the addresses whose X-Forwarded-For is believed
	// when telling clients apart for rate limiting.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	Now            func() time.Time
}

// Gate is the Authorizer.
type Gate struct {
	o   Options
	pol *policy.Policy
	log *slog.Logger
}

// New checks the options.
func New(o Options) (*Gate, error) {
	switch o.Mode {
	case Basic:
		if len(o.Sources) == 0 {
			return nil, errors.New("auth: basic authentication needs at least one source")
		}
		if o.Realm == "" {
			o.Realm = DefaultBasicRealm
		}
	case Token:
		if len(o.Sources) == 0 && o.Policy == nil {
			return nil, errors.New("auth: the token service needs a source or a policy")
		}
		if o.Signer == nil || o.Verifier == nil || o.Service == "" {
			return nil, errors.New("auth: the token service needs a signer, a verifier and a service")
		}
	case External:
		if o.Verifier == nil || o.Service == "" {
			return nil, errors.New("auth: token authentication needs a verifier and a service")
		}
		if o.Realm == "" && !o.AutoRedirect {
			return nil, errors.New("auth: token authentication needs a realm")
		}
	default:
		return nil, fmt.Errorf("auth: unknown mode %d", o.Mode)
	}
	if o.TokenPath == "" {
		o.TokenPath = DefaultTokenPath
	}
	if o.AutoRedirectPath == "" {
		o.AutoRedirectPath = DefaultTokenPath
	}
	if o.Expiry <= 0 {
		o.Expiry = DefaultExpiry
	}
	o.Expiry = max(o.Expiry, time.Minute)
	if o.RefreshExpiry <= 0 {
		o.RefreshExpiry = DefaultRefreshExpiry
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &Gate{o: o, pol: o.Policy, log: o.Logger}
	if g.pol == nil {
		g.pol = policy.AnyUser()
	}
	return g, nil
}

// Mode reports the gate's mode.
func (g *Gate) Mode() Mode { return g.o.Mode }

// BasicRealm is the realm of a Basic challenge a client that can answer
// no other (a web browser) may be sent instead of the gate's own: the
// configured realm in Basic mode; DefaultBasicRealm with berth's token
// service, which takes Basic credentials too; "" with an external issuer,
// whose tokens are the only credentials accepted.
func (g *Gate) BasicRealm() string {
	switch g.o.Mode {
	case Basic:
		return g.o.Realm
	case Token:
		return DefaultBasicRealm
	}
	return ""
}

// TokenPath is where TokenHandler belongs (below the prefix), or "" when
// berth runs no token service.
func (g *Gate) TokenPath() string {
	if g.o.Mode != Token {
		return ""
	}
	return g.o.TokenPath
}

// caller is who a request comes from.
type caller struct {
	who *auth.Principal // nil: anonymous
	tok *token.Claims   // the bearer token presented, if any
}

// Authorize implements auth.Authorizer.
func (g *Gate) Authorize(r *http.Request, access []auth.Access) (auth.Identity, error) {
	c, err := g.caller(r, access)
	if err != nil {
		return nil, err
	}
	if len(access) == 0 {
		// The base endpoint: it tells clients whether and how to log in,
		// so a caller without credentials is always challenged.
		if c.who == nil && c.tok == nil {
			return nil, g.unauthorized(r, nil, "", "authentication required")
		}
		return g.identity(c), nil
	}
	if g.o.Mode == External {
		if c.tok == nil {
			return nil, g.unauthorized(r, access, "", "authentication required")
		}
		if !auth.Covers(c.tok.Access, access) {
			return nil, g.unauthorized(r, access, "insufficient_scope", "the token does not grant the requested access")
		}
		return g.identity(c), nil
	}
	if !auth.Covers(g.pol.Grant(c.who, access), access) {
		if c.who != nil {
			return nil, &auth.Error{Status: http.StatusForbidden, Code: "DENIED",
				Message: "requested access to the resource is denied", Detail: access}
		}
		code := ""
		if c.tok != nil {
			code = "insufficient_scope"
		}
		return nil, g.unauthorized(r, access, code, "authentication required")
	}
	if c.tok != nil && !auth.Covers(c.tok.Access, access) {
		// Allowed, but not by this token: the client asks for a new one.
		return nil, g.unauthorized(r, access, "insufficient_scope", "the token does not grant the requested access")
	}
	return g.identity(c), nil
}

// caller reads the request's credentials.
func (g *Gate) caller(r *http.Request, access []auth.Access) (caller, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		if p := g.certPrincipal(r); p != nil {
			return caller{who: p}, nil
		}
		return caller{}, nil
	}
	if len(vals) > 1 {
		return caller{}, g.unauthorized(r, access, "invalid_request", "more than one Authorization header")
	}
	h := vals[0]
	if len(h) > MaxAuthorization {
		g.o.Limiter.Fail(g.clientIP(r), "")
		return caller{}, g.unauthorized(r, access, "invalid_request", "Authorization header too large")
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	switch strings.ToLower(scheme) {
	case "basic":
		if g.o.Mode == External {
			return caller{}, g.unauthorized(r, access, "", "this registry accepts tokens from its token service only")
		}
		user, pass, ok := r.BasicAuth()
		if !ok {
			return caller{}, g.unauthorized(r, access, "invalid_request", "malformed Basic credentials")
		}
		p, err := g.login(r, access, user, pass)
		if err != nil {
			return caller{}, err
		}
		return caller{who: p}, nil
	case "bearer":
		if g.o.Mode == Basic {
			return caller{}, g.unauthorized(r, access, "", "bearer tokens are not accepted here; use Basic credentials")
		}
		c, err := g.bearer(r, strings.TrimSpace(rest), token.KindAccess)
		if err != nil {
			return caller{}, g.unauthorized(r, access, "invalid_token", err.Error())
		}
		return c, nil
	}
	return caller{}, g.unauthorized(r, access, "invalid_request", "unsupported authorization scheme")
}

// bearer verifies a token of the given kind and, for berth's own tokens,
// checks that the account it names still stands.
func (g *Gate) bearer(r *http.Request, raw, kind string) (caller, error) {
	claims, err := g.o.Verifier.Verify(raw)
	if err != nil {
		if !errors.Is(err, token.ErrExpired) && !errors.Is(err, token.ErrNotYet) {
			// Forged, tampered or foreign tokens count as failures;
			// expired ones are routine (clients then fetch a new one).
			g.o.Limiter.Fail(g.clientIP(r), "")
			g.logger(r).Warn("bearer token refused", "remote", g.clientIP(r), "reason", err.Error())
		}
		return caller{}, err
	}
	if g.o.Mode == External {
		c := caller{tok: claims}
		if claims.Subject != "" {
			c.who = &auth.Principal{Account: claims.Subject, Source: "token"}
		}
		return c, nil
	}
	if claims.Berth == nil || claims.Berth.Kind != kind {
		return caller{}, errors.New("not a token of the right kind")
	}
	c := caller{tok: claims}
	if claims.Subject == "" {
		return c, nil
	}
	p := auth.Principal{Account: claims.Subject, Groups: claims.Berth.Groups, Source: claims.Berth.Source, Ref: claims.Berth.Ref}
	if p.Source == clientCertSource && g.o.ClientCertificates {
		// Nothing to re-check: the certificate was verified when the token
		// was issued, and the token expires before long.
		c.who = &p
		return c, nil
	}
	cur, err := g.o.Sources.Lookup(r.Context(), p)
	switch {
	case err == nil:
		c.who = cur
	case errors.Is(err, auth.ErrRevoked):
		g.logger(r).Info("token of a revoked account refused", "account", p.Account, "source", p.Source)
		return caller{}, errors.New("the account or credential this token was issued for is no longer valid")
	default:
		// The source cannot answer (directory down): the token stands
		// until it expires, with the groups it was issued with.
		g.logger(r).Warn("cannot re-check token account; using the token's claims", "account", p.Account, "source", p.Source, "err", err)
		c.who = &p
	}
	return c, nil
}

// clientCertSource names client-certificate logins in principals and tokens.
const clientCertSource = "clientcert"

// certPrincipal is the account of a verified client certificate, when
// those count as logins.
func (g *Gate) certPrincipal(r *http.Request) *auth.Principal {
	if !g.o.ClientCertificates {
		return nil
	}
	name, ok := tlsconf.ClientIdentity(r)
	if !ok || name == "" {
		return nil
	}
	return &auth.Principal{Account: name, Source: clientCertSource}
}

// login checks Basic credentials with brute-force protection.
func (g *Gate) login(r *http.Request, access []auth.Access, user, pass string) (*auth.Principal, error) {
	ip := g.clientIP(r)
	if user == "" || len(user) > maxUser || len(pass) > maxPassword || strings.ContainsAny(user, "\x00\r\n") {
		g.o.Limiter.Fail(ip, "")
		return nil, g.unauthorized(r, access, "", "invalid username or password")
	}
	d := g.o.Limiter.Check(ip, user)
	if d.RetryAfter > 0 {
		g.logger(r).Warn("login refused: too many failed attempts", "user", user, "remote", ip, "retry_after", d.RetryAfter.Round(time.Second))
		secs := int(math.Ceil(d.RetryAfter.Seconds()))
		return nil, &auth.Error{Status: http.StatusTooManyRequests, Code: "TOOMANYREQUESTS",
			Message: "too many failed login attempts; try again later",
			Header:  http.Header{"Retry-After": {strconv.Itoa(secs)}}}
	}
	if d.Delay > 0 {
		t := time.NewTimer(d.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return nil, r.Context().Err()
		}
	}
	p, err := g.o.Sources.Authenticate(r.Context(), user, pass)
	switch {
	case err == nil:
		g.o.Limiter.Succeed(ip, user)
		return p, nil
	case errors.Is(err, auth.ErrBadPassword), errors.Is(err, auth.ErrUnknownUser):
		g.o.Limiter.Fail(ip, user)
		g.logger(r).Warn("authentication failed", "user", user, "remote", ip)
		return nil, g.unauthorized(r, access, "", "invalid username or password")
	case errors.Is(err, context.Canceled):
		return nil, err
	default:
		g.logger(r).Error("authentication source failed", "user", user, "err", err)
		return nil, &auth.Error{Status: http.StatusServiceUnavailable, Code: "UNAVAILABLE",
			Message: "authentication is unavailable; try again later"}
	}
}

// unauthorized is a 401 with the challenge for this mode. code is the
// RFC 6750 error ("invalid_token", "insufficient_scope", ...) or "".
func (g *Gate) unauthorized(r *http.Request, access []auth.Access, code, msg string) *auth.Error {
	return &auth.Error{
		Status:    http.StatusUnauthorized,
		Code:      "UNAUTHORIZED",
		Message:   msg,
		Challenge: g.challenge(r, access, code),
		Detail:    access,
	}
}

func (g *Gate) challenge(r *http.Request, access []auth.Access, code string) string {
	if g.o.Mode == Basic {
		return `Basic realm=` + quote(g.o.Realm)
	}
	var b strings.Builder
	b.WriteString(`Bearer realm=` + quote(g.realm(r)) + `,service=` + quote(g.o.Service))
	if s := auth.Scope(access); s != "" {
		b.WriteString(`,scope=` + quote(s))
	}
	if code != "" && code != "invalid_request" {
		b.WriteString(`,error=` + quote(code))
	}
	return b.String()
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// realm is the token endpoint URL clients are sent to.
func (g *Gate) realm(r *http.Request) string {
	switch {
	case g.o.Mode == External && !g.o.AutoRedirect:
		return g.o.Realm
	case g.o.Mode == External:
		return forwarded.ExternalURL(r, "") + g.o.AutoRedirectPath
	case g.o.Realm != "":
		return g.o.Realm
	}
	prefix := "/" + strings.Trim(g.o.Prefix, "/")
	if prefix == "/" {
		prefix = ""
	}
	return forwarded.ExternalURL(r, g.o.Host) + prefix + g.o.TokenPath
}

// clientIP is the address failures are counted against: the peer, or,
// when the peer is a trusted proxy, the last untrusted address of
// X-Forwarded-For.
func (g *Gate) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(g.o.TrustedProxies) == 0 {
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !g.trusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !g.trusted(a) {
			return a.String()
		}
	}
	return host
}

func (g *Gate) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range g.o.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// identity is what the API sees of an authorized caller.
type identity struct {
	g *Gate
	c caller
}

func (g *Gate) identity(c caller) auth.Identity { return identity{g: g, c: c} }

func (i identity) Account() string {
	if i.c.who == nil {
		return ""
	}
	return i.c.who.Account
}

// Can answers for listings. With an external issuer only the token
// speaks: its explicit grants, or everything if it grants the catalog.
func (i identity) Can(repo, action string) bool {
	if i.g.o.Mode == External {
		if i.c.tok == nil {
			return false
		}
		return auth.Covers(i.c.tok.Access, []auth.Access{auth.Catalog}) ||
			auth.Covers(i.c.tok.Access, []auth.Access{auth.Repository(repo, action)})
	}
	return i.g.pol.Allows(i.c.who, repo, action)
}

// logger is the request's logger (with its request_id) if the server put
// one in the context.
func (g *Gate) logger(r *http.Request) *slog.Logger {
	return logctx.FromContextOr(r.Context(), g.log)
}
