package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// where returns where a dotted path was set, or where its nearest
// enclosing section was set, or nothing for a default.
func (l *loader) where(path string) origin {
	for p := path; p != ""; {
		if o, ok := l.sources[p]; ok {
			return o
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return origin{}
}

func (l *loader) bad(path, format string, args ...any) {
	e := l.where(path).err(path, format, args...)
	e.Msg = path + ": " + e.Msg
	l.fail(e)
}

func (l *loader) isSet(path string) bool {
	_, ok := l.sources[path]
	return ok
}

var logLevels = map[string]string{
	"error": "error", "warn": "warn", "info": "info", "debug": "debug",
	// Also accepted by registry:2 (logrus); mapped to the nearest level.
	"warning": "warn", "trace": "debug", "fatal": "error", "panic": "error",
}

// normalize runs before defaults: case-folds enumerations and folds the
// deprecated top-level loglevel into log.level.
func (l *loader) normalize(c *Config) {
	if c.Loglevel != "" {
		if c.Log.Level == "" {
			c.Log.Level = c.Loglevel
			l.sources["log.level"] = l.sources["loglevel"]
			l.warn(l.where("loglevel"), "loglevel is deprecated; use log.level (its value %q is used for log.level)", c.Loglevel)
		} else {
			l.warn(l.where("loglevel"), "loglevel is deprecated and ignored because log.level is set")
		}
	}
	if c.Log.Level != "" {
		lv := strings.ToLower(strings.TrimSpace(c.Log.Level))
		if m, ok := logLevels[lv]; ok && m != lv {
			l.warn(l.where("log.level"), "log.level: %q is treated as %q", c.Log.Level, m)
			lv = m
		}
		c.Log.Level = lv
	}
	c.Log.Formatter = strings.ToLower(strings.TrimSpace(c.Log.Formatter))
	if c.Storage.Cache.LayerInfo != "" {
		l.warn(l.where("storage.cache.layerinfo"), "storage.cache.layerinfo is deprecated; use storage.cache.blobdescriptor")
	}
	if c.Validation != nil && l.isSet("validation.enabled") {
		l.warn(l.where("validation.enabled"), "validation.enabled is deprecated; use validation.disabled")
	}
}

func (l *loader) validate(c *Config) {
	if l.isSet("version") && c.Version != "0.1" {
		l.bad("version", "unsupported configuration version %q (only 0.1 exists)", c.Version)
	}
	if _, ok := logLevels[c.Log.Level]; !ok {
		l.bad("log.level", "must be one of error, warn, info, debug (got %q)", c.Log.Level)
	}
	if c.Loglevel != "" {
		if _, ok := logLevels[strings.ToLower(c.Loglevel)]; !ok {
			l.bad("loglevel", "must be one of error, warn, info, debug (got %q)", c.Loglevel)
		}
	}
	switch c.Log.Formatter {
	case "text", "json", "logstash":
	default:
		l.bad("log.formatter", "must be one of text, json, logstash (got %q)", c.Log.Formatter)
	}

	l.validateStorage(c)
	l.validateHTTP(c)
	l.validateAuth(c)

	if n := c.Notifications; n != nil {
		for i, e := range n.Endpoints {
			p := fmt.Sprintf("notifications.endpoints[%d]", i)
			if e.Name == "" {
				l.bad(p, "name is required")
			}
			if e.URL == "" {
				l.bad(p, "url is required")
			} else if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				l.bad(p+".url", "must be an absolute http(s) URL (got %q)", e.URL)
			}
		}
	}
	if p := c.Proxy; p != nil {
		if p.RemoteURL == "" {
			l.bad("proxy.remoteurl", "is required when proxy is configured")
		} else if u, err := url.Parse(p.RemoteURL); err != nil || u.Scheme == "" || u.Host == "" {
			l.bad("proxy.remoteurl", "must be an absolute URL (got %q)", p.RemoteURL)
		}
		if p.TTL < 0 {
			l.bad("proxy.ttl", "must not be negative")
		}
	}
	if v := c.Validation; v != nil {
		for _, list := range []struct {
			name string
			res  []string
		}{{"allow", v.Manifests.URLs.Allow}, {"deny", v.Manifests.URLs.Deny}} {
			for i, re := range list.res {
				if _, err := regexp.Compile(re); err != nil {
					p := fmt.Sprintf("validation.manifests.urls.%s[%d]", list.name, i)
					l.bad(p, "invalid regular expression: %v", err)
				}
			}
		}
	}
	if c.Berth.Manifests.MaxSize <= 0 {
		l.bad("berth.manifests.maxsize", "must be a positive number of bytes (got %d)", c.Berth.Manifests.MaxSize)
	}
	if pg := c.Berth.Index.Postgres; pg != nil {
		if strings.TrimSpace(pg.DSN) == "" {
			l.bad("berth.index.postgres.dsn", "must not be empty")
		}
		if pg.MaxConns < 0 {
			l.bad("berth.index.postgres.maxconns", "must not be negative (got %d)", pg.MaxConns)
		}
		if c.Berth.Index.Path != "" {
			l.bad("berth.index.path", "the embedded index is not used with berth.index.postgres; set one of them")
		}
	}
}

func (l *loader) validateStorage(c *Config) {
	s := &c.Storage
	drivers := s.drivers()
	if len(drivers) > 1 {
		var where []string
		for _, d := range drivers {
			w := "storage." + d
			if o := l.where(w).String(); o != "" {
				w += " (" + o + ")"
			}
			where = append(where, w)
		}
		l.fail(&Error{Path: "storage", Msg: "storage: exactly one storage driver must be configured, got " + strings.Join(where, ", ")})
		return
	}
	switch drivers[0] {
	case "azure", "gcs", "oss":
		l.bad("storage."+drivers[0], "the %s storage driver is not supported by berth (supported: filesystem, inmemory, s3, swift)", drivers[0])
	}
	if fs := s.Filesystem; fs != nil {
		if strings.TrimSpace(fs.RootDirectory) == "" {
			l.bad("storage.filesystem.rootdirectory", "must not be empty")
		}
		if fs.MaxThreads < 25 {
			l.bad("storage.filesystem.maxthreads", "must be at least 25 (got %d)", fs.MaxThreads)
		}
	}
	if s3 := s.S3; s3 != nil {
		if s3.Bucket == "" {
			l.bad("storage.s3.bucket", "is required")
		}
		if s3.Region == "" {
			l.bad("storage.s3.region", "is required")
		}
		if s3.ChunkSize < 5<<20 {
			l.bad("storage.s3.chunksize", "must be at least 5242880 (5 MiB), the S3 minimum part size (got %d)", s3.ChunkSize)
		}
		if s3.MultipartCopyChunkSize < 5<<20 || s3.MultipartCopyChunkSize > 5<<30 {
			l.bad("storage.s3.multipartcopychunksize", "must be between 5 MiB and 5 GiB (got %d)", s3.MultipartCopyChunkSize)
		}
		if s3.MultipartCopyMaxConcurrency < 1 {
			l.bad("storage.s3.multipartcopymaxconcurrency", "must be at least 1 (got %d)", s3.MultipartCopyMaxConcurrency)
		}
		if s3.MultipartCopyThresholdSize < 0 || s3.MultipartCopyThresholdSize > 5<<30 {
			l.bad("storage.s3.multipartcopythresholdsize", "must be between 0 and 5 GiB (got %d)", s3.MultipartCopyThresholdSize)
		}
	}
	if sw := s.Swift; sw != nil {
		for _, req := range []struct{ key, val string }{
			{"username", sw.Username}, {"password", sw.Password}, {"authurl", sw.AuthURL}, {"container", sw.Container},
		} {
			if req.val == "" {
				l.bad("storage.swift."+req.key, "is required")
			}
		}
	}
	switch s.Cache.BlobDescriptor {
	case "", "inmemory":
	case "redis":
		if c.Redis == nil || (c.Redis.Addr == "" && len(c.Redis.Addrs) == 0) {
			l.bad("storage.cache.blobdescriptor", "is redis, but no redis.addr is configured")
		}
	default:
		l.bad("storage.cache.blobdescriptor", "must be inmemory or redis (got %q)", s.Cache.BlobDescriptor)
	}
	up := s.Maintenance.UploadPurging
	if up.Enabled && (up.Age <= 0 || up.Interval <= 0) {
		l.bad("storage.maintenance.uploadpurging", "age and interval must be positive durations when enabled")
	}
}

var tlsVersions = map[string]bool{"tls1.0": true, "tls1.1": true, "tls1.2": true, "tls1.3": true}

var clientAuthModes = map[string]bool{
	"request-client-cert": true, "require-any-client-cert": true,
	"verify-client-cert-if-given": true, "require-and-verify-client-cert": true,
}

func (l *loader) validateHTTP(c *Config) {
	h := &c.HTTP
	switch h.Net {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		l.bad("http.net", "must be tcp, tcp4, tcp6 or unix (got %q)", h.Net)
	}
	if strings.TrimSpace(h.Addr) == "" {
		l.bad("http.addr", "must not be empty")
	}
	if h.Host != "" {
		if u, err := url.Parse(h.Host); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			l.bad("http.host", "must be an absolute http:// or https:// URL such as https://registry.example.com (got %q)", h.Host)
		}
	}
	if h.Prefix != "" && !strings.HasPrefix(h.Prefix, "/") {
		l.bad("http.prefix", "must start with a slash, e.g. /registry/ (got %q)", h.Prefix)
	}
	if h.DrainTimeout < 0 {
		l.bad("http.draintimeout", "must not be negative (got %v)", h.DrainTimeout)
	}
	if d := h.Debug; d != nil {
		if d.Prometheus.Enabled && strings.TrimSpace(d.Addr) == "" {
			// As in registry:2, the metrics live on the debug listener.
			l.warn(l.where("http.debug.prometheus.enabled"), "http.debug.prometheus is enabled but http.debug.addr is not set: metrics are served on the debug listener, so there are none")
		}
		if d.Prometheus.Enabled && !strings.HasPrefix(d.Prometheus.Path, "/") {
			l.bad("http.debug.prometheus.path", "must start with a slash, e.g. /metrics (got %q)", d.Prometheus.Path)
		}
	}
	if t := h.TLS; t != nil {
		if (t.Certificate == "") != (t.Key == "") {
			missing := "key"
			if t.Certificate == "" {
				missing = "certificate"
			}
			l.bad("http.tls."+missing, "http.tls.certificate and http.tls.key must be given together")
		}
		if t.MinimumTLS != "" && !tlsVersions[strings.ToLower(t.MinimumTLS)] {
			l.bad("http.tls.minimumtls", "must be one of tls1.0, tls1.1, tls1.2, tls1.3 (got %q)", t.MinimumTLS)
		}
		if t.ClientAuth != "" && !clientAuthModes[t.ClientAuth] {
			l.bad("http.tls.clientauth", "must be one of request-client-cert, require-any-client-cert, verify-client-cert-if-given, require-and-verify-client-cert (got %q)", t.ClientAuth)
		}
		if le := t.LetsEncrypt; le != nil && t.Certificate == "" {
			if le.CacheFile == "" {
				l.bad("http.tls.letsencrypt.cachefile", "is required with letsencrypt")
			}
			if le.Email == "" {
				l.bad("http.tls.letsencrypt.email", "is required with letsencrypt")
			}
		}
	}
}

func (l *loader) validateAuth(c *Config) {
	a := &c.Auth
	if p := a.providers(); len(p) > 1 {
		var where []string
		for _, n := range p {
			w := "auth." + n
			if o := l.where(w).String(); o != "" {
				w += " (" + o + ")"
			}
			where = append(where, w)
		}
		l.fail(&Error{Path: "auth", Msg: "auth: at most one auth provider may be configured, got " + strings.Join(where, ", ")})
		return
	}
	if h := a.HTPasswd; h != nil && h.Path == "" {
		l.bad("auth.htpasswd.path", "is required")
	}
	if t := a.Token; t != nil {
		for _, req := range []struct{ key, val string }{{"realm", t.Realm}, {"service", t.Service}, {"issuer", t.Issuer}} {
			if req.val == "" {
				l.bad("auth.token."+req.key, "is required")
			}
		}
		if t.RootCertBundle == "" && t.JWKS == "" {
			l.bad("auth.token.rootcertbundle", "is required (or auth.token.jwks)")
		}
	}
	if s := a.Silly; s != nil {
		if s.Realm == "" {
			l.bad("auth.silly.realm", "is required")
		}
		if s.Service == "" {
			l.bad("auth.silly.service", "is required")
		}
	}
}
