package config

import (
	"path/filepath"
	"time"
)

// Config is berth's configuration. Its shape and key names are those of
// distribution (registry:2) so that an existing config.yml loads unchanged;
// berth's own settings live under Berth (the top-level key "berth").
//
// Every struct field is tagged with its YAML key. Durations are
// time.Duration (written "10s", or an integer number of nanoseconds as
// registry:2 does). Sections that may be absent and whose presence matters
// (storage drivers, auth providers, optional subsystems) are pointers.
type Config struct {
	// Version of the configuration format. Optional; "0.1" if given.
	Version string `yaml:"version"`

	Log Log `yaml:"log"`
	// Loglevel is distribution's deprecated top-level log level. If log.level
	// is not set, its value is used for log.level (with a warning).
	Loglevel string `yaml:"loglevel,omitempty"`

	Storage       Storage        `yaml:"storage"`
	Auth          Auth           `yaml:"auth,omitempty"`
	Middleware    *Middleware    `yaml:"middleware,omitempty"`
	Reporting     *Reporting     `yaml:"reporting,omitempty"`
	HTTP          HTTP           `yaml:"http"`
	Notifications *Notifications `yaml:"notifications,omitempty"`
	Redis         *Redis         `yaml:"redis,omitempty"`
	Health        *Health        `yaml:"health,omitempty"`
	Proxy         *Proxy         `yaml:"proxy,omitempty"`
	Catalog       *Catalog       `yaml:"catalog,omitempty"`
	Tags          *TagsConfig    `yaml:"tags,omitempty"`
	Validation    *Validation    `yaml:"validation,omitempty"`
	Compatibility *Compatibility `yaml:"compatibility,omitempty"`
	Policy        *Policy        `yaml:"policy,omitempty"`

	// Berth holds settings that exist only in berth. registry:2 has no such
	// key, so a config using it is berth-only.
	Berth Berth `yaml:"berth"`

	// Filled by Load.
	warnings      []string
	sources       map[string]string
	unimplemented []string
}

// Log configures logging (log.*).
type Log struct {
	AccessLog AccessLog `yaml:"accesslog,omitempty"`
	// Level is one of error, warn, info, debug. Default info.
	Level string `yaml:"level"`
	// Formatter is one of text, json, logstash. Default text.
	Formatter string `yaml:"formatter"`
	// Fields are added to every log line.
	Fields map[string]any `yaml:"fields,omitempty"`
	// Hooks (distribution's mail hook). Parsed, not implemented.
	Hooks []LogHook `yaml:"hooks,omitempty"`
	// ReportCaller (distribution 3). Parsed, not implemented.
	ReportCaller bool `yaml:"reportcaller,omitempty"`
}

// AccessLog is log.accesslog.
type AccessLog struct {
	Disabled bool `yaml:"disabled"`
}

// LogHook is one entry of log.hooks.
type LogHook struct {
	Type     string     `yaml:"type,omitempty"`
	Disabled bool       `yaml:"disabled,omitempty"`
	Levels   []string   `yaml:"levels,omitempty"`
	Options  Parameters `yaml:"options,omitempty"`
}

// Parameters is a free-form map, used where distribution passes options
// through untyped (unsupported storage drivers, middleware options, ...).
type Parameters map[string]any

// Storage is the storage section: exactly one driver sub-section plus the
// driver-independent keys delete, maintenance, cache, redirect and tag.
type Storage struct {
	Filesystem *Filesystem `yaml:"filesystem,omitempty"`
	InMemory   *InMemory   `yaml:"inmemory,omitempty"`
	S3         *S3         `yaml:"s3,omitempty"`
	Swift      *Swift      `yaml:"swift,omitempty"`
	// Azure, GCS and OSS are parsed (so the error can say what it is) but
	// are not supported by berth: validation rejects them.
	Azure Parameters `yaml:"azure,omitempty"`
	GCS   Parameters `yaml:"gcs,omitempty"`
	OSS   Parameters `yaml:"oss,omitempty"`

	Delete      Delete       `yaml:"delete"`
	Maintenance Maintenance  `yaml:"maintenance"`
	Cache       StorageCache `yaml:"cache,omitempty"`
	Redirect    Redirect     `yaml:"redirect,omitempty"`
	Tag         StorageTag   `yaml:"tag,omitempty"`
}

