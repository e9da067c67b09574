package config

import "time"

// BerthAuth is berth.auth: berth's own access control, beside registry:2's
// auth section (whose htpasswd file keeps meaning "any valid user may do
// anything" unless a policy is given). See docs/access-control.md.
type BerthAuth struct {
	// HTPasswd files, each naming the group its users belong to.
	HTPasswd []BerthHTPasswd `yaml:"htpasswd,omitempty"`
	// LDAP authenticates by binding to a directory.
	LDAP *BerthLDAP `yaml:"ldap,omitempty"`
	// Tokens is the store of long-lived robot tokens
	// (berth token create/list/revoke).
	Tokens BerthTokens `yaml:"tokens,omitempty"`
	// Policy rules, first match wins; none matching denies. Without
	// rules, any authenticated user may do anything.
	Policy []PolicyRule `yaml:"policy,omitempty"`
	// TokenService runs berth's own Docker token service. It is turned on
	// by this section, or automatically when the policy grants anonymous
	// callers anything (Basic auth cannot give docker anonymous pulls).
	TokenService *BerthTokenService `yaml:"tokenservice,omitempty"`
	// RateLimit protects logins against guessing.
	RateLimit BerthRateLimit `yaml:"ratelimit,omitempty"`
	// ClientCertificates makes a verified TLS client certificate (see
	// http.tls.clientcas) a login: its subject common name is the account
	// that policy rules match, for requests and at the token endpoint that
	// carry no other credentials.
	ClientCertificates bool `yaml:"clientcertificates,omitempty"`
}

// BerthHTPasswd is one berth.auth.htpasswd entry.
type BerthHTPasswd struct {
	// Group the file's users belong to (may be empty).
	Group string `yaml:"group"`
	// Path of the htpasswd file (bcrypt entries), re-read when it changes.
	Path string `yaml:"path"`
}

// BerthLDAP is berth.auth.ldap.
type BerthLDAP struct {
	URL                string        `yaml:"url"`
	StartTLS           bool          `yaml:"starttls,omitempty"`
	CAFile             string        `yaml:"cafile,omitempty"`
	InsecureSkipVerify bool          `yaml:"insecureskipverify,omitempty"`
	BindDN             string        `yaml:"binddn,omitempty"`
	BindPassword       string        `yaml:"bindpassword,omitempty"`
	BindPasswordFile   string        `yaml:"bindpasswordfile,omitempty"`
	UserDN             string        `yaml:"userdn,omitempty"`
	UserBase           string        `yaml:"userbase,omitempty"`
	UserFilter         string        `yaml:"userfilter,omitempty"`
	GroupBase          string        `yaml:"groupbase,omitempty"`
	GroupFilter        string        `yaml:"groupfilter,omitempty"`
	GroupAttribute     string        `yaml:"groupattribute,omitempty"`
	Timeout            time.Duration `yaml:"timeout,omitempty"`
	CacheTTL           time.Duration `yaml:"cachettl,omitempty"`
}

// BerthTokens is berth.auth.tokens.
type BerthTokens struct {
	// Path of the token store. Default: berth/tokens.json in the
	// filesystem root directory, berth-tokens.json in the working
	// directory with other drivers; none with inmemory storage.
	Path string `yaml:"path,omitempty"`
	// Disabled turns robot tokens off.
	Disabled bool `yaml:"disabled,omitempty"`
}

// PolicyRule is one berth.auth.policy entry.
type PolicyRule struct {
	// Account patterns ("*": any authenticated account; /regexp/).
	Account []string `yaml:"account,omitempty"`
	// Group patterns.
	Group []string `yaml:"group,omitempty"`
	// Anonymous: the rule is for callers without credentials.
	Anonymous bool `yaml:"anonymous,omitempty"`
	// Repository patterns (default all), with ${account} and ${group}.
	Repository []string `yaml:"repository,omitempty"`
	// Actions granted: pull, push, delete, "*". Empty denies.
	Actions []string `yaml:"actions"`
	// Comment is free text.
	Comment string `yaml:"comment,omitempty"`
}

// BerthTokenService is berth.auth.tokenservice.
type BerthTokenService struct {
	// Realm overrides the token endpoint URL put in challenges (default:
	// derived from http.host, or the request's Host / X-Forwarded-*).
	Realm string `yaml:"realm,omitempty"`
	// Service names the registry in tokens (default "berth").
	Service string `yaml:"service,omitempty"`
	// Issuer of tokens (default "berth").
	Issuer string `yaml:"issuer,omitempty"`
	// Key is a PEM private key file (ECDSA, RSA or Ed25519). If it does
	// not exist it is generated. Default: berth/token-key.pem in the
	// filesystem root directory.
	Key string `yaml:"key,omitempty"`
	// Expiry of access tokens (default 5m, at least 1m).
	Expiry time.Duration `yaml:"expiry,omitempty"`
	// RefreshExpiry of refresh tokens, which `docker login` keeps instead
	// of the password (default 720h).
	RefreshExpiry time.Duration `yaml:"refreshexpiry,omitempty"`
}

// BerthRateLimit is berth.auth.ratelimit.
type BerthRateLimit struct {
	Disabled bool `yaml:"disabled,omitempty"`
	// SlowAfter failures, answers are delayed (Delay doubling to MaxDelay).
	SlowAfter int           `yaml:"slowafter,omitempty"`
	Delay     time.Duration `yaml:"delay,omitempty"`
	MaxDelay  time.Duration `yaml:"maxdelay,omitempty"`
	// MaxFailures per address, AccountMaxFailures per account, within
	// Window, lock out for Lockout (429 TOOMANYREQUESTS).
	MaxFailures        int           `yaml:"maxfailures,omitempty"`
	AccountMaxFailures int           `yaml:"accountmaxfailures,omitempty"`
	Window             time.Duration `yaml:"window,omitempty"`
	Lockout            time.Duration `yaml:"lockout,omitempty"`
	// TrustedProxies (addresses or CIDR prefixes) whose X-Forwarded-For
	// names the client.
	TrustedProxies []string `yaml:"trustedproxies,omitempty"`
}

// Enabled reports whether berth.auth configures anything.
func (a *BerthAuth) Enabled() bool {
	return len(a.HTPasswd) > 0 || a.LDAP != nil || len(a.Policy) > 0 || a.TokenService != nil
}
