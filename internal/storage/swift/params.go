package swift

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/berth-registry/berth/internal/storage/driverparams"
)

// Size limits.
const (
	// MinChunkSize is registry:2's smallest segment size.
	MinChunkSize = 1 << 20
	// MaxChunkSize is Swift's default max_file_size: no single object,
	// and so no segment, may be larger.
	MaxChunkSize = 5 << 30
	// DefaultChunkSize is registry:2's segment size.
	DefaultChunkSize = 20 << 20
)

// Params configures the driver. The fields are registry:2's
// storage.swift keys; FromMap reads them from a config's driver section.
type Params struct {
	Username string // required
	Password string // required (the API key for auth v1)
	AuthURL  string // required: .../auth/v1.0, .../v2.0 or .../v3

	Tenant         string // auth v2/v3 project (tenant) name
	TenantID       string // auth v2/v3 project (tenant) id
	Domain         string // auth v3 user domain name
	DomainID       string // auth v3 user domain id
	TenantDomain   string // auth v3 project domain name, when it differs from the user's
	TenantDomainID string // auth v3 project domain id, when it differs from the user's
	TrustID        string // auth v3 trust id
	Region         string // region of the object-store endpoint (auth v2/v3); the first one if empty
	AuthVersion    int    // 1, 2 or 3; 0 detects it from AuthURL
	EndpointType   string // "public" (default), "internal" or "admin" (auth v2/v3)

	InsecureSkipVerify bool // do not verify the server's TLS certificate

	Container string // required; created if missing
	Prefix    string // object name prefix, as in registry:2 (not "rootdirectory")

	// ChunkSize is the size of the segments a Writer stores, between
	// MinChunkSize and MaxChunkSize. A Writer holds up to two of them in
	// memory.
	ChunkSize int64

	// SecretKey is the temp URL key URLFor signs with. When empty, the
	// key already set on the container or account is used, and if there
	// is none a random one is set, as registry:2 does.
	SecretKey string
	// AccessKey, on HP Helion-style clusters, makes temp URL signatures
	// "tenantid:accesskey:signature".
	AccessKey string

	// TempURLContainerKey and TempURLMethods stand in for what the
	// cluster's /info endpoint reports when it cannot be read: whether
	// the temp URL key lives on the container (else the account), and
	// which methods temp URLs allow.
	TempURLContainerKey bool
	TempURLMethods      []string

	// Warnings lists accepted keys that have no effect (FromMap fills it),
	// for the caller to log.
	Warnings []string
}

// DefaultParams returns registry:2's defaults.
func DefaultParams() Params {
	return Params{ChunkSize: DefaultChunkSize}
}

func (p Params) withDefaults() Params {
	if p.ChunkSize == 0 {
		p.ChunkSize = DefaultChunkSize
	}
	return p
}

var endpointTypes = []string{"", "public", "internal", "admin"}

// validate checks what registry:2 checks, and the ranges it leaves to the
// server.
func (p Params) validate() error {
	switch {
	case p.Username == "":
		return fmt.Errorf("swift: no username parameter provided")
	case p.Password == "":
		return fmt.Errorf("swift: no password parameter provided")
	case p.AuthURL == "":
		return fmt.Errorf("swift: no authurl parameter provided")
	case p.Container == "":
		return fmt.Errorf("swift: no container parameter provided")
	}
	if strings.Contains(p.Container, "/") {
		return fmt.Errorf("swift: the container parameter %q must not contain '/'", p.Container)
	}
	if p.ChunkSize < MinChunkSize || p.ChunkSize > MaxChunkSize {
		return fmt.Errorf("swift: the chunksize parameter should be a number between %d and %d (inclusive), not %d", MinChunkSize, MaxChunkSize, p.ChunkSize)
	}
	if p.AuthVersion < 0 || p.AuthVersion > 3 {
		return fmt.Errorf("swift: the authversion parameter must be 1, 2 or 3 (or 0 to detect it), not %d", p.AuthVersion)
	}
	if !slices.Contains(endpointTypes, p.EndpointType) {
		return fmt.Errorf("swift: the endpointtype parameter must be public, internal or admin, not %q", p.EndpointType)
	}
	return nil
}