// Driver returns the name of the configured storage driver ("filesystem",
// "inmemory", "s3", "swift", "azure", "gcs", "oss"), or "" if none is set.
// After a successful Load exactly one is set.
func (s *Storage) Driver() string {
	if n := s.drivers(); len(n) == 1 {
		return n[0]
	}
	return ""
}

func (s *Storage) drivers() []string {
	var n []string
	if s.Filesystem != nil {
		n = append(n, "filesystem")
	}
	if s.InMemory != nil {
		n = append(n, "inmemory")
	}
	if s.S3 != nil {
		n = append(n, "s3")
	}
	if s.Swift != nil {
		n = append(n, "swift")
	}
	if s.Azure != nil {
		n = append(n, "azure")
	}
	if s.GCS != nil {
		n = append(n, "gcs")
	}
	if s.OSS != nil {
		n = append(n, "oss")
	}
	return n
}

// storageDrivers are the keys of the storage section that name a driver;
// every other key of the section is driver-independent.
var storageDrivers = []string{"filesystem", "inmemory", "s3", "swift", "azure", "gcs", "oss"}

// Filesystem is storage.filesystem.
type Filesystem struct {
	// RootDirectory holds the docker/registry/v2 tree. Default "./data".
	RootDirectory string `yaml:"rootdirectory"`
	// MaxThreads bounds concurrent filesystem operations. Default 100,
	// minimum 25 (as in registry:2).
	MaxThreads int `yaml:"maxthreads"`
}

// InMemory is storage.inmemory; it takes no parameters.
type InMemory struct{}

// S3 is storage.s3.
type S3 struct {
	AccessKey                   string `yaml:"accesskey,omitempty"`
	SecretKey                   string `yaml:"secretkey,omitempty"`
	SessionToken                string `yaml:"sessiontoken,omitempty"`
	Region                      string `yaml:"region,omitempty"`
	RegionEndpoint              string `yaml:"regionendpoint,omitempty"`
	ForcePathStyle              bool   `yaml:"forcepathstyle,omitempty"`
	Bucket                      string `yaml:"bucket,omitempty"`
	Encrypt                     bool   `yaml:"encrypt,omitempty"`
	KeyID                       string `yaml:"keyid,omitempty"`
	Secure                      bool   `yaml:"secure"`                      // default true
	SkipVerify                  bool   `yaml:"skipverify"`                  // default false
	V4Auth                      bool   `yaml:"v4auth"`                      // default true
	ChunkSize                   int64  `yaml:"chunksize"`                   // default 10 MiB, min 5 MiB
	MultipartCopyChunkSize      int64  `yaml:"multipartcopychunksize"`      // default 32 MiB
	MultipartCopyMaxConcurrency int    `yaml:"multipartcopymaxconcurrency"` // default 100
	MultipartCopyThresholdSize  int64  `yaml:"multipartcopythresholdsize"`  // default 32 MiB
	RootDirectory               string `yaml:"rootdirectory,omitempty"`
	StorageClass                string `yaml:"storageclass,omitempty"` // default STANDARD
	UserAgent                   string `yaml:"useragent,omitempty"`
	UseDualStack                bool   `yaml:"usedualstack,omitempty"`
	UseFIPSEndpoint             bool   `yaml:"usefipsendpoint,omitempty"`
	Accelerate                  bool   `yaml:"accelerate,omitempty"`
	ObjectACL                   string `yaml:"objectacl,omitempty"` // default private
	LogLevel                    string `yaml:"loglevel,omitempty"`  // default off
	DisableKeepAlives           bool   `yaml:"disablekeepalives,omitempty"`
}

// Swift is storage.swift.
type Swift struct {
	Username            string   `yaml:"username,omitempty"`
	Password            string   `yaml:"password,omitempty"`
	AuthURL             string   `yaml:"authurl,omitempty"`
	Tenant              string   `yaml:"tenant,omitempty"`
	TenantID            string   `yaml:"tenantid,omitempty"`
	Domain              string   `yaml:"domain,omitempty"`
	DomainID            string   `yaml:"domainid,omitempty"`
	TenantDomain        string   `yaml:"tenantdomain,omitempty"`
	TenantDomainID      string   `yaml:"tenantdomainid,omitempty"`
	TrustID             string   `yaml:"trustid,omitempty"`
	InsecureSkipVerify  bool     `yaml:"insecureskipverify,omitempty"`
	Region              string   `yaml:"region,omitempty"`
	Container           string   `yaml:"container,omitempty"`
	Prefix              string   `yaml:"prefix,omitempty"`
	SecretKey           string   `yaml:"secretkey,omitempty"`
	AccessKey           string   `yaml:"accesskey,omitempty"`
	AuthVersion         int      `yaml:"authversion,omitempty"`
	EndpointType        string   `yaml:"endpointtype,omitempty"` // default public
	ChunkSize           int64    `yaml:"chunksize"`              // default 20 MiB
	TempURLContainerKey bool     `yaml:"tempurlcontainerkey,omitempty"`
	TempURLMethods      []string `yaml:"tempurlmethods,omitempty"`
	// RootDirectory appears in registry:2's configuration example for swift;
	// the swift driver itself uses Prefix.
	RootDirectory string `yaml:"rootdirectory,omitempty"`
}

