package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/berth-registry/berth/internal/config"
)

// acmeSource obtains and renews certificates over ACME (Let's Encrypt or
// any RFC 8555 server) with golang.org/x/crypto/acme/autocert: TLS-ALPN-01
// on the TLS listener, HTTP-01 on the plain-HTTP listener when there is one
// (berth.tls.httpredirect.addr). Certificates and the account key live in
// the cache file, so a restart reuses them; autocert renews each
// certificate in the background before it expires (a third of its lifetime
// before, at most 30 days), and the next handshake gets the new one.
type acmeSource struct {
	m     *autocert.Manager
	hosts []string
	log   *slog.Logger
}

func newACME(le *config.LetsEncrypt, bcfg config.BerthACME, fallbackHost string, log *slog.Logger) (*acmeSource, error) {
	var hosts []string
	for i, h := range le.Hosts {
		h = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), "."))
		switch {
		case h == "":
			return nil, fmt.Errorf("http.tls.letsencrypt.hosts[%d]: empty host name", i)
		case strings.Contains(h, "*"):
			return nil, fmt.Errorf("http.tls.letsencrypt.hosts[%d]: %q: wildcard certificates need the DNS-01 challenge, which berth does not do", i, h)
		case strings.ContainsAny(h, ":/ "):
			return nil, fmt.Errorf("http.tls.letsencrypt.hosts[%d]: %q is not a host name", i, h)
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 && fallbackHost != "" {
		hosts = []string{fallbackHost}
		log.Info("http.tls.letsencrypt.hosts is empty; obtaining a certificate for the host of http.host only", "host", fallbackHost)
	}
	if len(hosts) == 0 {
		log.Warn("http.tls.letsencrypt.hosts is empty: a certificate is requested for any name a client asks for; list the registry's names there")
	}
	cache, err := OpenFileCache(le.CacheFile, log)
	if err != nil {
		return nil, fmt.Errorf("http.tls.letsencrypt.cachefile: %w", err)
	}
	client := &acme.Client{DirectoryURL: le.DirectoryURL, UserAgent: "berth"}
	if client.DirectoryURL == "" {
		client.DirectoryURL = autocert.DefaultACMEDirectory
	}
	if bcfg.CABundle != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(bcfg.CABundle)
		if err != nil {
			return nil, fmt.Errorf("berth.tls.acme.cabundle: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("berth.tls.acme.cabundle: no PEM certificates in %s", bcfg.CABundle)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		client.HTTPClient = &http.Client{Transport: tr}
	}
	m := &autocert.Manager{
		Prompt: autocert.AcceptTOS,
		Cache:  &loggingCache{Cache: cache, log: log},
		Email:  le.Email,
		Client: client,
	}
	if len(hosts) > 0 {
		m.HostPolicy = autocert.HostWhitelist(hosts...)
	}
	log.Info("ACME certificates", "directory", client.DirectoryURL, "hosts", hosts, "cachefile", le.CacheFile)
	return &acmeSource{m: m, hosts: hosts, log: log}, nil
}

// GetCertificate is autocert's, except that a client sending no server
// name (connecting by IP address) gets the first configured host's
// certificate instead of a failed handshake.
func (a *acmeSource) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" && len(a.hosts) > 0 {
		h := *hello
		h.ServerName = a.hosts[0]
		hello = &h
	}
	return a.m.GetCertificate(hello)
}

// helloFor is a ClientHelloInfo asking for the ECDSA certificate every
// current client takes.
func helloFor(host string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:        host,
		CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:   []tls.CurveID{tls.CurveP256},
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
	}
}

// expiryCheckInterval is how often the certificates are checked for a
// renewal that should have happened and did not.
const expiryCheckInterval = time.Hour

// prefetch obtains (or loads from the cache) a certificate for every
// configured host now, in the background, rather than at the first
// handshake; it also starts their renewal timers. Call it once the TLS
// listener accepts connections, since the TLS-ALPN-01 challenge arrives
// there. Until ctx ends it then checks every hour that no certificate is
// close to expiry: autocert retries failed renewals quietly, so that is
// where a CA that can no longer reach berth shows up.
func (a *acmeSource) prefetch(ctx context.Context) {
	for _, h := range a.hosts {
		go func() {
			start := time.Now()
			cert, err := a.m.GetCertificate(helloFor(h))
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				a.log.Error("ACME: no certificate yet; retrying at the next handshake for this name", "host", h, "err", err)
			} else if leaf := cert.Leaf; leaf != nil {
				a.log.Info("ACME: certificate ready", append([]any{"host", h, "took", time.Since(start).Round(time.Millisecond)}, certAttrs(leaf, "")...)...)
			}
			tick := time.NewTicker(expiryCheckInterval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				a.checkExpiry(h, time.Now())
			}
		}()
	}
}

// checkExpiry warns when host's certificate is in the last sixth of its
// lifetime: renewal starts at the last third, so it has been failing.
func (a *acmeSource) checkExpiry(host string, now time.Time) {
	cert, err := a.m.GetCertificate(helloFor(host))
	if err != nil {
		a.log.Error("ACME: no certificate", "host", host, "err", err)
		return
	}
	leaf := cert.Leaf
	if leaf == nil {
		return
	}
	if left := leaf.NotAfter.Sub(now); left < leaf.NotAfter.Sub(leaf.NotBefore)/6 {
		a.log.Warn("ACME: certificate expires soon and has not been renewed; check that the CA reaches this server on port 443 (TLS-ALPN-01) or 80 (HTTP-01, berth.tls.httpredirect.addr)",
			append([]any{"host", host, "left", left.Round(time.Minute)}, certAttrs(leaf, "")...)...)
	}
}

// loggingCache logs every certificate autocert stores: the first one for a
// name and each renewal.
type loggingCache struct {
	autocert.Cache
	log *slog.Logger
}

func (c *loggingCache) Put(ctx context.Context, key string, data []byte) error {
	err := c.Cache.Put(ctx, key, data)
	if strings.Contains(key, "+") && !strings.HasSuffix(key, "+rsa") {
		return err // account key, challenge tokens
	}
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if leaf, perr := x509.ParseCertificate(b.Bytes); perr == nil {
			attrs := append([]any{"key", key}, certAttrs(leaf, "")...)
			if err != nil {
				c.log.Error("ACME: new certificate could not be saved to the cache file", append(attrs, "err", err)...)
			} else {
				c.log.Info("ACME: new certificate stored", attrs...)
			}
		}
		break
	}
	return err
}
