// Package tlsconf builds what berth needs to serve HTTPS itself, without a
// proxy in front, from registry:2's http.tls section and berth's berth.tls:
//
//   - a certificate and key from files (http.tls.certificate, .key),
//     re-read when the files change, without a restart;
//   - or certificates obtained and renewed over ACME
//     (http.tls.letsencrypt: Let's Encrypt or any RFC 8555 CA, TLS-ALPN-01
//     and HTTP-01 challenges, state kept in the cache file);
//   - TLS 1.2 or later by default (http.tls.minimumtls), registry:2's cipher
//     suite names (http.tls.ciphersuites);
//   - client certificate authentication (http.tls.clientcas, .clientauth);
//     ClientIdentity gives the verified certificate's name to access control;
//   - an optional plain-HTTP listener (berth.tls.httpredirect.addr) that
//     answers HTTP-01 challenges and redirects everything else to HTTPS.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/acme"

	"github.com/berth-registry/berth/internal/config"
)

// Setup is berth's TLS: the listener's tls.Config and, optionally, the
// plain-HTTP listener beside it.
type Setup struct {
	// Config is for tls.NewListener on http.addr.
	Config *tls.Config
	// RedirectAddr is berth.tls.httpredirect.addr: where to listen for
	// plain HTTP, or "" for no such listener.
	RedirectAddr string
	// RedirectHandler serves RedirectAddr: ACME HTTP-01 challenges, and a
	// redirect to HTTPS for everything else.
	RedirectHandler http.Handler
	// Mode is "files" (certificate and key files) or "acme".
	Mode string
	// ClientAuth reports whether client certificates are verified.
	ClientAuth tls.ClientAuthType

	acme *acmeSource
}