// Delete is storage.delete.
type Delete struct {
	// Enabled allows deleting manifests and blobs by digest. Default false.
	Enabled bool `yaml:"enabled"`
}

// Maintenance is storage.maintenance.
type Maintenance struct {
	UploadPurging UploadPurging `yaml:"uploadpurging"`
	ReadOnly      ReadOnly      `yaml:"readonly"`
}

// UploadPurging is storage.maintenance.uploadpurging.
type UploadPurging struct {
	Enabled  bool          `yaml:"enabled"`  // default true
	Age      time.Duration `yaml:"age"`      // default 168h
	Interval time.Duration `yaml:"interval"` // default 24h
	DryRun   bool          `yaml:"dryrun"`
}

// ReadOnly is storage.maintenance.readonly.
type ReadOnly struct {
	// Enabled refuses every write (push, delete) with 405 / UNSUPPORTED.
	Enabled bool `yaml:"enabled"`
}

// StorageCache is storage.cache.
type StorageCache struct {
	BlobDescriptor     string `yaml:"blobdescriptor,omitempty"` // "", inmemory or redis
	BlobDescriptorSize int    `yaml:"blobdescriptorsize,omitempty"`
	// LayerInfo is the deprecated name of BlobDescriptor.
	LayerInfo string `yaml:"layerinfo,omitempty"`
}

// Redirect is storage.redirect.
type Redirect struct {
	Disable bool `yaml:"disable"`
}

// StorageTag is storage.tag (distribution 3).
type StorageTag struct {
	ConcurrencyLimit int `yaml:"concurrencylimit"`
}

// Auth selects at most one authentication provider.
type Auth struct {
	Silly    *SillyAuth    `yaml:"silly,omitempty"`
	Token    *TokenAuth    `yaml:"token,omitempty"`
	HTPasswd *HTPasswdAuth `yaml:"htpasswd,omitempty"`
}

// Provider returns the name of the configured auth provider, or "" for none.
func (a *Auth) Provider() string {
	if n := a.providers(); len(n) == 1 {
		return n[0]
	}
	return ""
}

func (a *Auth) providers() []string {
	var n []string
	if a.Silly != nil {
		n = append(n, "silly")
	}
	if a.Token != nil {
		n = append(n, "token")
	}
	if a.HTPasswd != nil {
		n = append(n, "htpasswd")
	}
	return n
}

// SillyAuth is auth.silly.
type SillyAuth struct {
	Realm   string `yaml:"realm"`
	Service string `yaml:"service"`
}

// TokenAuth is auth.token.
type TokenAuth struct {
	Realm             string   `yaml:"realm"`
	Service           string   `yaml:"service"`
	Issuer            string   `yaml:"issuer"`
	RootCertBundle    string   `yaml:"rootcertbundle,omitempty"`
	JWKS              string   `yaml:"jwks,omitempty"`
	AutoRedirect      bool     `yaml:"autoredirect,omitempty"`
	AutoRedirectPath  string   `yaml:"autoredirectpath,omitempty"`
	SigningAlgorithms []string `yaml:"signingalgorithms,omitempty"`
}

// HTPasswdAuth is auth.htpasswd: HTTP basic auth against an htpasswd file
// (bcrypt entries).
type HTPasswdAuth struct {
	// Realm of the Basic challenge. Default "Registry Realm".
	Realm string `yaml:"realm"`
	// Path of the htpasswd file. Required.
	Path string `yaml:"path"`
}

