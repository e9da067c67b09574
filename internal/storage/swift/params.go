package swift

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
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
	var unknown []string
	for k := range m {
		lk := strings.ToLower(k)
		if _, ok := ignoredKeys[lk]; ok {
			continue
		}
		if !slices.Contains(knownKeys, lk) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Params{}, fmt.Errorf("swift: unknown parameter(s) %s", strings.Join(unknown, ", "))
	}
	get := func(key string) any {
		for k, v := range m {
			if strings.ToLower(k) == key {
				return v
			}
		}
		return nil
	}
	for k, msg := range ignoredKeys {
		if get(k) != nil {
			p.Warnings = append(p.Warnings, msg)
		}
	}

	var errs []string
	str := func(key string, dst *string) {
		switch v := get(key).(type) {
		case nil:
		case string:
			*dst = v
		case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
			*dst = fmt.Sprint(v)
		default:
			errs = append(errs, fmt.Sprintf("the %s parameter should be a string, not %T", key, v))
		}
	}
	boolean := func(key string, dst *bool) {
		switch v := get(key).(type) {
		case nil:
		case bool:
			*dst = v
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				errs = append(errs, fmt.Sprintf("the %s parameter should be a boolean, not %q", key, v))
				return
			}
			*dst = b
		default:
			errs = append(errs, fmt.Sprintf("the %s parameter should be a boolean, not %T", key, v))
		}
	}
	integer := func(key string, dst *int64) {
		v := get(key)
		if v == nil {
			return
		}
		n, err := toInt64(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("the %s parameter must be an integer: %v", key, err))
			return
		}
		*dst = n
	}

	str("username", &p.Username)
	str("password", &p.Password)
	str("authurl", &p.AuthURL)
	str("tenant", &p.Tenant)
	str("tenantid", &p.TenantID)
	str("domain", &p.Domain)
	str("domainid", &p.DomainID)
	str("tenantdomain", &p.TenantDomain)
	str("tenantdomainid", &p.TenantDomainID)
	str("trustid", &p.TrustID)
	str("region", &p.Region)
	authVersion := int64(p.AuthVersion)
	integer("authversion", &authVersion)
	str("endpointtype", &p.EndpointType)
	p.EndpointType = strings.ToLower(strings.TrimSpace(p.EndpointType))
	boolean("insecureskipverify", &p.InsecureSkipVerify)
	str("container", &p.Container)
	str("prefix", &p.Prefix)
	integer("chunksize", &p.ChunkSize)
	str("secretkey", &p.SecretKey)
	str("accesskey", &p.AccessKey)
	boolean("tempurlcontainerkey", &p.TempURLContainerKey)
	switch v := get("tempurlmethods").(type) {
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
				errs = append(errs, fmt.Sprintf("the tempurlmethods parameter should be a list of strings, not hold %T", e))
				break
			}
			p.TempURLMethods = append(p.TempURLMethods, strings.ToUpper(strings.TrimSpace(s)))
		}
	default:
		errs = append(errs, fmt.Sprintf("the tempurlmethods parameter should be a list of strings, not %T", v))
	}

	if len(errs) > 0 {
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

// toInt64 accepts the integer forms a YAML or JSON decoder or an
// environment variable produces.
func toInt64(v any) (int64, error) {
	switch v := v.(type) {
	case int:
		return int64(v), nil
	case int8:
		return int64(v), nil
	case int16:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case int64:
		return v, nil
	case uint:
		return toInt64(uint64(v))
	case uint8:
		return int64(v), nil
	case uint16:
		return int64(v), nil
	case uint32:
		return int64(v), nil
	case uint64:
		if v > math.MaxInt64 {
			return 0, fmt.Errorf("%d is too large", v)
		}
		return int64(v), nil
	case float32:
		return toInt64(float64(v))
	case float64:
		if v != math.Trunc(v) || v > math.MaxInt64 || v < math.MinInt64 {
			return 0, fmt.Errorf("%v is not an integer", v)
		}
		return int64(v), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 0, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", v)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("%v (%T) is not an integer", v, v)
	}
}