// New builds the TLS setup from cfg. It returns nil and no error when TLS
// is not configured (berth serves plain HTTP, as registry:2 does). Errors
// name the configuration key at fault and stop start-up: unreadable,
// mismatched, expired or wrong-host certificate files, unknown cipher
// suites, unreadable client CAs.
func New(cfg *config.Config, log *slog.Logger) (*Setup, error) {
	if log == nil {
		log = slog.Default()
	}
	t, b := cfg.HTTP.TLS, cfg.Berth.TLS
	files := t != nil && t.Certificate != ""
	le := t != nil && t.LetsEncrypt != nil && t.LetsEncrypt.CacheFile != ""
	if !files && !le {
		if t != nil && (t.Key != "" || len(t.ClientCAs) > 0 || t.ClientAuth != "" || t.MinimumTLS != "" || len(t.CipherSuites) > 0 || t.LetsEncrypt != nil) {
			return nil, fmt.Errorf("http.tls is set but has neither certificate and key nor letsencrypt.cachefile; refusing to serve plain HTTP")
		}
		if b.HTTPRedirect.Addr != "" {
			return nil, fmt.Errorf("berth.tls.httpredirect.addr needs TLS (http.tls.certificate or http.tls.letsencrypt)")
		}
		if b.ACME.CABundle != "" {
			return nil, fmt.Errorf("berth.tls.acme.cabundle needs http.tls.letsencrypt")
		}
		return nil, nil
	}
	if files && le {
		return nil, fmt.Errorf("http.tls.certificate and http.tls.letsencrypt.cachefile are both set: use one or the other (registry:2 refuses this too)")
	}
	if b.ACME.CABundle != "" && !le {
		return nil, fmt.Errorf("berth.tls.acme.cabundle needs http.tls.letsencrypt")
	}

	min, err := MinVersion(t.MinimumTLS)
	if err != nil {
		return nil, err
	}
	suites, insecure, err := CipherSuites(t.CipherSuites)
	if err != nil {
		return nil, err
	}
	if len(insecure) > 0 {
		log.Warn("http.tls.ciphersuites enables cipher suites with known weaknesses", "suites", insecure)
	}
	conf := &tls.Config{
		MinVersion:   min,
		CipherSuites: suites,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if cfg.HTTP.HTTP2.Disabled {
		conf.NextProtos = []string{"http/1.1"}
	}
	host := hostOf(cfg.HTTP.Host)
	s := &Setup{Config: conf}
	if files {
		s.Mode = "files"
		kp, err := newKeyPair(t.Certificate, t.Key, host, log)
		if err != nil {
			return nil, err
		}
		conf.GetCertificate = kp.GetCertificate
	} else {
		s.Mode = "acme"
		a, err := newACME(t.LetsEncrypt, b.ACME, host, log)
		if err != nil {
			return nil, err
		}
		s.acme = a
		conf.GetCertificate = a.GetCertificate
		conf.NextProtos = append(conf.NextProtos, acme.ALPNProto)
	}

	if len(t.ClientCAs) > 0 {
		pool := x509.NewCertPool()
		for i, f := range t.ClientCAs {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("http.tls.clientcas[%d]: %w", i, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("http.tls.clientcas[%d]: no PEM certificates in %s", i, f)
			}
		}
		mode, err := clientAuthMode(t.ClientAuth)
		if err != nil {
			return nil, err
		}
		conf.ClientCAs, conf.ClientAuth = pool, mode
		s.ClientAuth = mode
		modeName := t.ClientAuth
		if modeName == "" {
			modeName = "require-and-verify-client-cert"
		}
		log.Info("TLS client certificates", "mode", modeName, "clientcas", t.ClientCAs)
		if s.acme != nil {
			// The CA's TLS-ALPN-01 validation has no client certificate.
			noClientAuth := conf.Clone()
			noClientAuth.ClientAuth, noClientAuth.ClientCAs = tls.NoClientCert, nil
			noClientAuth.NextProtos = []string{acme.ALPNProto}
			conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
				if slices.Equal(hello.SupportedProtos, []string{acme.ALPNProto}) {
					return noClientAuth, nil
				}
				return nil, nil
			}
		}
	} else if t.ClientAuth != "" {
		log.Warn("http.tls.clientauth has no effect without http.tls.clientcas")
	}

	if addr := b.HTTPRedirect.Addr; addr != "" {
		s.RedirectAddr = addr
		var target *url.URL
		if u, err := url.Parse(cfg.HTTP.Host); err == nil && u.Scheme == "https" && u.Host != "" {
			target = u
		}
		_, port, _ := net.SplitHostPort(cfg.HTTP.Addr)
		var h http.Handler = redirectToHTTPS(target, port)
		if s.acme != nil {
			h = hostWithoutPort(s.acme.m.HTTPHandler(h)) // also enables the HTTP-01 challenge
		}
		s.RedirectHandler = h
	}
	return s, nil
}

// Started is called once the TLS listener accepts connections: with ACME,
// certificates for the configured hosts are obtained now, in the
// background, instead of at the first handshake.
func (s *Setup) Started(ctx context.Context) {
	if s != nil && s.acme != nil {
		s.acme.prefetch(ctx)
	}
}

func hostOf(hostURL string) string {
	if hostURL == "" {
		return ""
	}
	u, err := url.Parse(hostURL)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// TLS versions by registry:2's names.
var tlsVersions = map[string]uint16{
	"tls1.0": tls.VersionTLS10,
	"tls1.1": tls.VersionTLS11,
	"tls1.2": tls.VersionTLS12,
	"tls1.3": tls.VersionTLS13,
}

// MinVersion maps http.tls.minimumtls (tls1.0 ... tls1.3; empty means
// tls1.2, registry:2's default) to a crypto/tls version.
func MinVersion(name string) (uint16, error) {
	if name == "" {
		return tls.VersionTLS12, nil
	}
	v, ok := tlsVersions[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return 0, fmt.Errorf("http.tls.minimumtls: must be one of tls1.0, tls1.1, tls1.2, tls1.3 (got %q)", name)
	}
	return v, nil
}

// defaultCipherSuites are registry:2's defaults for TLS 1.0-1.2 (TLS 1.3
// suites are not configurable in Go; all three are always on).
var defaultCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
}