// Middleware is the middleware section (parsed, not implemented).
type Middleware struct {
	Registry   []MiddlewareEntry `yaml:"registry,omitempty"`
	Repository []MiddlewareEntry `yaml:"repository,omitempty"`
	Storage    []MiddlewareEntry `yaml:"storage,omitempty"`
}

// MiddlewareEntry is one middleware.
type MiddlewareEntry struct {
	Name     string     `yaml:"name"`
	Disabled bool       `yaml:"disabled,omitempty"`
	Options  Parameters `yaml:"options,omitempty"`
}

// Reporting is the reporting section (distribution 2; parsed, not implemented).
type Reporting struct {
	Bugsnag  *Bugsnag  `yaml:"bugsnag,omitempty"`
	NewRelic *NewRelic `yaml:"newrelic,omitempty"`
}

// Bugsnag is reporting.bugsnag.
type Bugsnag struct {
	APIKey       string `yaml:"apikey,omitempty"`
	ReleaseStage string `yaml:"releasestage,omitempty"`
	Endpoint     string `yaml:"endpoint,omitempty"`
}

// NewRelic is reporting.newrelic.
type NewRelic struct {
	LicenseKey string `yaml:"licensekey,omitempty"`
	Name       string `yaml:"name,omitempty"`
	Verbose    bool   `yaml:"verbose,omitempty"`
}

// HTTP is the http section.
type HTTP struct {
	// Addr to listen on. Default ":5000".
	Addr string `yaml:"addr"`
	// Net is the listener network: tcp (default), tcp4, tcp6 or unix.
	Net string `yaml:"net"`
	// Host is the externally reachable base URL used to build absolute URLs.
	Host string `yaml:"host,omitempty"`
	// Prefix is the path before /v2/ when not served at the root.
	Prefix string `yaml:"prefix,omitempty"`
	// Secret signs state handed to clients. Random per process if empty.
	Secret string `yaml:"secret,omitempty"`
	// RelativeURLs makes Location headers relative.
	RelativeURLs bool `yaml:"relativeurls,omitempty"`
	// DrainTimeout is how long to wait for in-flight requests after SIGTERM
	// or SIGINT. 0 (the default, as in registry:2) means do not wait: stop at
	// once.
	DrainTimeout time.Duration `yaml:"draintimeout"`
	TLS          *TLS          `yaml:"tls,omitempty"`
	Debug        *Debug        `yaml:"debug,omitempty"`
	// Headers are added to every response.
	Headers map[string][]string `yaml:"headers,omitempty"`
	HTTP2   HTTP2               `yaml:"http2,omitempty"`
	H2C     H2C                 `yaml:"h2c,omitempty"`
}

// TLS is http.tls.
type TLS struct {
	Certificate  string       `yaml:"certificate,omitempty"`
	Key          string       `yaml:"key,omitempty"`
	ClientCAs    []string     `yaml:"clientcas,omitempty"`
	ClientAuth   string       `yaml:"clientauth,omitempty"`
	MinimumTLS   string       `yaml:"minimumtls,omitempty"`
	CipherSuites []string     `yaml:"ciphersuites,omitempty"`
	LetsEncrypt  *LetsEncrypt `yaml:"letsencrypt,omitempty"`
}

// LetsEncrypt is http.tls.letsencrypt.
type LetsEncrypt struct {
	CacheFile    string   `yaml:"cachefile,omitempty"`
	Email        string   `yaml:"email,omitempty"`
	Hosts        []string `yaml:"hosts,omitempty"`
	DirectoryURL string   `yaml:"directoryurl,omitempty"`
}

// Debug is http.debug.
type Debug struct {
	Addr       string     `yaml:"addr,omitempty"`
	Prometheus Prometheus `yaml:"prometheus,omitempty"`
}

// Prometheus is http.debug.prometheus.
type Prometheus struct {
	Enabled bool   `yaml:"enabled,omitempty"`
	Path    string `yaml:"path,omitempty"` // default /metrics
}

// HTTP2 is http.http2.
type HTTP2 struct {
	Disabled bool `yaml:"disabled"`
}

// H2C is http.h2c (distribution 3).
type H2C struct {
	Enabled bool `yaml:"enabled"`
}

// Notifications is the notifications section.
type Notifications struct {
	// Events; distribution's Go field is EventConfig, so the environment
	// also accepts REGISTRY_NOTIFICATIONS_EVENTCONFIG_*.
	Events    Events     `yaml:"events,omitempty" env:"EVENTCONFIG"`
	Endpoints []Endpoint `yaml:"endpoints,omitempty"`
}

