// Package setup builds berth's access control from the configuration:
// registry:2's auth section (htpasswd, token) and berth's own berth.auth
// (htpasswd groups, LDAP, robot tokens, policy, token service, rate
// limits).
package setup

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/gate"
	"github.com/berth-registry/berth/internal/auth/htpasswd"
	"github.com/berth-registry/berth/internal/auth/ldap"
	"github.com/berth-registry/berth/internal/auth/policy"
	"github.com/berth-registry/berth/internal/auth/ratelimit"
	"github.com/berth-registry/berth/internal/auth/robot"
	"github.com/berth-registry/berth/internal/auth/token"
	"github.com/berth-registry/berth/internal/config"
)

// Defaults of berth's token service.
const (
	DefaultService = "berth"
	DefaultIssuer  = "berth"
	// ExternalLeeway is the clock skew allowed with an external issuer.
	ExternalLeeway = 10 * time.Second
)

// Result is the access control of a configuration.
type Result struct {
	// Authorizer checks every API request.
	Authorizer auth.Authorizer
	// Handlers are served beside the API, by path below http.prefix (the
	// token endpoint).
	Handlers map[string]http.Handler
	// Mode describes the setup for the start-up log.
	Mode string
}

// FromConfig builds the access control. Without any auth configuration
// everyone may do everything, as with registry:2.
func FromConfig(cfg *config.Config, log *slog.Logger) (*Result, error) {
	return build(cfg, log, false)
}

// Check reports what FromConfig would refuse (unreadable files, bad rules,
// bad keys) without changing anything: no signing key is generated.
func Check(cfg *config.Config) error {
	_, err := build(cfg, slog.New(slog.DiscardHandler), true)
	return err
}