// CipherSuites maps http.tls.ciphersuites, by the names registry:2 uses
// (Go's, such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256), to suite ids.
// Empty means registry:2's default list. TLS 1.3 names are accepted and
// have no effect (Go always enables the three TLS 1.3 suites). insecure
// lists the names given that Go considers weak (RC4, 3DES, CBC-SHA256, RSA
// key exchange).
func CipherSuites(names []string) (ids []uint16, insecure []string, err error) {
	if len(names) == 0 {
		return slices.Clone(defaultCipherSuites), nil, nil
	}
	type suite struct {
		id       uint16
		tls13    bool
		insecure bool
	}
	known := map[string]suite{}
	for _, cs := range tls.CipherSuites() {
		known[cs.Name] = suite{id: cs.ID, tls13: slices.Equal(cs.SupportedVersions, []uint16{tls.VersionTLS13})}
	}
	for _, cs := range tls.InsecureCipherSuites() {
		known[cs.Name] = suite{id: cs.ID, tls13: slices.Equal(cs.SupportedVersions, []uint16{tls.VersionTLS13}), insecure: true}
	}
	for i, n := range names {
		cs, ok := known[strings.ToUpper(strings.TrimSpace(n))]
		if !ok {
			return nil, nil, fmt.Errorf("http.tls.ciphersuites[%d]: unknown cipher suite %q", i, n)
		}
		if cs.insecure {
			insecure = append(insecure, n)
		}
		if !cs.tls13 && !slices.Contains(ids, cs.id) {
			ids = append(ids, cs.id)
		}
	}
	if len(ids) == 0 {
		// Only TLS 1.3 suites named: TLS 1.2 clients get the defaults.
		ids = slices.Clone(defaultCipherSuites)
	}
	return ids, insecure, nil
}

// clientAuthMode maps http.tls.clientauth (distribution 3's names) to a
// crypto/tls mode. Empty means require-and-verify-client-cert, registry:2's
// only behaviour when clientcas is set.
func clientAuthMode(name string) (tls.ClientAuthType, error) {
	switch name {
	case "", "require-and-verify-client-cert":
		return tls.RequireAndVerifyClientCert, nil
	case "verify-client-cert-if-given":
		return tls.VerifyClientCertIfGiven, nil
	case "require-any-client-cert":
		return tls.RequireAnyClientCert, nil
	case "request-client-cert":
		return tls.RequestClientCert, nil
	}
	return 0, fmt.Errorf("http.tls.clientauth: must be one of request-client-cert, require-any-client-cert, verify-client-cert-if-given, require-and-verify-client-cert (got %q)", name)
}

// hostWithoutPort removes the port from the Host of ACME HTTP-01 challenge
// requests before autocert checks it against the allowed hosts: a CA
// validating on a port other than 80 (or a proxy forwarding to this
// listener) sends "name:port", and the challenge is for "name".
func hostWithoutPort(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			if h, _, err := net.SplitHostPort(r.Host); err == nil {
				r = r.Clone(r.Context())
				r.Host = h
			}
		}
		next.ServeHTTP(w, r)
	})
}

// redirectToHTTPS answers plain-HTTP requests with a permanent redirect to
// the same path over HTTPS: on target's host if set (http.host), otherwise
// on the request's host name with the TLS listener's port (omitted when 443).
func redirectToHTTPS(target *url.URL, tlsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := ""
		if target != nil {
			host = target.Host
		} else {
			host = r.Host
			if h, _, err := net.SplitHostPort(r.Host); err == nil {
				host = h
			}
			host = strings.Trim(host, "[]")
			if host == "" || strings.ContainsAny(host, "/@?#") {
				http.Error(w, "use HTTPS", http.StatusBadRequest)
				return
			}
			if tlsPort != "" && tlsPort != "443" {
				host = net.JoinHostPort(host, tlsPort)
			} else if strings.Contains(host, ":") {
				host = "[" + host + "]"
			}
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}