// Events is notifications.events.
type Events struct {
	IncludeReferences bool `yaml:"includereferences"`
}

// Endpoint is one notifications endpoint.
type Endpoint struct {
	Name              string              `yaml:"name"`
	Disabled          bool                `yaml:"disabled,omitempty"`
	URL               string              `yaml:"url"`
	Headers           map[string][]string `yaml:"headers,omitempty"`
	Timeout           time.Duration       `yaml:"timeout,omitempty"`
	Threshold         int                 `yaml:"threshold,omitempty"`
	Backoff           time.Duration       `yaml:"backoff,omitempty"`
	IgnoredMediaTypes []string            `yaml:"ignoredmediatypes,omitempty"`
	Ignore            Ignore              `yaml:"ignore,omitempty"`
}

// Ignore is notifications.endpoints[].ignore.
type Ignore struct {
	MediaTypes []string `yaml:"mediatypes,omitempty"`
	Actions    []string `yaml:"actions,omitempty"`
}

// Redis is the redis section: the keys of distribution 2 (addr, pool) and
// of distribution 3 (addrs and go-redis options) are both accepted.
type Redis struct {
	Addr             string        `yaml:"addr,omitempty"`
	Addrs            []string      `yaml:"addrs,omitempty"`
	ClientName       string        `yaml:"clientname,omitempty"`
	Protocol         int           `yaml:"protocol,omitempty"`
	Username         string        `yaml:"username,omitempty"`
	Password         string        `yaml:"password,omitempty"`
	SentinelUsername string        `yaml:"sentinelusername,omitempty"`
	SentinelPassword string        `yaml:"sentinelpassword,omitempty"`
	MasterName       string        `yaml:"mastername,omitempty"`
	DB               int           `yaml:"db,omitempty"`
	MaxRetries       int           `yaml:"maxretries,omitempty"`
	MinRetryBackoff  time.Duration `yaml:"minretrybackoff,omitempty"`
	MaxRetryBackoff  time.Duration `yaml:"maxretrybackoff,omitempty"`
	DialTimeout      time.Duration `yaml:"dialtimeout,omitempty"`
	ReadTimeout      time.Duration `yaml:"readtimeout,omitempty"`
	WriteTimeout     time.Duration `yaml:"writetimeout,omitempty"`
	PoolFIFO         bool          `yaml:"poolfifo,omitempty"`
	PoolSize         int           `yaml:"poolsize,omitempty"`
	PoolTimeout      time.Duration `yaml:"pooltimeout,omitempty"`
	MinIdleConns     int           `yaml:"minidleconns,omitempty"`
	MaxIdleConns     int           `yaml:"maxidleconns,omitempty"`
	MaxActiveConns   int           `yaml:"maxactiveconns,omitempty"`
	ConnMaxIdleTime  time.Duration `yaml:"connmaxidletime,omitempty"`
	ConnMaxLifetime  time.Duration `yaml:"connmaxlifetime,omitempty"`
	MaxRedirects     int           `yaml:"maxredirects,omitempty"`
	ReadOnly         bool          `yaml:"readonly,omitempty"`
	RouteByLatency   bool          `yaml:"routebylatency,omitempty"`
	RouteRandomly    bool          `yaml:"routerandomly,omitempty"`
	Pool             RedisPool     `yaml:"pool,omitempty"`
	TLS              RedisTLS      `yaml:"tls,omitempty"`
}

// RedisPool is redis.pool (distribution 2).
type RedisPool struct {
	MaxIdle     int           `yaml:"maxidle,omitempty"`
	MaxActive   int           `yaml:"maxactive,omitempty"`
	IdleTimeout time.Duration `yaml:"idletimeout,omitempty"`
}

// RedisTLS is redis.tls.
type RedisTLS struct {
	Enabled     bool     `yaml:"enabled,omitempty"`
	Certificate string   `yaml:"certificate,omitempty"`
	Key         string   `yaml:"key,omitempty"`
	RootCAs     []string `yaml:"rootcas,omitempty"`
	ClientCAs   []string `yaml:"clientcas,omitempty"`
}