func build(cfg *config.Config, log *slog.Logger, dryRun bool) (*Result, error) {
	if log == nil {
		log = slog.Default()
	}
	ba := &cfg.Berth.Auth
	if cfg.Auth.Silly != nil {
		return nil, errors.New("auth.silly is not supported by berth (it checks nothing); use auth.htpasswd or berth.auth")
	}
	if cfg.Auth.Token != nil {
		if ba.Enabled() {
			return nil, errors.New("auth.token hands authentication and access decisions to an external token issuer; berth.auth (htpasswd, ldap, policy, tokenservice) cannot be combined with it")
		}
		return external(cfg, log)
	}
	if cfg.Auth.HTPasswd == nil && !ba.Enabled() {
		return &Result{Authorizer: auth.AllowAll{}, Mode: "none (everyone may do everything)"}, nil
	}

	var pol *policy.Policy
	if len(ba.Policy) > 0 {
		rules := make([]policy.Rule, len(ba.Policy))
		for i, r := range ba.Policy {
			rules[i] = policy.Rule{Account: r.Account, Group: r.Group, Anonymous: r.Anonymous, Repository: r.Repository, Actions: r.Actions}
		}
		var err error
		if pol, err = policy.New(rules); err != nil {
			return nil, fmt.Errorf("berth.auth.policy: %w", err)
		}
	}
	sources, err := buildSources(cfg, log)
	if err != nil {
		return nil, err
	}
	lim, proxies, err := buildLimiter(ba.RateLimit)
	if err != nil {
		return nil, err
	}
	if ba.ClientCertificates && (cfg.HTTP.TLS == nil || len(cfg.HTTP.TLS.ClientCAs) == 0) {
		return nil, errors.New("berth.auth.clientcertificates needs http.tls.clientcas: without it no client certificate is verified")
	}
	o := gate.Options{
		Sources:        sources,
		Policy:         pol,
		Limiter:        lim,
		TrustedProxies: proxies,
		Host:           cfg.HTTP.Host,
		Prefix:         cfg.HTTP.Prefix,
		Logger:         log,

		ClientCertificates: ba.ClientCertificates,
	}
	ts := ba.TokenService
	if ts == nil && pol != nil && pol.MayList(nil) {
		log.Info("auth: the policy lets anonymous callers in, so berth's token service is on (docker cannot pull anonymously from a Basic-auth registry)")
		ts = &config.BerthTokenService{}
	}
	if ts == nil {
		o.Mode = gate.Basic
		o.Realm = gate.DefaultBasicRealm
		if cfg.Auth.HTPasswd != nil && cfg.Auth.HTPasswd.Realm != "" {
			o.Realm = cfg.Auth.HTPasswd.Realm
		}
	} else {
		o.Mode = gate.Token
		o.Service = or(ts.Service, DefaultService)
		o.Realm = ts.Realm
		o.Expiry, o.RefreshExpiry = ts.Expiry, ts.RefreshExpiry
		key, err := signingKey(cfg, ts, log, dryRun)
		if err != nil {
			return nil, err
		}
		if o.Signer, err = token.NewSigner(key, or(ts.Issuer, DefaultIssuer)); err != nil {
			return nil, fmt.Errorf("berth.auth.tokenservice: %w", err)
		}
		o.Verifier, err = token.NewVerifier(token.VerifierOptions{
			Issuer:  o.Signer.Issuer(),
			Service: o.Service,
			Keys:    map[string]crypto.PublicKey{o.Signer.KeyID(): o.Signer.PublicKey()},
		})
		if err != nil {
			return nil, fmt.Errorf("berth.auth.tokenservice: %w", err)
		}
	}
	g, err := gate.New(o)
	if err != nil {
		return nil, err
	}
	res := &Result{Authorizer: g}
	var names []string
	for _, s := range sources {
		names = append(names, s.Name())
	}
	policyDesc := "any authenticated user may do anything"
	if pol != nil {
		policyDesc = fmt.Sprintf("%d policy rules", len(ba.Policy))
	}
	if o.Mode == gate.Token {
		res.Handlers = map[string]http.Handler{g.TokenPath(): g.TokenHandler()}
		res.Mode = fmt.Sprintf("token service (service %q, endpoint %s), sources %s, %s", o.Service, g.TokenPath(), strings.Join(names, ", "), policyDesc)
	} else {
		res.Mode = fmt.Sprintf("basic (realm %q), sources %s, %s", o.Realm, strings.Join(names, ", "), policyDesc)
	}
	return res, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TokenStorePath is the robot token store of cfg ("" if none).
func TokenStorePath(cfg *config.Config) string {
	t := cfg.Berth.Auth.Tokens
	switch {
	case t.Disabled:
		return ""
	case t.Path != "":
		return t.Path
	case cfg.Storage.Filesystem != nil:
		return filepath.Join(cfg.Storage.Filesystem.RootDirectory, "berth", "tokens.json")
	case cfg.Storage.InMemory != nil:
		return ""
	}
	return "berth-tokens.json"
}

// buildSources: robot tokens first (their secrets are recognisable, and
// checking them is cheap), then htpasswd files, then LDAP.
func buildSources(cfg *config.Config, log *slog.Logger) (auth.Chain, error) {
	ba := &cfg.Berth.Auth
	var chain auth.Chain
	if p := TokenStorePath(cfg); p != "" {
		st, err := robot.Open(p, robot.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("berth.auth.tokens: %w", err)
		}
		chain = append(chain, st)
	}
	var files []htpasswd.FileSpec
	if h := cfg.Auth.HTPasswd; h != nil {
		files = append(files, htpasswd.FileSpec{Path: h.Path})
	}
	for i, h := range ba.HTPasswd {
		if h.Path == "" {
			return nil, fmt.Errorf("berth.auth.htpasswd[%d].path is required", i)
		}
		files = append(files, htpasswd.FileSpec{Path: h.Path, Group: h.Group})
	}
	if len(files) > 0 {
		set, err := htpasswd.New(files, htpasswd.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("htpasswd: %w", err)
		}
		chain = append(chain, set)
	}
	if l := ba.LDAP; l != nil {
		pw := l.BindPassword
		if l.BindPasswordFile != "" {
			if pw != "" {
				return nil, errors.New("berth.auth.ldap: set bindpassword or bindpasswordfile, not both")
			}
			b, err := os.ReadFile(l.BindPasswordFile)
			if err != nil {
				return nil, fmt.Errorf("berth.auth.ldap.bindpasswordfile: %w", err)
			}
			pw = strings.TrimRight(string(b), "\r\n")
		}
		src, err := ldap.New(ldap.Options{
			URL: l.URL, StartTLS: l.StartTLS, CAFile: l.CAFile, InsecureSkipVerify: l.InsecureSkipVerify,
			BindDN: l.BindDN, BindPassword: pw, UserDN: l.UserDN, UserBase: l.UserBase, UserFilter: l.UserFilter,
			GroupBase: l.GroupBase, GroupFilter: l.GroupFilter, GroupAttribute: l.GroupAttribute,
			Timeout: l.Timeout, CacheTTL: l.CacheTTL, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("berth.auth.%w", err)
		}
		chain = append(chain, src)
	}
	return chain, nil
}

func buildLimiter(rl config.BerthRateLimit) (*ratelimit.Limiter, []netip.Prefix, error) {
	var proxies []netip.Prefix
	for _, s := range rl.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, nil, fmt.Errorf("berth.auth.ratelimit.trustedproxies: %q is neither an address nor a CIDR prefix", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		proxies = append(proxies, p.Masked())
	}
	if rl.Disabled {
		return nil, proxies, nil
	}
	return ratelimit.New(ratelimit.Options{
		SlowAfter: rl.SlowAfter, MaxFailures: rl.MaxFailures, AccountMaxFailures: rl.AccountMaxFailures,
		Window: rl.Window, Lockout: rl.Lockout, Delay: rl.Delay, MaxDelay: rl.MaxDelay,
	}), proxies, nil
}

// signingKey loads the token service key, generating and persisting one
// when the file does not exist (in memory only with inmemory storage and
// no key configured).
func signingKey(cfg *config.Config, ts *config.BerthTokenService, log *slog.Logger, dryRun bool) (crypto.Signer, error) {
	path := ts.Key
	if path == "" {
		switch {
		case cfg.Storage.Filesystem != nil:
			path = filepath.Join(cfg.Storage.Filesystem.RootDirectory, "berth", "token-key.pem")
		case cfg.Storage.InMemory != nil:
			log.Info("auth: token signing key kept in memory (inmemory storage, no berth.auth.tokenservice.key)")
			return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		default:
			path = "berth-token-key.pem"
		}
	}
	if dryRun {
		data, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			// Generated at start-up; check only that it could be written.
			return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		if err != nil {
			return nil, fmt.Errorf("berth.auth.tokenservice.key: %w", err)
		}
		k, err := token.ParseKey(data)
		if err != nil {
			return nil, fmt.Errorf("berth.auth.tokenservice.key %s: %w", path, err)
		}
		return k, nil
	}
	key, created, err := token.LoadOrCreateKey(path)
	if err != nil {
		return nil, fmt.Errorf("berth.auth.tokenservice.key: %w", err)
	}
	if created {
		log.Info("auth: generated a token signing key", "path", path)
	}
	return key, nil
}

// external verifies tokens of an external issuer (registry:2's auth.token).
func external(cfg *config.Config, log *slog.Logger) (*Result, error) {
	t := cfg.Auth.Token
	ver, err := token.NewVerifier(token.VerifierOptions{
		Issuer:         t.Issuer,
		Service:        t.Service,
		RootCertBundle: t.RootCertBundle,
		JWKS:           t.JWKS,
		Algorithms:     t.SigningAlgorithms,
		// The issuer's clock may differ a little from ours.
		Leeway: ExternalLeeway,
	})
	if err != nil {
		return nil, fmt.Errorf("auth.token: %w", err)
	}
	g, err := gate.New(gate.Options{
		Mode:             gate.External,
		Realm:            t.Realm,
		Service:          t.Service,
		Verifier:         ver,
		AutoRedirect:     t.AutoRedirect,
		AutoRedirectPath: t.AutoRedirectPath,
		Logger:           log,
	})
	if err != nil {
		return nil, fmt.Errorf("auth.token: %w", err)
	}
	return &Result{Authorizer: g, Mode: fmt.Sprintf("external tokens (issuer %q, service %q, realm %q)", t.Issuer, t.Service, t.Realm)}, nil
}
