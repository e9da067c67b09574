package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// writeConfig writes content to config.yml in a fresh directory, makes that
// the working directory, and returns "config.yml", so errors read exactly
// as an operator would see them.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return "config.yml"
}

func load(t *testing.T, content string, env ...string) (*Config, error) {
	t.Helper()
	path := ""
	if content != "" {
		path = writeConfig(t, content)
	}
	return Load(path, env)
}

func mustLoad(t *testing.T, content string, env ...string) *Config {
	t.Helper()
	c, err := load(t, content, env...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func hasWarning(c *Config, parts ...string) bool {
	for _, w := range c.Warnings() {
		ok := true
		for _, p := range parts {
			if !strings.Contains(w, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// registry2Default is the config.yml the registry:2 image ships in
// /etc/docker/registry/config.yml.
const registry2Default = `version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`

func TestDefaults(t *testing.T) {
	c := mustLoad(t, "")
	checks := []struct {
		name      string
		got, want any
	}{
		{"http.addr", c.HTTP.Addr, ":5000"},
		{"http.net", c.HTTP.Net, "tcp"},
		{"storage driver", c.Storage.Driver(), "filesystem"},
		{"storage.filesystem.rootdirectory", c.Storage.Filesystem.RootDirectory, "./data"},
		{"storage.filesystem.maxthreads", c.Storage.Filesystem.MaxThreads, 100},
		{"log.level", c.Log.Level, "info"},
		{"log.formatter", c.Log.Formatter, "text"},
		{"http.draintimeout", c.HTTP.DrainTimeout, time.Duration(0)},
		{"storage.delete.enabled", c.Storage.Delete.Enabled, false},
		{"storage.maintenance.readonly.enabled", c.Storage.Maintenance.ReadOnly.Enabled, false},
		{"berth.manifests.maxsize", c.Berth.Manifests.MaxSize, Size(4 << 20)},
		{"berth.ui.enabled", c.Berth.UI.Enabled, true},
		{"auth provider", c.Auth.Provider(), ""},
		{"index path", c.IndexPath(), filepath.Join("data", "berth", "index.db")},
		{"warnings", len(c.Warnings()), 0},
		{"source of default", c.Source("http.addr"), ""},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
	d := Default()
	d.warnings, d.sources, c.warnings, c.sources = nil, nil, nil, nil
	if !reflect.DeepEqual(d, c) {
		t.Errorf("Default() differs from Load(\"\", nil):\n%+v\n%+v", d, c)
	}
}

// TestSeeds loads the setups of the seed articles (shared/seeds): the
// registry:2 image's own config.yml plus their docker run -e / compose
// environment lines, with credentials filled in.
func TestSeeds(t *testing.T) {
	swift := []string{
		"REGISTRY_STORAGE=swift",
		"REGISTRY_STORAGE_SWIFT_USERNAME=demo",
		"REGISTRY_STORAGE_SWIFT_PASSWORD=s3cr3t-os-password",
		"REGISTRY_STORAGE_SWIFT_TENANT=demo-tenant   ", // trailing blanks, as in the article
		"REGISTRY_STORAGE_SWIFT_AUTHURL=https://keystone.example.com:5000/v2.0",
		"REGISTRY_STORAGE_SWIFT_CONTAINER=docker-registry",
	}
	htpasswdTLS := func(realm, file, secret string) []string {
		return []string{
			"REGISTRY_AUTH=htpasswd",
			"REGISTRY_AUTH_HTPASSWD_REALM=" + realm,
			"REGISTRY_AUTH_HTPASSWD_PATH=/opt/registry/auth/" + file,
			"REGISTRY_HTTP_SECRET=" + secret,
			"REGISTRY_HTTP_TLS_CERTIFICATE=/opt/registry/ssl/cert.pem",
			"REGISTRY_HTTP_TLS_KEY=/opt/registry/ssl/key.pem",
		}
	}
	cat := func(lists ...[]string) []string {
		var out []string
		for _, l := range lists {
			out = append(out, l...)
		}
		return out
	}
	swiftCheck := func(t *testing.T, c *Config) {
		sw := c.Storage.Swift
		if c.Storage.Driver() != "swift" || sw == nil {
			t.Fatalf("driver = %q, want swift", c.Storage.Driver())
		}
		if sw.Username != "demo" || sw.Password != "s3cr3t-os-password" || sw.Tenant != "demo-tenant" ||
			sw.AuthURL != "https://keystone.example.com:5000/v2.0" || sw.Container != "docker-registry" {
			t.Errorf("swift = %+v", *sw)
		}
		if c.Storage.Filesystem != nil {
			t.Error("REGISTRY_STORAGE=swift kept the file's filesystem driver")
		}
	}

	tests := []struct {
		name  string
		file  string
		env   []string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "000 registry:2 default config behind Apache",
			file: registry2Default,
			check: func(t *testing.T, c *Config) {
				if c.HTTP.Addr != ":5000" || c.Storage.Filesystem.RootDirectory != "/var/lib/registry" {
					t.Errorf("addr %q root %q", c.HTTP.Addr, c.Storage.Filesystem.RootDirectory)
				}
				if got := c.HTTP.Headers["X-Content-Type-Options"]; !reflect.DeepEqual(got, []string{"nosniff"}) {
					t.Errorf("headers = %v", c.HTTP.Headers)
				}
				if c.Log.Fields["service"] != "registry" {
					t.Errorf("log.fields = %v", c.Log.Fields)
				}
				if !c.Health.StorageDriver.Enabled || c.Health.StorageDriver.Interval != 10*time.Second || c.Health.StorageDriver.Threshold != 3 {
					t.Errorf("health = %+v", c.Health.StorageDriver)
				}
				if !hasWarning(c, "storage.cache") || hasWarning(c, "health") {
					t.Errorf("warnings = %q", c.Warnings())
				}
			},
		},
		{
			name:  "001 build server on swift",
			file:  registry2Default,
			env:   swift,
			check: swiftCheck,
		},
		{
			name: "001 read-only mirror on swift",
			file: registry2Default,
			env:  cat([]string{"REGISTRY_STORAGE_MAINTENANCE_READONLY=enabled: true"}, swift),
			check: func(t *testing.T, c *Config) {
				swiftCheck(t, c)
				if !c.Storage.Maintenance.ReadOnly.Enabled {
					t.Error("readonly not enabled")
				}
			},
		},
		{
			name: "001 read-only users, htpasswd, TLS",
			file: registry2Default,
			env: cat([]string{"REGISTRY_STORAGE_MAINTENANCE_READONLY=enabled: true"}, swift,
				htpasswdTLS("Admin Registry Realm", "admin.htpasswd", "qerldsljckjqr")),
			check: func(t *testing.T, c *Config) {
				swiftCheck(t, c)
				h := c.Auth.HTPasswd
				if c.Auth.Provider() != "htpasswd" || h.Realm != "Admin Registry Realm" || h.Path != "/opt/registry/auth/admin.htpasswd" {
					t.Errorf("auth = %+v", c.Auth)
				}
				if c.HTTP.Secret != "qerldsljckjqr" || c.HTTP.TLS == nil ||
					c.HTTP.TLS.Certificate != "/opt/registry/ssl/cert.pem" || c.HTTP.TLS.Key != "/opt/registry/ssl/key.pem" {
					t.Errorf("http = %+v tls %+v", c.HTTP, c.HTTP.TLS)
				}
				if !c.Storage.Maintenance.ReadOnly.Enabled {
					t.Error("readonly not enabled")
				}
			},
		},
		{
			name: "001 admin read/write, no config file at all",
			env:  cat(swift, htpasswdTLS("Read Only Registry Realm", "users.htpasswd", "hlyrehbrvgszd")),
			check: func(t *testing.T, c *Config) {
				swiftCheck(t, c)
				if c.Auth.HTPasswd.Path != "/opt/registry/auth/users.htpasswd" || c.Storage.Maintenance.ReadOnly.Enabled {
					t.Errorf("auth %+v readonly %v", c.Auth.HTPasswd, c.Storage.Maintenance.ReadOnly.Enabled)
				}
			},
		},
		{
			name: "002 systemd unit with REGISTRY_HTTP_ADDR",
			file: registry2Default,
			env:  []string{"REGISTRY_HTTP_ADDR=0.0.0.0:80"},
			check: func(t *testing.T, c *Config) {
				if c.HTTP.Addr != "0.0.0.0:80" || c.Source("http.addr") != "REGISTRY_HTTP_ADDR" {
					t.Errorf("addr %q from %q", c.HTTP.Addr, c.Source("http.addr"))
				}
			},
		},
		{
			name: "003 docker-compose with token auth (quoted values)",
			file: registry2Default,
			env: []string{
				"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry",
				"REGISTRY_AUTH=token",
				"REGISTRY_AUTH_TOKEN_REALM=https://auth:5001/auth",
				`REGISTRY_AUTH_TOKEN_SERVICE="registry"`,
				`REGISTRY_AUTH_TOKEN_ISSUER="auth_service"`,
				"REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE=/ssl/server.pem",
			},
			check: func(t *testing.T, c *Config) {
				tok := c.Auth.Token
				if tok == nil || tok.Realm != "https://auth:5001/auth" || tok.Service != "registry" ||
					tok.Issuer != "auth_service" || tok.RootCertBundle != "/ssl/server.pem" {
					t.Fatalf("token = %+v", tok)
				}
				// auth.token is implemented (internal/auth/setup).
				if hasWarning(c, "auth.token", "not implemented") {
					t.Errorf("warning for auth.token: %q", c.Warnings())
				}
				if got := c.Unimplemented(); contains(got, "auth.token") {
					t.Errorf("Unimplemented() = %q", got)
				}
			},
		},
		{
			name: "004 s3 with lower-case registry_ variables",
			file: registry2Default,
			env: []string{
				"registry_auth=htpasswd",
				"registry_auth_htpasswd_realm=registry realm",
				"registry_auth_htpasswd_path=/auth/.htpasswd",
				"REGISTRY_STORAGE=s3",
				"REGISTRY_STORAGE_S3_ACCESSKEY=AKIAEXAMPLEACCESS",
				"REGISTRY_STORAGE_S3_SECRETKEY=wJalrXUtnFEMIexamplesecret",
				"REGISTRY_STORAGE_S3_REGION=eu-west-1",
				"REGISTRY_STORAGE_S3_BUCKET=my-registry",
				"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=inmemory",
			},
			check: func(t *testing.T, c *Config) {
				s3 := c.Storage.S3
				if s3 == nil || s3.Bucket != "my-registry" || s3.Region != "eu-west-1" || s3.AccessKey != "AKIAEXAMPLEACCESS" ||
					s3.SecretKey != "wJalrXUtnFEMIexamplesecret" || !s3.Secure || !s3.V4Auth || s3.ChunkSize != 10<<20 {
					t.Fatalf("s3 = %+v", s3)
				}
				if c.Storage.Cache.BlobDescriptor != "inmemory" {
					t.Errorf("cache = %+v", c.Storage.Cache)
				}
				// registry:2 ignores lower-case names, so does berth, with a warning.
				if c.Auth.Provider() != "" {
					t.Errorf("lower-case registry_auth was applied: %+v", c.Auth)
				}
				for _, name := range []string{"registry_auth", "registry_auth_htpasswd_realm", "registry_auth_htpasswd_path"} {
					if !hasWarning(c, name+": ignored", "REGISTRY_") {
						t.Errorf("no warning for %s: %q", name, c.Warnings())
					}
				}
			},
		},
		{
			name: "token-auth test config with deprecated loglevel",
			file: `version: 0.1
loglevel: debug
storage:
    cache:
        blobdescriptor: inmemory
    filesystem:
        rootdirectory: /tmp/registry-dev
http:
    addr: 0.0.0.0:5000
    tls:
        certificate: "/etc/docker/registry/localregistry.cert"
        key: "/etc/docker/registry/localregistry.key"
compatibility:
    schema1:
        enabled: true
auth:
    token:
        realm: "https://auth.localregistry:5559/token/"
        issuer: "registry-test"
        service: "registry-test"
        rootcertbundle: "/etc/docker/registry/tokenbundle.pem"
`,
			check: func(t *testing.T, c *Config) {
				if c.Log.Level != "debug" || !hasWarning(c, "config.yml:2", "loglevel is deprecated") {
					t.Errorf("level %q warnings %q", c.Log.Level, c.Warnings())
				}
				if !c.Compatibility.Schema1.Enabled || !hasWarning(c, "compatibility") || hasWarning(c, "http.tls") {
					t.Errorf("warnings %q", c.Warnings())
				}
			},
		},
		{
			name: "development config with hooks, redis, notifications, proxy",
			file: `version: 0.1
log:
  level: debug
  fields:
    service: registry
    environment: development
  hooks:
    - type: mail
      disabled: true
      levels:
        - panic
      options:
        smtp:
          addr: mail.example.com:25
          username: mailuser
          password: mailpassword
          insecure: true
        from: sender@example.com
        to:
          - errors@example.com
storage:
    delete:
      enabled: true
    cache:
        blobdescriptor: redis
    filesystem:
        rootdirectory: /var/lib/registry
    maintenance:
        uploadpurging:
            enabled: false
    tag:
      concurrencylimit: 8
http:
    addr: :5000
    secret: asecretforlocaldevelopment
    debug:
        addr: :5001
        prometheus:
            enabled: true
            path: /metrics
    headers:
        X-Content-Type-Options: [nosniff]
redis:
  addr: localhost:6379
  pool:
    maxidle: 16
    maxactive: 64
    idletimeout: 300s
  dialtimeout: 10ms
  readtimeout: 10ms
  writetimeout: 10ms
notifications:
    events:
        includereferences: true
    endpoints:
        - name: local-5003
          url: http://localhost:5003/callback
          headers:
             Authorization: [Bearer sometoken]
          timeout: 1s
          threshold: 10
          backoff: 1s
          disabled: true
proxy:
  remoteurl: https://registry-1.docker.io
  username: username
  password: proxypassword
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`,
			check: func(t *testing.T, c *Config) {
				if !c.Storage.Delete.Enabled || c.Storage.Maintenance.UploadPurging.Enabled {
					t.Errorf("storage = %+v", c.Storage)
				}
				if c.Redis.Pool.IdleTimeout != 300*time.Second || c.Redis.DialTimeout != 10*time.Millisecond {
					t.Errorf("redis = %+v", c.Redis)
				}
				ep := c.Notifications.Endpoints[0]
				if ep.Name != "local-5003" || ep.Timeout != time.Second || ep.Threshold != 10 || !ep.Disabled {
					t.Errorf("endpoint = %+v", ep)
				}
				if c.Proxy.TTL != 168*time.Hour || c.Log.Hooks[0].Type != "mail" {
					t.Errorf("proxy %+v hooks %+v", c.Proxy, c.Log.Hooks)
				}
				for _, k := range []string{"log.hooks", "redis", "proxy", "http.secret", "storage.tag", "storage.cache"} {
					if !hasWarning(c, k+":") {
						t.Errorf("no warning for %s: %q", k, c.Warnings())
					}
				}
				for _, k := range []string{"log.level:", "log.fields", "storage.delete", "storage.maintenance.uploadpurging", "http.headers", "http.addr", "http.debug", "notifications"} {
					if hasWarning(c, k) {
						t.Errorf("implemented key %s warned: %q", k, c.Warnings())
					}
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, tc.file, tc.env...)
			tc.check(t, c)
		})
	}
}

// TestDebianPackageConfig loads the config.yml of the docker-registry Debian
// package (distribution 2.8.2) when it is installed.
func TestDebianPackageConfig(t *testing.T) {
	const path = "/etc/docker/registry/config.yml"
	if _, err := os.Stat(path); err != nil {
		t.Skip("docker-registry package not installed")
	}
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.Filesystem.RootDirectory != "/var/lib/docker-registry" || !c.Storage.Delete.Enabled || c.Auth.HTPasswd == nil {
		t.Errorf("config = %+v", c)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestEnvOverrides(t *testing.T) {
	const base = `version: 0.1
log:
  fields:
    service: registry
storage:
  delete:
    enabled: true
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
`
	tests := []struct {
		name  string
		file  string
		env   []string
		check func(t *testing.T, c *Config)
	}{
		{"scalar override", base, []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/srv/registry"}, func(t *testing.T, c *Config) {
			if c.Storage.Filesystem.RootDirectory != "/srv/registry" {
				t.Error(c.Storage.Filesystem.RootDirectory)
			}
			if c.Source("storage.filesystem.rootdirectory") != "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY" || c.Source("storage.delete.enabled") != "config.yml:7" {
				t.Error(c.Source("storage.filesystem.rootdirectory"), c.Source("storage.delete.enabled"))
			}
		}},
		{"bool", "", []string{"REGISTRY_STORAGE_DELETE_ENABLED=true"}, func(t *testing.T, c *Config) {
			if !c.Storage.Delete.Enabled {
				t.Error("delete not enabled")
			}
		}},
		{"bool false overrides file", base, []string{"REGISTRY_STORAGE_DELETE_ENABLED=false"}, func(t *testing.T, c *Config) {
			if c.Storage.Delete.Enabled {
				t.Error("delete still enabled")
			}
		}},
		{"berth.ui off", "", []string{"REGISTRY_BERTH_UI_ENABLED=false"}, func(t *testing.T, c *Config) {
			if c.Berth.UI.Enabled || c.Source("berth.ui.enabled") != "REGISTRY_BERTH_UI_ENABLED" {
				t.Errorf("ui enabled %v, from %q", c.Berth.UI.Enabled, c.Source("berth.ui.enabled"))
			}
		}},
		{"berth.ui section without enabled keeps the default", "", []string{"REGISTRY_BERTH_UI={}"}, func(t *testing.T, c *Config) {
			if !c.Berth.UI.Enabled {
				t.Error("ui disabled")
			}
		}},
		{"section as YAML mapping", "", []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY=enabled: true"}, func(t *testing.T, c *Config) {
			if !c.Storage.Maintenance.ReadOnly.Enabled {
				t.Error("readonly not enabled")
			}
		}},
		{"leaf inside section", "", []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED=yes"}, func(t *testing.T, c *Config) {
			if !c.Storage.Maintenance.ReadOnly.Enabled {
				t.Error("readonly not enabled")
			}
		}},
		{"map of lists replaces headers", base, []string{"REGISTRY_HTTP_HEADERS={X-Foo: [bar], Strict-Transport-Security: [max-age=31536000]}"}, func(t *testing.T, c *Config) {
			want := map[string][]string{"X-Foo": {"bar"}, "Strict-Transport-Security": {"max-age=31536000"}}
			if !reflect.DeepEqual(c.HTTP.Headers, want) {
				t.Error(c.HTTP.Headers)
			}
		}},
		{"new map key is lower-cased", base, []string{"REGISTRY_LOG_FIELDS_ENVIRONMENT=staging", "REGISTRY_LOG_FIELDS_SERVICE=berth"}, func(t *testing.T, c *Config) {
			want := map[string]any{"service": "berth", "environment": "staging"}
			if !reflect.DeepEqual(c.Log.Fields, want) {
				t.Error(c.Log.Fields)
			}
		}},
		{"existing map key keeps its spelling", base, []string{"REGISTRY_HTTP_HEADERS_X-CONTENT-TYPE-OPTIONS=[nosniff, other]"}, func(t *testing.T, c *Config) {
			if got := c.HTTP.Headers["X-Content-Type-Options"]; !reflect.DeepEqual(got, []string{"nosniff", "other"}) || len(c.HTTP.Headers) != 1 {
				t.Error(c.HTTP.Headers)
			}
		}},
		{"duration string and nanoseconds", "", []string{"REGISTRY_HTTP_DRAINTIMEOUT=30s", "REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL=5000000000"}, func(t *testing.T, c *Config) {
			if c.HTTP.DrainTimeout != 30*time.Second || c.Health.StorageDriver.Interval != 5*time.Second {
				t.Error(c.HTTP.DrainTimeout, c.Health.StorageDriver.Interval)
			}
		}},
		{"driver switch drops file driver, keeps delete", base, []string{"REGISTRY_STORAGE=inmemory"}, func(t *testing.T, c *Config) {
			if c.Storage.Driver() != "inmemory" || c.Storage.Filesystem != nil || !c.Storage.Delete.Enabled {
				t.Errorf("storage = %+v", c.Storage)
			}
			if !hasWarning(c, "REGISTRY_STORAGE", "storage.delete", "registry:2 drops") {
				t.Errorf("warnings %q", c.Warnings())
			}
			if c.IndexPath() != "" {
				t.Error(c.IndexPath())
			}
		}},
		{"driver switch with parameters, sorted order", base, []string{
			"REGISTRY_STORAGE_S3_REGION=us-east-1", "REGISTRY_STORAGE=s3", "REGISTRY_STORAGE_S3_BUCKET=b",
		}, func(t *testing.T, c *Config) {
			if c.Storage.Driver() != "s3" || c.Storage.S3.Region != "us-east-1" || c.Storage.S3.Bucket != "b" {
				t.Errorf("storage = %+v", c.Storage)
			}
		}},
		{"driver params without file select the driver", "", []string{"REGISTRY_STORAGE_S3_REGION=us-east-1", "REGISTRY_STORAGE_S3_BUCKET=b"}, func(t *testing.T, c *Config) {
			if c.Storage.Driver() != "s3" {
				t.Errorf("driver %q", c.Storage.Driver())
			}
		}},
		{"driver as a YAML mapping", "", []string{"REGISTRY_STORAGE={filesystem: {rootdirectory: /x}, delete: {enabled: true}}"}, func(t *testing.T, c *Config) {
			if c.Storage.Filesystem.RootDirectory != "/x" || !c.Storage.Delete.Enabled {
				t.Errorf("storage = %+v", c.Storage)
			}
		}},
		{"auth selected by name", "auth:\n  token:\n    realm: r\n", []string{"REGISTRY_AUTH=htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd"}, func(t *testing.T, c *Config) {
			if c.Auth.Provider() != "htpasswd" || c.Auth.HTPasswd.Path != "/auth/htpasswd" || c.Auth.HTPasswd.Realm != DefaultHTPasswdRealm {
				t.Errorf("auth = %+v", c.Auth)
			}
		}},
		{"empty REGISTRY_AUTH removes auth", "auth:\n  htpasswd:\n    path: /x\n", []string{"REGISTRY_AUTH="}, func(t *testing.T, c *Config) {
			if c.Auth.Provider() != "" {
				t.Errorf("auth = %+v", c.Auth)
			}
		}},
		{"list element by index", "", []string{
			"REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE=/c", "REGISTRY_HTTP_TLS_LETSENCRYPT_EMAIL=a@b.c",
			"REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS_0=registry.example.com", "REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS_1=r2.example.com",
		}, func(t *testing.T, c *Config) {
			if got := c.HTTP.TLS.LetsEncrypt.Hosts; !reflect.DeepEqual(got, []string{"registry.example.com", "r2.example.com"}) {
				t.Error(got)
			}
		}},
		{"list of structs by index", "notifications:\n  endpoints:\n    - name: a\n      url: http://a/\n", []string{
			"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL=http://b/", "REGISTRY_NOTIFICATIONS_ENDPOINTS_1_NAME=c", "REGISTRY_NOTIFICATIONS_ENDPOINTS_1_URL=http://c/",
		}, func(t *testing.T, c *Config) {
			e := c.Notifications.Endpoints
			if len(e) != 2 || e[0].Name != "a" || e[0].URL != "http://b/" || e[1].Name != "c" {
				t.Errorf("%+v", e)
			}
		}},
		{"distribution Go field spellings", "", []string{
			"REGISTRY_NOTIFICATIONS_EVENTCONFIG_INCLUDEREFERENCES=true", "REGISTRY_COMPATIBILITY_SCHEMA1_TRUSTKEY=/k.json",
		}, func(t *testing.T, c *Config) {
			if !c.Notifications.Events.IncludeReferences || c.Compatibility.Schema1.SigningKeyFile != "/k.json" {
				t.Errorf("%+v %+v", c.Notifications, c.Compatibility)
			}
		}},
		{"segments match ignoring case", "", []string{"REGISTRY_Http_Addr=:6000"}, func(t *testing.T, c *Config) {
			if c.HTTP.Addr != ":6000" {
				t.Error(c.HTTP.Addr)
			}
		}},
		{"berth keys", "", []string{"REGISTRY_BERTH_MANIFESTS_MAXSIZE=8MiB", "REGISTRY_BERTH_INDEX_PATH=/var/lib/berth/index.db"}, func(t *testing.T, c *Config) {
			if c.Berth.Manifests.MaxSize != 8<<20 || c.IndexPath() != "/var/lib/berth/index.db" {
				t.Error(c.Berth)
			}
		}},
		{"invalid YAML value is a literal string", "", []string{"REGISTRY_HTTP_SECRET=*not-an-alias", "REGISTRY_PROXY_REMOTEURL=https://registry-1.docker.io", "REGISTRY_PROXY_PASSWORD=%pct"}, func(t *testing.T, c *Config) {
			if c.HTTP.Secret != "*not-an-alias" || c.Proxy.Password != "%pct" {
				t.Errorf("%q %q", c.HTTP.Secret, c.Proxy.Password)
			}
		}},
		{"numeric value for a string key", "", []string{"REGISTRY_HTTP_SECRET=123456", "REGISTRY_LOG_LEVEL=DEBUG"}, func(t *testing.T, c *Config) {
			if c.HTTP.Secret != "123456" || c.Log.Level != "debug" {
				t.Errorf("%q %q", c.HTTP.Secret, c.Log.Level)
			}
		}},
		{"config path variable is not a key", "", []string{"REGISTRY_CONFIGURATION_PATH=/etc/docker/registry/config.yml"}, func(t *testing.T, c *Config) {
			if len(c.Warnings()) != 0 {
				t.Error(c.Warnings())
			}
		}},
		{"last duplicate variable wins", "", []string{"REGISTRY_HTTP_ADDR=:1", "REGISTRY_HTTP_ADDR=:2"}, func(t *testing.T, c *Config) {
			if c.HTTP.Addr != ":2" {
				t.Error(c.HTTP.Addr)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, mustLoad(t, tc.file, tc.env...))
		})
	}
}

func TestAliasesAndMerge(t *testing.T) {
	const file = `
storage:
  filesystem:
    rootdirectory: /data
  delete: &on
    enabled: true
  maintenance:
    readonly:
      <<: *on
    uploadpurging: *on
`
	c := mustLoad(t, file[1:])
	if !c.Storage.Delete.Enabled || !c.Storage.Maintenance.ReadOnly.Enabled || !c.Storage.Maintenance.UploadPurging.Enabled {
		t.Errorf("storage = %+v", c.Storage)
	}
	// Changing the anchored section from the environment leaves its aliases alone.
	c = mustLoad(t, file[1:], "REGISTRY_STORAGE_DELETE_ENABLED=false", "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_DRYRUN=true")
	if c.Storage.Delete.Enabled || !c.Storage.Maintenance.ReadOnly.Enabled || !c.Storage.Maintenance.UploadPurging.Enabled ||
		!c.Storage.Maintenance.UploadPurging.DryRun {
		t.Errorf("storage = %+v", c.Storage)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  []string
		want []string // substrings of the error
	}{
		{
			name: "unknown key with line",
			file: "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /d\nauth:\n  htpasswd:\n    realm: r\n    pathh: /x\n",
			want: []string{`config.yml:8: unknown key "auth.htpasswd.pathh"`, `did you mean "auth.htpasswd.path"`},
		},
		{
			name: "unknown top-level key",
			file: "version: 0.1\n\nhtpp:\n  addr: :5000\n",
			want: []string{`config.yml:3: unknown key "htpp"`, `"http"`},
		},
		{
			name: "upper-case key",
			file: "http:\n  Addr: :5000\n",
			want: []string{`config.yml:2: unknown key "http.Addr"`, `"http.addr"`},
		},
		{
			name: "unknown key via env",
			env:  []string{"REGISTRY_HTTP_ADR=:5000"},
			want: []string{`REGISTRY_HTTP_ADR: unknown key "http.adr"`, `did you mean "http.addr"`},
		},
		{
			name: "unknown top-level section via env",
			env:  []string{"REGISTRY_HTPP_ADDR=:5000"},
			want: []string{`REGISTRY_HTPP_ADDR: unknown key "htpp"`},
		},
		{
			name: "env path through a scalar",
			env:  []string{"REGISTRY_HTTP_ADDR_HOST=x"},
			want: []string{`REGISTRY_HTTP_ADDR_HOST: unknown key "http.addr.host"`},
		},
		{
			name: "env into a list without index",
			env:  []string{"REGISTRY_HTTP_TLS_CLIENTCAS_FOO=/x"},
			want: []string{`unknown key "http.tls.clientcas.foo"`, "is a list"},
		},
		{
			name: "unknown key inside an env YAML value",
			env:  []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY=enabeld: true"},
			want: []string{`REGISTRY_STORAGE_MAINTENANCE_READONLY: unknown key "storage.maintenance.readonly.enabeld"`},
		},
		{
			name: "unknown storage driver via env",
			env:  []string{"REGISTRY_STORAGE=s4"},
			want: []string{`REGISTRY_STORAGE: unknown storage driver "s4"`, `"storage.s3"`},
		},
		{
			name: "unknown storage driver in file",
			file: "storage:\n  filesystem:\n    rootdirectory: /x\n  cephfs:\n    path: /y\n",
			want: []string{`config.yml:4: unknown key "storage.cephfs"`},
		},
		{
			name: "wrong type: mapping for string",
			file: "version: 0.1\nlog:\n  level: info\nstorage:\n  inmemory:\nhttp:\n  addr:\n    port: 5000\n",
			want: []string{`config.yml:8: http.addr: expected a string`},
		},
		{
			name: "wrong type: list for string",
			file: "http:\n  addr: [a, b]\n",
			want: []string{`config.yml:2: http.addr: expected a string`},
		},
		{
			name: "wrong type: bool",
			file: "storage:\n  delete:\n    enabled: sure\n",
			want: []string{`config.yml:3: storage.delete.enabled: expected a boolean`},
		},
		{
			name: "wrong type: duration",
			file: "http:\n  draintimeout: soon\n",
			want: []string{`config.yml:2: http.draintimeout: expected a duration`},
		},
		{
			name: "wrong type: int",
			file: "storage:\n  filesystem:\n    maxthreads: many\n",
			want: []string{`config.yml:3: storage.filesystem.maxthreads: expected an integer`},
		},
		{
			name: "wrong type: section is a scalar",
			file: "http: yes\n",
			want: []string{`config.yml:1: http: expected a mapping`},
		},
		{
			name: "wrong type via env",
			env:  []string{"REGISTRY_STORAGE_DELETE_ENABLED=maybe"},
			want: []string{`REGISTRY_STORAGE_DELETE_ENABLED: storage.delete.enabled: expected a boolean`},
		},
		{
			name: "malformed YAML",
			file: "version: 0.1\nhttp:\n  addr: :5000\n headers: [\n",
			want: []string{"config.yml:", "invalid YAML"},
		},
		{
			name: "tab indentation",
			file: "http:\n\taddr: :5000\n",
			want: []string{"config.yml:2: invalid YAML"},
		},
		{
			name: "top level is not a mapping",
			file: "- a\n- b\n",
			want: []string{"config.yml:1: expected a mapping"},
		},
		{
			name: "two documents",
			file: "http:\n  addr: :1\n---\nhttp:\n  addr: :2\n",
			want: []string{"config.yml:", "more than one YAML document"},
		},
		{
			name: "two drivers in file",
			file: "storage:\n  filesystem:\n    rootdirectory: /x\n  inmemory:\n",
			want: []string{"exactly one storage driver", "storage.filesystem (config.yml:2)", "storage.inmemory (config.yml:4)"},
		},
		{
			name: "file driver plus env driver parameters",
			file: "storage:\n  filesystem:\n    rootdirectory: /x\n",
			env:  []string{"REGISTRY_STORAGE_S3_BUCKET=b"},
			want: []string{"exactly one storage driver", "storage.s3 (REGISTRY_STORAGE_S3_BUCKET)"},
		},
		{
			name: "unsupported driver",
			file: "storage:\n  azure:\n    accountname: a\n    accountkey: k\n    container: c\n",
			want: []string{"config.yml:2: storage.azure: the azure storage driver is not supported by berth"},
		},
		{
			name: "bad version",
			file: "version: 0.2\n",
			want: []string{`config.yml:1: version: unsupported configuration version "0.2"`},
		},
		{
			name: "bad log level",
			file: "log:\n  level: verbose\n",
			want: []string{`config.yml:2: log.level: must be one of error, warn, info, debug`},
		},
		{
			name: "metrics path without a slash",
			file: "http:\n  debug:\n    addr: 127.0.0.1:5001\n    prometheus:\n      enabled: true\n      path: metrics\n",
			want: []string{`config.yml:6: http.debug.prometheus.path: must start with a slash`},
		},
		{
			name: "bad formatter via env",
			env:  []string{"REGISTRY_LOG_FORMATTER=xml"},
			want: []string{`REGISTRY_LOG_FORMATTER: log.formatter: must be one of text, json, logstash`},
		},
		{
			name: "empty root directory",
			file: "storage:\n  filesystem:\n    rootdirectory: \"\"\n",
			want: []string{`config.yml:3: storage.filesystem.rootdirectory: must not be empty`},
		},
		{
			name: "maxthreads too low",
			file: "storage:\n  filesystem:\n    maxthreads: 4\n",
			want: []string{`storage.filesystem.maxthreads: must be at least 25`},
		},
		{
			name: "certificate without key",
			file: "http:\n  tls:\n    certificate: /c.pem\n",
			want: []string{`config.yml:2: http.tls.key: http.tls.certificate and http.tls.key must be given together`},
		},
		{
			name: "htpasswd without path",
			env:  []string{"REGISTRY_AUTH=htpasswd"},
			want: []string{`REGISTRY_AUTH: auth.htpasswd.path: is required`},
		},
		{
			name: "two auth providers",
			file: "auth:\n  htpasswd:\n    path: /x\n",
			env:  []string{"REGISTRY_AUTH_SILLY_REALM=r"},
			want: []string{"at most one auth provider", "auth.htpasswd (config.yml:2)", "auth.silly (REGISTRY_AUTH_SILLY_REALM)"},
		},
		{
			name: "s3 without bucket",
			env:  []string{"REGISTRY_STORAGE=s3", "REGISTRY_STORAGE_S3_REGION=us-east-1"},
			want: []string{"storage.s3.bucket: is required"},
		},
		{
			name: "notification endpoint that is not http(s)",
			file: "notifications:\n  endpoints:\n    - name: ci\n      url: ftp://ci.example.com/hook\n",
			want: []string{`notifications.endpoints[0].url: must be an absolute http(s) URL (got "ftp://ci.example.com/hook")`},
		},
		{
			name: "bad http.host",
			file: "http:\n  host: registry.example.com\n",
			want: []string{"config.yml:2: http.host: must be an absolute"},
		},
		{
			name: "manifest max size",
			file: "berth:\n  manifests:\n    maxsize: 0\n",
			want: []string{"config.yml:3: berth.manifests.maxsize: must be a positive"},
		},
		{
			name: "bad manifest max size unit",
			file: "berth:\n  manifests:\n    maxsize: 4 parsecs\n",
			want: []string{"config.yml:3: berth.manifests.maxsize: expected a size"},
		},
		{
			name: "redis cache without redis",
			file: "storage:\n  cache:\n    blobdescriptor: redis\n",
			want: []string{"config.yml:3: storage.cache.blobdescriptor: is redis, but no redis.addr"},
		},
		{
			name: "bad URL regexp",
			file: "validation:\n  manifests:\n    urls:\n      allow:\n        - '(['\n",
			want: []string{"validation.manifests.urls.allow[0]: invalid regular expression"},
		},
		{
			name: "several errors are all reported",
			file: "htpp: {}\nlog:\n  levle: debug\n",
			want: []string{`config.yml:1: unknown key "htpp"`, `config.yml:3: unknown key "log.levle"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.file, tc.env...)
			if err == nil {
				t.Fatalf("Load succeeded, want error containing %q; config %+v", tc.want, c)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n does not contain %q", err, w)
				}
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *config.Error", err)
			}
		})
	}
}

func TestErrorFields(t *testing.T) {
	_, err := load(t, "http:\n  addr: :1\n  bogus: 1\n")
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatal(err)
	}
	if ce.File != "config.yml" || ce.Line != 3 || ce.Path != "http.bogus" || ce.Env != "" {
		t.Errorf("%+v", ce)
	}
	_, err = load(t, "", "REGISTRY_HTTP_BOGUS=1")
	if !errors.As(err, &ce) || ce.Env != "REGISTRY_HTTP_BOGUS" || ce.Path != "http.bogus" {
		t.Errorf("%+v", ce)
	}
}

func TestMissingFile(t *testing.T) {
	t.Chdir(t.TempDir())
	_, err := Load("nope.yml", nil)
	if err == nil || err.Error() != "nope.yml: configuration file not found" {
		t.Errorf("err = %v", err)
	}
	dir := t.TempDir()
	_, err = Load(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot read configuration file") {
		t.Errorf("err = %v", err)
	}
}

func TestEmptyFile(t *testing.T) {
	for _, content := range []string{"\n", "# only a comment\n", "---\n"} {
		path := writeConfig(t, content)
		c, err := Load(path, nil)
		if err != nil {
			t.Fatalf("%q: %v", content, err)
		}
		if c.HTTP.Addr != DefaultAddr || c.Storage.Filesystem.RootDirectory != DefaultRootDirectory {
			t.Errorf("%q: %+v", content, c)
		}
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		env     []string
		want    [][]string // each: substrings of one warning
		notWant []string
	}{
		{
			name: "unimplemented keys, outermost only",
			file: "http:\n  addr: :5000\n  secret: s\n  debug:\n    addr: :5001\n    prometheus:\n      enabled: true\nstorage:\n  filesystem:\n    rootdirectory: /d\n  cache:\n    blobdescriptor: inmemory\nredis:\n  addr: localhost:6379\n  pool:\n    maxidle: 16\n",
			want: [][]string{
				{"config.yml:3: http.secret: registry:2 setting not implemented by berth yet"},
				{"config.yml:11: storage.cache:"},
				{"config.yml:13: redis:"},
			},
			notWant: []string{"redis.", "http.debug", "http.addr", "storage.filesystem"},
		},
		{
			name: "metrics without the debug listener",
			file: "http:\n  debug:\n    prometheus:\n      enabled: true\n",
			want: [][]string{{"config.yml:4: http.debug.prometheus is enabled but http.debug.addr is not set"}},
		},
		{
			name: "implemented keys are quiet",
			file: "version: 0.1\nlog:\n  level: debug\n  formatter: json\n  fields: {a: b}\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: /d\n    maxthreads: 50\n  delete:\n    enabled: true\n  maintenance:\n    readonly:\n      enabled: true\nhttp:\n  addr: :5000\n  host: https://r.example.com\n  prefix: /r/\n  relativeurls: true\n  draintimeout: 10s\n  headers:\n    X-A: [b]\nauth:\n  htpasswd:\n    realm: r\n    path: /p\nberth:\n  manifests:\n    maxsize: 1MiB\n",
		},
		{
			name: "unimplemented auth provider",
			env:  []string{"REGISTRY_STORAGE=swift", "REGISTRY_STORAGE_SWIFT_CONTAINER=b", "REGISTRY_STORAGE_SWIFT_AUTHURL=http://keystone/v3", "REGISTRY_STORAGE_SWIFT_USERNAME=u", "REGISTRY_STORAGE_SWIFT_PASSWORD=p", "REGISTRY_AUTH=silly", "REGISTRY_AUTH_SILLY_REALM=r", "REGISTRY_AUTH_SILLY_SERVICE=s"},
			want: [][]string{
				{"REGISTRY_AUTH: auth.silly: the silly auth provider is not implemented"},
			},
		},
		{
			name: "near-miss prefixes",
			env:  []string{"REGISTY_HTTP_ADDR=:1", "REGSITRY_STORAGE_DELETE_ENABLED=true", "registry_http_addr=:2", "Registry_Log_Level=debug", "REGISTRYHTTP=x", "REGION_NAME=eu", "registry_unrelated_thing=1"},
			want: [][]string{
				{"REGISTY_HTTP_ADDR: ignored", "did you mean REGISTRY_HTTP_ADDR (http.addr)"},
				{"REGSITRY_STORAGE_DELETE_ENABLED: ignored", "REGISTRY_STORAGE_DELETE_ENABLED"},
				{"registry_http_addr: ignored", "REGISTRY_HTTP_ADDR"},
				{"Registry_Log_Level: ignored", "REGISTRY_LOG_LEVEL"},
			},
			notWant: []string{"REGISTRYHTTP", "REGION_NAME", "registry_unrelated_thing"},
		},
		{
			name: "kubernetes and docker link variables",
			env: []string{
				"REGISTRY_SERVICE_HOST=10.0.0.1", "REGISTRY_SERVICE_PORT=5000", "REGISTRY_SERVICE_PORT_HTTP=5000",
				"REGISTRY_PORT=tcp://10.0.0.1:5000", "REGISTRY_PORT_5000_TCP=tcp://10.0.0.1:5000",
				"REGISTRY_PORT_5000_TCP_PROTO=tcp", "REGISTRY_PORT_5000_TCP_PORT=5000", "REGISTRY_PORT_5000_TCP_ADDR=10.0.0.1",
				"REGISTRY_UI_SERVICE_HOST=10.0.0.2", "REGISTRY_REDIS_PORT=tcp://10.0.0.3:6379",
				"REGISTRY_NAME=/web/registry", "REGISTRY_ENV_FOO=bar",
			},
			want: [][]string{{"ignoring", "REGISTRY_PORT_5000_TCP_ADDR", "REGISTRY_SERVICE_HOST", "REGISTRY_UI_SERVICE_HOST", "REGISTRY_REDIS_PORT", "REGISTRY_NAME", "Kubernetes"}},
		},
		{
			name: "deprecated and lossy values",
			file: "loglevel: info\nlog:\n  level: warning\nhealth:\n  storagedriver:\n    enabled: true\n    interval: 10\nstorage:\n  delete:\n    enabled: true\n  delete:\n    enabled: false\n",
			want: [][]string{
				{"config.yml:1: loglevel is deprecated and ignored"},
				{"config.yml:3: log.level: \"warning\" is treated as \"warn\""},
				{"config.yml:7: health.storagedriver.interval: 10 has no unit and is read as 10ns"},
				{"config.yml:11: duplicate key \"storage.delete\" (first at line 9)"},
			},
		},
		{
			name: "REGISTRY_STORAGE keeps file settings registry:2 would drop",
			file: "storage:\n  filesystem:\n    rootdirectory: /d\n  maintenance:\n    readonly:\n      enabled: true\n",
			env:  []string{"REGISTRY_STORAGE=inmemory"},
			want: [][]string{{"REGISTRY_STORAGE: selects storage driver inmemory; berth keeps storage.maintenance from the file"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, tc.file, tc.env...)
			for _, w := range tc.want {
				if !hasWarning(c, w...) {
					t.Errorf("no warning with %q in\n%s", w, strings.Join(c.Warnings(), "\n"))
				}
			}
			for _, nw := range tc.notWant {
				if hasWarning(c, nw) {
					t.Errorf("unexpected warning with %q in\n%s", nw, strings.Join(c.Warnings(), "\n"))
				}
			}
			if tc.want == nil && len(c.Warnings()) > 0 {
				t.Errorf("unexpected warnings:\n%s", strings.Join(c.Warnings(), "\n"))
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	secrets := []string{
		"http-secret-value", "htpasswd-is-a-path-not-secret", // second is not a secret; checked below
		"s3-access-key", "s3-secret-key", "s3-session-token", "redis-password", "sentinel-pass", "proxy-password",
		"Bearer notification-token", "Basic health-token", "url-password", "bugsnag-key", "newrelic-key",
		"swift-password", "swift-secret", "mail-password",
	}
	file := `
http:
  secret: http-secret-value
storage:
  s3:
    accesskey: s3-access-key
    secretkey: s3-secret-key
    sessiontoken: s3-session-token
    region: us-east-1
    bucket: b
auth:
  htpasswd:
    path: /etc/htpasswd-is-a-path-not-secret
redis:
  addr: localhost:6379
  password: redis-password
  sentinelpassword: sentinel-pass
proxy:
  remoteurl: https://user:url-password@registry-1.docker.io
  username: bob
  password: proxy-password
notifications:
  endpoints:
    - name: n
      url: https://hooks.example.com/
      headers:
        authorization: [Bearer notification-token]
        X-Other: [visible-header]
health:
  http:
    - uri: https://check.example.com/
      headers:
        Authorization: [Basic health-token]
reporting:
  bugsnag:
    apikey: bugsnag-key
  newrelic:
    licensekey: newrelic-key
log:
  hooks:
    - type: mail
      options:
        smtp:
          password: mail-password
`[1:]
	c := mustLoad(t, file, "REGISTRY_STORAGE_S3_SECRETKEY=s3-secret-key", "REGISTRY_HTTP_TLS_CERTIFICATE=/tls/cert.pem", "REGISTRY_HTTP_TLS_KEY=/tls/key.pem")
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, sec := range secrets {
		if sec == "htpasswd-is-a-path-not-secret" {
			continue
		}
		if strings.Contains(s, sec) || strings.Contains(s, strings.Fields(sec)[len(strings.Fields(sec))-1]) {
			t.Errorf("secret %q printed:\n%s", sec, s)
		}
	}
	for _, shown := range []string{"/etc/htpasswd-is-a-path-not-secret", "/tls/key.pem", "visible-header", "username: bob", "https://user:<redacted>@registry-1.docker.io", "bucket: b"} {
		if !strings.Contains(s, shown) {
			t.Errorf("%q missing from:\n%s", shown, s)
		}
	}
	if !strings.Contains(s, Redaction) {
		t.Errorf("no %s in output", Redaction)
	}
	// The output is YAML that berth itself loads.
	var anything map[string]any
	if err := yaml.Unmarshal(out, &anything); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, s)
	}

	// With nothing secret, the output round-trips to the same configuration.
	c1 := mustLoad(t, registry2Default, "REGISTRY_STORAGE_DELETE_ENABLED=true", "REGISTRY_HTTP_DRAINTIMEOUT=45s", "REGISTRY_AUTH_HTPASSWD_PATH=/a",
		"REGISTRY_BERTH_UI_ENABLED=false") // a false that must not read back as the default
	out1, err := c1.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	c2 := mustLoad(t, string(out1))
	c1.warnings, c1.sources, c1.unimplemented = nil, nil, nil
	c2.warnings, c2.sources, c2.unimplemented = nil, nil, nil
	if !reflect.DeepEqual(c1, c2) {
		t.Errorf("round trip differs:\n%s\n%+v\n%+v", out1, c1, c2)
	}
}

func TestImplementedTableNamesRealKeys(t *testing.T) {
	for _, p := range Implemented {
		typ := reflect.TypeOf(Config{})
		for _, seg := range strings.Split(p, ".") {
			for typ.Kind() == reflect.Pointer {
				typ = typ.Elem()
			}
			f, ok := fieldByKey(typ, seg)
			if !ok {
				t.Fatalf("Implemented entry %q: no key %q", p, seg)
			}
			typ = typ.Field(f.index).Type
		}
		if !IsImplemented(p) {
			t.Errorf("IsImplemented(%q) = false", p)
		}
	}
	if IsImplemented("redis") || !IsImplemented("storage.filesystem.rootdirectory") || !IsImplemented("http.headers.X-Foo") {
		t.Error("IsImplemented prefix logic")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{
		"4194304": 4 << 20, "4MiB": 4 << 20, "4 MiB": 4 << 20, "4m": 4 << 20, "512KiB": 512 << 10,
		"1GiB": 1 << 30, "10MB": 10_000_000, "100b": 100, "1.5MiB": 3 << 19,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "4 parsecs", "-1MiB", "x1"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

func TestPathFromEnv(t *testing.T) {
	if p := PathFromEnv([]string{"A=b", "REGISTRY_CONFIGURATION_PATH=/etc/docker/registry/config.yml"}); p != "/etc/docker/registry/config.yml" {
		t.Error(p)
	}
	if p := PathFromEnv(nil); p != "" {
		t.Error(p)
	}
}

// TestAllDocumentedKeys loads a file using every key of distribution's
// configuration reference (2.8 and 3.x).
func TestAllDocumentedKeys(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "all-keys.yml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.DrainTimeout != time.Minute || c.HTTP.TLS.LetsEncrypt.Hosts[0] != "myregistryaddress.org" ||
		c.Redis.Pool.MaxActive != 64 || c.Proxy.Exec.Lifetime == nil || *c.Proxy.Exec.Lifetime != time.Hour ||
		c.Validation.Manifests.Indexes.PlatformList[0].OS != "linux" || c.Berth.Manifests.MaxSize != 4<<20 || c.Berth.UI.Enabled ||
		c.Middleware.Storage[0].Options["duration"] != "3000s" || c.Log.Formatter != "json" {
		t.Errorf("config = %+v", c)
	}
	if c.Source("http.tls.clientauth") != filepath.Join("testdata", "all-keys.yml")+":101" {
		t.Errorf("source = %q", c.Source("http.tls.clientauth"))
	}
	want := []string{"log.hooks", "log.reportcaller", "storage.tag", "storage.cache",
		"middleware", "reporting", "catalog", "tags", "http.net", "http.secret", "http.h2c",
		"redis", "proxy", "compatibility", "validation", "policy"}
	if got := c.Unimplemented(); !reflect.DeepEqual(got, want) {
		t.Errorf("Unimplemented() =\n%q\nwant\n%q", got, want)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range []string{"mailpassword", "asecretforlocaldevelopment", "bugsnagapikey", "newreliclicensekey", "asecret\n", "password: password", "Bearer token", "QWxhZGRpbjpvcGVuIHNlc2FtZQ"} {
		if strings.Contains(string(out), sec) {
			t.Errorf("secret %q printed", sec)
		}
	}
}

func TestStorageDrivers(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "drivers.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var drivers map[string]any
	if err := yaml.Unmarshal(data, &drivers); err != nil {
		t.Fatal(err)
	}
	for _, name := range storageDrivers {
		t.Run(name, func(t *testing.T) {
			file, err := yaml.Marshal(map[string]any{"storage": map[string]any{name: drivers[name]}})
			if err != nil {
				t.Fatal(err)
			}
			c, err := load(t, string(file))
			switch name {
			case "azure", "gcs", "oss":
				if err == nil || !strings.Contains(err.Error(), "storage."+name+": the "+name+" storage driver is not supported by berth") ||
					strings.Contains(err.Error(), "unknown key") {
					t.Errorf("err = %v", err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if c.Storage.Driver() != name {
					t.Errorf("driver = %q", c.Storage.Driver())
				}
			}
		})
	}
}

func TestSectionByName(t *testing.T) {
	c := mustLoad(t, "storage: inmemory\nauth: htpasswd\n", "REGISTRY_AUTH_HTPASSWD_PATH=/p")
	if c.Storage.Driver() != "inmemory" || c.Auth.Provider() != "htpasswd" || c.Auth.HTPasswd.Path != "/p" {
		t.Errorf("storage %q auth %q", c.Storage.Driver(), c.Auth.Provider())
	}
}

// Every storage driver berth accepts is implemented: selecting one must not
// warn that it has no effect.
func TestImplementedDriversDoNotWarn(t *testing.T) {
	for _, env := range [][]string{
		{"REGISTRY_STORAGE=s3", "REGISTRY_STORAGE_S3_BUCKET=b", "REGISTRY_STORAGE_S3_REGION=r"},
		{"REGISTRY_STORAGE=swift", "REGISTRY_STORAGE_SWIFT_CONTAINER=b", "REGISTRY_STORAGE_SWIFT_AUTHURL=http://keystone/v3", "REGISTRY_STORAGE_SWIFT_USERNAME=u", "REGISTRY_STORAGE_SWIFT_PASSWORD=p"},
	} {
		c, err := Load("", env)
		if err != nil {
			t.Fatalf("%v: %v", env, err)
		}
		for _, w := range c.Warnings() {
			if strings.Contains(w, "not implemented") {
				t.Errorf("%v: %s", env[0], w)
			}
		}
		if u := c.Unimplemented(); len(u) != 0 {
			t.Errorf("%v: Unimplemented() = %v", env[0], u)
		}
	}
}