// Health is the health section. distribution's Go fields for file, http and
// tcp are FileCheckers, HTTPCheckers and TCPCheckers; the environment
// accepts those spellings too.
type Health struct {
	StorageDriver StorageDriverCheck `yaml:"storagedriver,omitempty"`
	File          []FileCheck        `yaml:"file,omitempty" env:"FILECHECKERS"`
	HTTP          []HTTPCheck        `yaml:"http,omitempty" env:"HTTPCHECKERS"`
	TCP           []TCPCheck         `yaml:"tcp,omitempty" env:"TCPCHECKERS"`
}

// StorageDriverCheck is health.storagedriver.
type StorageDriverCheck struct {
	Enabled   bool          `yaml:"enabled"`
	Interval  time.Duration `yaml:"interval,omitempty"` // default 10s
	Threshold int           `yaml:"threshold,omitempty"`
}

// FileCheck is one health.file entry.
type FileCheck struct {
	File     string        `yaml:"file"`
	Interval time.Duration `yaml:"interval,omitempty"`
}

// HTTPCheck is one health.http entry.
type HTTPCheck struct {
	URI        string              `yaml:"uri"`
	Headers    map[string][]string `yaml:"headers,omitempty"`
	StatusCode int                 `yaml:"statuscode,omitempty"`
	Timeout    time.Duration       `yaml:"timeout,omitempty"`
	Interval   time.Duration       `yaml:"interval,omitempty"`
	Threshold  int                 `yaml:"threshold,omitempty"`
}

// TCPCheck is one health.tcp entry.
type TCPCheck struct {
	Addr      string        `yaml:"addr"`
	Timeout   time.Duration `yaml:"timeout,omitempty"`
	Interval  time.Duration `yaml:"interval,omitempty"`
	Threshold int           `yaml:"threshold,omitempty"`
}

// Proxy configures pull-through caching (proxy.*).
type Proxy struct {
	RemoteURL string        `yaml:"remoteurl"`
	Username  string        `yaml:"username,omitempty"`
	Password  string        `yaml:"password,omitempty"`
	TTL       time.Duration `yaml:"ttl"` // default 168h; 0 disables expiry
	Exec      *ProxyExec    `yaml:"exec,omitempty"`
}

// ProxyExec is proxy.exec (distribution 3).
type ProxyExec struct {
	Command string `yaml:"command"`
	// Lifetime: nil means run the command once; 0 means every request.
	Lifetime *time.Duration `yaml:"lifetime,omitempty"`
}

// Catalog is the catalog section (distribution 3).
type Catalog struct {
	MaxEntries int `yaml:"maxentries"`
}

// TagsConfig is the tags section (distribution 3).
type TagsConfig struct {
	MaxTags int `yaml:"maxtags"`
}

// Validation is the validation section.
type Validation struct {
	// Enabled is deprecated in distribution in favour of Disabled.
	Enabled   bool                `yaml:"enabled,omitempty"`
	Disabled  bool                `yaml:"disabled,omitempty"`
	Manifests ManifestsValidation `yaml:"manifests,omitempty"`
}

// ManifestsValidation is validation.manifests.
type ManifestsValidation struct {
	URLs    URLsValidation    `yaml:"urls,omitempty"`
	Indexes IndexesValidation `yaml:"indexes,omitempty"`
}

// URLsValidation is validation.manifests.urls.
type URLsValidation struct {
	Allow []string `yaml:"allow,omitempty"`
	Deny  []string `yaml:"deny,omitempty"`
}

// IndexesValidation is validation.manifests.indexes (distribution 3).
type IndexesValidation struct {
	Platforms    string     `yaml:"platforms,omitempty"`
	PlatformList []Platform `yaml:"platformlist,omitempty"`
}

// Platform is one validation.manifests.indexes.platformlist entry.
type Platform struct {
	Architecture string `yaml:"architecture"`
	OS           string `yaml:"os"`
}

// Compatibility is the compatibility section.
type Compatibility struct {
	Schema1 Schema1 `yaml:"schema1"`
}

// Schema1 is compatibility.schema1. distribution's Go field for
// signingkeyfile is TrustKey; the environment accepts both.
type Schema1 struct {
	SigningKeyFile string `yaml:"signingkeyfile,omitempty" env:"TRUSTKEY"`
	Enabled        bool   `yaml:"enabled"`
}

// Policy is distribution 2's policy section.
type Policy struct {
	Repository RepositoryPolicy `yaml:"repository"`
}

// RepositoryPolicy is policy.repository.
type RepositoryPolicy struct {
	Classes []string `yaml:"classes"`
}

