// Package forwarded works out the URL clients used to reach berth, which
// differs from what berth sees when it runs behind a reverse proxy (nginx,
// Apache, a load balancer) that terminates TLS or listens on another host
// name or port.
//
// The API itself hands out relative URLs (or absolute ones from http.host),
// which are right behind any proxy. Absolute URLs that must be built per
// request, such as a token realm in a WWW-Authenticate challenge, come from
// ExternalURL.
package forwarded

import (
	"net"
	"net/http"
	"strings"
)

// ExternalURL returns the base URL ("scheme://host[:port]", no trailing
// slash) under which the client reached this server.
//
// If host (http.host, an absolute URL) is set it wins and is returned
// without a trailing slash. Otherwise the scheme comes from the first of:
// the RFC 7239 Forwarded header's proto, X-Forwarded-Proto, whether the
// request came over TLS. The host comes from Forwarded's host,
// X-Forwarded-Host, or the Host header, with X-Forwarded-Port added when the
// forwarded host has no port and the port is not the scheme's default. When
// a header carries a list (several proxies), the first entry, the one the
// client's proxy set, counts. Values that are not a plain host[:port] or
// http/https are ignored.
//
// Like registry:2, berth trusts these headers from any peer: a client that
// forges them only changes the URLs in the answers to itself.
func ExternalURL(r *http.Request, host string) string {
	if host != "" {
		return strings.TrimSuffix(host, "/")
	}
	scheme, fhost := fromForwarded(r.Header.Get("Forwarded"))
	if scheme == "" {
		scheme = strings.ToLower(first(r.Header.Get("X-Forwarded-Proto")))
	}
	if scheme != "http" && scheme != "https" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	h := fhost
	if !validHost(h) {
		h = first(r.Header.Get("X-Forwarded-Host"))
		if validHost(h) {
			if port := first(r.Header.Get("X-Forwarded-Port")); port != "" && !hasPort(h) && isPort(port) && !defaultPort(scheme, port) {
				h = net.JoinHostPort(strings.Trim(h, "[]"), port)
			}
		}
	}
	if !validHost(h) {
		h = r.Host
	}
	if !validHost(h) {
		h = "localhost"
	}
	return scheme + "://" + h
}

// fromForwarded parses the first element of an RFC 7239 Forwarded header:
// `for=192.0.2.1;proto=https;host=registry.example.com, for=...`.
func fromForwarded(v string) (proto, host string) {
	if v == "" {
		return "", ""
	}
	elem, _, _ := strings.Cut(v, ",")
	for _, pair := range strings.Split(elem, ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			continue
		}
		val = strings.Trim(strings.TrimSpace(val), `"`)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "proto":
			proto = strings.ToLower(val)
		case "host":
			host = val
		}
	}
	return proto, host
}

func first(v string) string {
	f, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(f)
}

// validHost accepts host, host:port, [v6] and [v6]:port, with the
// characters of DNS names and IP addresses only, so that a header cannot
// smuggle a path, user info or a second URL into the result.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	name := h
	if hasPort(h) {
		var port string
		var err error
		name, port, err = net.SplitHostPort(h)
		if err != nil || !isPort(port) {
			return false
		}
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if strings.Contains(name, ":") { // IPv6 literal
		return net.ParseIP(name) != nil && strings.HasPrefix(h, "[")
	}
	return name != "" && !strings.ContainsAny(name, "[]")
}

func hasPort(h string) bool {
	i := strings.LastIndexByte(h, ':')
	return i >= 0 && i > strings.LastIndexByte(h, ']') && (strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1)
}

func isPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n > 0 && n < 65536
}

func defaultPort(scheme, port string) bool {
	return scheme == "https" && port == "443" || scheme == "http" && port == "80"
}