// knownKeys are registry:2's storage.swift keys.
var knownKeys = []string{
	"username", "password", "authurl",
	"tenant", "tenantid", "domain", "domainid", "tenantdomain", "tenantdomainid", "trustid",
	"region", "authversion", "endpointtype", "insecureskipverify",
	"container", "prefix", "chunksize",
	"secretkey", "accesskey", "tempurlcontainerkey", "tempurlmethods",
}

// ignoredKeys are accepted for compatibility and have no effect.
// registry:2's own configuration reference shows "rootdirectory" under
// swift, but its Swift driver ignores it (the key is "prefix"); berth
// ignores it too, so that it finds the objects registry:2 wrote.
var ignoredKeys = map[string]string{
	"rootdirectory": "storage.swift.rootdirectory has no effect (registry:2 ignores it too); the object name prefix is storage.swift.prefix",
}

// FromMap parses the parameters of a registry:2 config's storage.swift
// section (or the equivalent REGISTRY_STORAGE_SWIFT_* variables): values
// may be strings, booleans or numbers, and numbers and booleans may also be
// strings. tempurlmethods is a list or a comma-separated string. Missing
// keys take registry:2's defaults. Unknown keys are errors.
func FromMap(m map[string]any) (Params, error) {
	p := DefaultParams()
	in := driverparams.New(m)
	if unknown := in.Unknown(knownKeys, slices.Collect(maps.Keys(ignoredKeys))); len(unknown) > 0 {
		return Params{}, fmt.Errorf("swift: unknown parameter(s) %s", strings.Join(unknown, ", "))
	}
	for k, msg := range ignoredKeys {
		if in.Get(k) != nil {
			p.Warnings = append(p.Warnings, msg)
		}
	}

	in.String("username", &p.Username)
	in.String("password", &p.Password)
	in.String("authurl", &p.AuthURL)
	in.String("tenant", &p.Tenant)
	in.String("tenantid", &p.TenantID)
	in.String("domain", &p.Domain)
	in.String("domainid", &p.DomainID)
	in.String("tenantdomain", &p.TenantDomain)
	in.String("tenantdomainid", &p.TenantDomainID)
	in.String("trustid", &p.TrustID)
	in.String("region", &p.Region)
	authVersion := int64(p.AuthVersion)
	in.Int("authversion", &authVersion)
	in.String("endpointtype", &p.EndpointType)
	p.EndpointType = strings.ToLower(strings.TrimSpace(p.EndpointType))
	in.Bool("insecureskipverify", &p.InsecureSkipVerify)
	in.String("container", &p.Container)
	in.String("prefix", &p.Prefix)
	in.Int("chunksize", &p.ChunkSize)
	in.String("secretkey", &p.SecretKey)
	in.String("accesskey", &p.AccessKey)
	in.Bool("tempurlcontainerkey", &p.TempURLContainerKey)
	switch v := in.Get("tempurlmethods").(type) {
	case nil:
	case string:
		for _, s := range strings.Split(v, ",") {
			if s = strings.ToUpper(strings.TrimSpace(s)); s != "" {
				p.TempURLMethods = append(p.TempURLMethods, s)
			}
		}
	case []string:
		for _, s := range v {
			p.TempURLMethods = append(p.TempURLMethods, strings.ToUpper(strings.TrimSpace(s)))
		}
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				in.Errorf("the tempurlmethods parameter should be a list of strings, not hold %T", e)
				break
			}
			p.TempURLMethods = append(p.TempURLMethods, strings.ToUpper(strings.TrimSpace(s)))
		}
	default:
		in.Errorf("the tempurlmethods parameter should be a list of strings, not %T", v)
	}

	if errs := in.Errors(); len(errs) > 0 {
		sort.Strings(errs)
		return Params{}, fmt.Errorf("swift: %s", strings.Join(errs, "; "))
	}
	if authVersion < 0 || authVersion > 3 {
		return Params{}, fmt.Errorf("swift: the authversion parameter must be 1, 2 or 3 (or 0 to detect it), not %d", authVersion)
	}
	p.AuthVersion = int(authVersion)
	if err := p.validate(); err != nil {
		return Params{}, err
	}
	return p, nil
}