// Berth holds berth's own settings (top-level key "berth").
type Berth struct {
	Auth      BerthAuth      `yaml:"auth,omitempty"`
	Manifests BerthManifests `yaml:"manifests"`
	Index     BerthIndex     `yaml:"index,omitempty"`
	TLS       BerthTLS       `yaml:"tls,omitempty"`
	UI        BerthUI        `yaml:"ui"`
}

// BerthUI is berth.ui: the read-only web UI.
type BerthUI struct {
	// Enabled serves the UI under <http.prefix>/ui/, authorized like the
	// API. Default true. Not omitempty: a false must survive a round trip
	// through Redacted, or it would read back as the default.
	Enabled bool `yaml:"enabled"`
}

// BerthManifests is berth.manifests.
type BerthManifests struct {
	// MaxSize is the largest manifest (or index) accepted on push, in bytes.
	// An integer, or a string with a unit ("4MiB", "512KiB"). Default 4 MiB.
	MaxSize Size `yaml:"maxsize"`
}

// BerthIndex is berth.index.
type BerthIndex struct {
	// Path of the embedded metadata index database. Empty means the default
	// chosen by IndexPath.
	Path string `yaml:"path,omitempty"`
	// Postgres keeps the index in PostgreSQL instead, shared by every
	// berth instance serving the same storage.
	Postgres *BerthPostgres `yaml:"postgres,omitempty"`
}

// BerthPostgres is berth.index.postgres.
type BerthPostgres struct {
	// DSN is the connection string: a URL
	// (postgres://user:pass@host:5432/db?sslmode=verify-full) or key=value
	// pairs. PG* environment variables fill in what it leaves out.
	DSN string `yaml:"dsn"`
	// MaxConns bounds the connections of the query pool (default 10); tag
	// locks use a second pool of the same size.
	MaxConns int `yaml:"maxconns,omitempty"`
}

// BerthTLS is berth.tls: TLS settings registry:2 does not have. The
// certificate itself is configured in http.tls.
type BerthTLS struct {
	HTTPRedirect BerthHTTPRedirect `yaml:"httpredirect,omitempty"`
	ACME         BerthACME         `yaml:"acme,omitempty"`
}

// BerthHTTPRedirect is berth.tls.httpredirect: a plain-HTTP listener beside
// the TLS one that answers ACME HTTP-01 challenges and redirects everything
// else to HTTPS.
type BerthHTTPRedirect struct {
	// Addr to listen on, e.g. ":80". Empty: no plain-HTTP listener.
	Addr string `yaml:"addr,omitempty"`
}

// BerthACME is berth.tls.acme: settings for the ACME client of
// http.tls.letsencrypt.
type BerthACME struct {
	// CABundle is a PEM file of CA certificates trusted, besides the
	// system's, for the ACME server's own HTTPS (a private ACME CA).
	CABundle string `yaml:"cabundle,omitempty"`
}

// Size is a byte count. In YAML it is an integer or a string with a binary
// or decimal unit: B, KiB, MiB, GiB, KB, MB, GB (case-insensitive).
type Size int64

// MarshalYAML writes a Size as a plain integer.
func (s Size) MarshalYAML() (any, error) { return int64(s), nil }

// Defaults that other packages may want to refer to.
const (
	DefaultAddr            = ":5000"
	DefaultRootDirectory   = "./data"
	DefaultLogLevel        = "info"
	DefaultLogFormatter    = "text"
	DefaultManifestMaxSize = Size(4 << 20)
	DefaultHTPasswdRealm   = "Registry Realm"
	DefaultMaxThreads      = 100
)

// IndexPath returns where the embedded metadata index lives: berth.index.path
// if set; otherwise, with the filesystem driver, "berth/index.db" inside the
// root directory (beside the docker/ tree, which registry:2 ignores); with the
// inmemory driver "" (the index should be kept in memory too); with an object
// store driver "berth-index.db" in the working directory.
func (c *Config) IndexPath() string {
	if c.Berth.Index.Path != "" {
		return c.Berth.Index.Path
	}
	switch {
	case c.Storage.Filesystem != nil:
		return filepath.Join(c.Storage.Filesystem.RootDirectory, "berth", "index.db")
	case c.Storage.InMemory != nil:
		return ""
	default:
		return "berth-index.db"
	}
}

// Warnings lists problems that do not stop berth: settings registry:2 knows
// but berth does not implement yet, deprecated keys, environment variables
// that look like configuration but are not applied. Each names the key path
// and where it was set. Only a Config returned by Load has warnings.
func (c *Config) Warnings() []string {
	return append([]string(nil), c.warnings...)
}

