package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// Implemented lists the configuration keys berth acts on. A key counts as
// implemented if it, or a section containing it, is listed. Every other key
// present in the file or the environment is accepted (registry:2 knows it)
// but produces a warning from Warnings. Keep this table in step with the
// code that reads the Config, and with docs/configuration.md.
var Implemented = []string{
	"version",
	"loglevel", // folded into log.level
	"log.level",
	"log.formatter",
	"log.fields",
	"log.accesslog.disabled",
	"http.addr",
	"http.host",
	"http.prefix",
	"http.relativeurls",
	"http.draintimeout",
	"http.headers",
	"http.tls",   // internal/tlsconf
	"http.http2", // disabled: no h2 in TLS ALPN
	"http.debug", // pprof, expvar, Prometheus metrics
	"storage.filesystem",
	"storage.s3",
	"storage.swift",
	"storage.redirect",
	"storage.inmemory",
	"storage.delete",
	"storage.maintenance.readonly",
	"health",                            // internal/health
	"storage.maintenance.uploadpurging", // internal/server/purge.go
	"notifications",                     // internal/notify
	"auth.htpasswd",
	"auth.token",
	"berth",
}

// IsImplemented reports whether berth acts on the key at a dotted path
// (list indices such as "[0]" are ignored).
func IsImplemented(path string) bool {
	path = stripIndices(path)
	for _, imp := range Implemented {
		if path == imp || strings.HasPrefix(path, imp+".") {
			return true
		}
	}
	return false
}

// containsImplemented reports whether some implemented key lies inside the
// section at path.
func containsImplemented(path string) bool {
	for _, imp := range Implemented {
		if strings.HasPrefix(imp, path+".") {
			return true
		}
	}
	return false
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

func stripIndices(p string) string { return indexRE.ReplaceAllString(p, "") }

// unimplementedWarnings warns once per outermost key that is present and
// not implemented: "storage.s3", not each of its parameters.
func (l *loader) unimplementedWarnings() {
	warned := map[string]bool{}
	for _, p := range l.order {
		sp := stripIndices(p)
		if IsImplemented(sp) || containsImplemented(sp) {
			continue
		}
		skip := false
		for q := sp; ; {
			i := strings.LastIndexByte(q, '.')
			if i < 0 {
				break
			}
			q = q[:i]
			if warned[q] {
				skip = true
				break
			}
		}
		if skip || warned[sp] {
			continue
		}
		warned[sp] = true
		l.unimplemented = append(l.unimplemented, sp)
		switch {
		case strings.HasPrefix(sp, "storage.") && isDriver(strings.TrimPrefix(sp, "storage.")):
			l.warn(l.sources[p], "%s: the %s storage driver is not implemented by berth yet", sp, strings.TrimPrefix(sp, "storage."))
		case strings.HasPrefix(sp, "auth.") && strings.Count(sp, ".") == 1:
			l.warn(l.sources[p], "%s: the %s auth provider is not implemented by berth yet; requests are not authenticated this way", sp, strings.TrimPrefix(sp, "auth."))
		default:
			l.warn(l.sources[p], "%s: registry:2 setting not implemented by berth yet; it has no effect", sp)
		}
	}
}

// knownEnvPath reports whether the REGISTRY_-less, underscore-separated
// name segs addresses a configuration key, following the same rules as
// setPath but without a tree. It returns the dotted path.
func knownEnvPath(segs []string) (string, bool) {
	t := reflect.TypeOf(Config{})
	path := ""
	for _, seg := range segs {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if seg == "" {
			return "", false
		}
		switch {
		case t == durationType || t == sizeType:
			return "", false
		case t.Kind() == reflect.Struct:
			f, ok := fieldByEnvSegment(t, seg)
			if !ok {
				return "", false
			}
			path = joinPath(path, f.key)
			t = t.Field(f.index).Type
		case t.Kind() == reflect.Map:
			path = joinPath(path, strings.ToLower(seg))
			t = t.Elem()
		case t.Kind() == reflect.Interface:
			path = joinPath(path, strings.ToLower(seg))
		case t.Kind() == reflect.Slice:
			var i int
			if _, err := fmt.Sscanf(seg, "%d", &i); err != nil {
				return "", false
			}
			path += "[" + seg + "]"
			t = t.Elem()
		default:
			return "", false
		}
	}
	return path, path != ""
}

// envWarnings warns about variables that look like configuration but are
// not applied: "registry_auth" (distribution only reads upper-case
// REGISTRY_ names) and misspelt prefixes such as "REGISTY_HTTP_ADDR".
func (l *loader) envWarnings(environ []string) {
	seen := map[string]bool{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if seen[name] || strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		seen[name] = true
		upper := strings.ToUpper(name)
		prefix, rest, ok := strings.Cut(upper, "_")
		if !ok || rest == "" {
			continue
		}
		if prefix == "REGISTRY" {
			if _, known := knownEnvPath(strings.Split(rest, "_")); known {
				l.warnings = append(l.warnings, fmt.Sprintf(
					"%s: ignored: only upper-case REGISTRY_ variables are read (registry:2 ignores it too); rename it to %s to apply it",
					name, upper))
			}
			continue
		}
		if len(prefix) >= 6 && editDistance(prefix, "REGISTRY") <= 2 {
			if path, known := knownEnvPath(strings.Split(rest, "_")); known {
				l.warnings = append(l.warnings, fmt.Sprintf(
					"%s: ignored: the prefix is %s_, not REGISTRY_; did you mean %s (%s)?",
					name, prefix, EnvPrefix+rest, path))
			}
		}
	}
}