// Unimplemented lists the dotted paths of the settings present in the
// configuration that berth does not implement yet (the outermost such key:
// "storage.s3", "auth.token", "http.tls"). Callers decide whether to refuse
// to start, e.g. when an auth provider or storage driver is among them.
func (c *Config) Unimplemented() []string {
	return append([]string(nil), c.unimplemented...)
}

// Source reports where the value at a dotted key path (for example
// "http.addr" or "storage.filesystem.rootdirectory") came from:
// "config.yml:12", an environment variable name, or "" when it is a default
// or not set.
func (c *Config) Source(path string) string {
	return c.sources[path]
}

// Default returns the configuration berth uses with no file and no
// environment: filesystem storage in ./data, listening on :5000.
func Default() *Config {
	c := &Config{}
	c.applyDefaults(func(string) bool { return false })
	return c
}

// applyDefaults fills unset values. isSet reports whether a dotted path was
// given explicitly (so an explicit false or 0 is kept).
func (c *Config) applyDefaults(isSet func(string) bool) {
	def := func(path string, apply func()) {
		if !isSet(path) {
			apply()
		}
	}
	if c.Version == "" {
		c.Version = "0.1"
	}
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if c.Log.Formatter == "" {
		c.Log.Formatter = DefaultLogFormatter
	}
	def("http.addr", func() { c.HTTP.Addr = DefaultAddr })
	if c.HTTP.Net == "" {
		c.HTTP.Net = "tcp"
	}
	if c.HTTP.Debug != nil && c.HTTP.Debug.Prometheus.Path == "" {
		c.HTTP.Debug.Prometheus.Path = "/metrics"
	}

	s := &c.Storage
	if len(s.drivers()) == 0 {
		s.Filesystem = &Filesystem{}
	}
	if fs := s.Filesystem; fs != nil {
		def("storage.filesystem.rootdirectory", func() { fs.RootDirectory = DefaultRootDirectory })
		def("storage.filesystem.maxthreads", func() { fs.MaxThreads = DefaultMaxThreads })
	}
	if s3 := s.S3; s3 != nil {
		def("storage.s3.secure", func() { s3.Secure = true })
		def("storage.s3.v4auth", func() { s3.V4Auth = true })
		def("storage.s3.chunksize", func() { s3.ChunkSize = 10 << 20 })
		def("storage.s3.multipartcopychunksize", func() { s3.MultipartCopyChunkSize = 32 << 20 })
		def("storage.s3.multipartcopymaxconcurrency", func() { s3.MultipartCopyMaxConcurrency = 100 })
		def("storage.s3.multipartcopythresholdsize", func() { s3.MultipartCopyThresholdSize = 32 << 20 })
		if s3.StorageClass == "" {
			s3.StorageClass = "STANDARD"
		}
		if s3.ObjectACL == "" {
			s3.ObjectACL = "private"
		}
	}
	if sw := s.Swift; sw != nil {
		def("storage.swift.chunksize", func() { sw.ChunkSize = 20 << 20 })
		if sw.EndpointType == "" {
			sw.EndpointType = "public"
		}
	}
	up := &s.Maintenance.UploadPurging
	def("storage.maintenance.uploadpurging.enabled", func() { up.Enabled = true })
	def("storage.maintenance.uploadpurging.age", func() { up.Age = 168 * time.Hour })
	def("storage.maintenance.uploadpurging.interval", func() { up.Interval = 24 * time.Hour })
	if s.Cache.BlobDescriptor == "" && s.Cache.LayerInfo != "" {
		s.Cache.BlobDescriptor = s.Cache.LayerInfo
	}

	if h := c.Auth.HTPasswd; h != nil && h.Realm == "" {
		h.Realm = DefaultHTPasswdRealm
	}
	if hc := c.Health; hc != nil {
		def("health.storagedriver.interval", func() { hc.StorageDriver.Interval = 10 * time.Second })
	}
	if p := c.Proxy; p != nil {
		def("proxy.ttl", func() { p.TTL = 168 * time.Hour })
	}
	def("berth.manifests.maxsize", func() { c.Berth.Manifests.MaxSize = DefaultManifestMaxSize })
	def("berth.ui.enabled", func() { c.Berth.UI.Enabled = true })
}
