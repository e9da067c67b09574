//go:build e2e

package tlstest

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/test/harness"
)

const acmeHost = "registry.berth.test"

func acmeConfig(dir, addr string, p *pebble, redirect string) string {
	extra := "berth:\n  tls:\n    acme:\n      cabundle: " + p.CAFile + "\n"
	if redirect != "" {
		extra += "    httpredirect:\n      addr: " + redirect + "\n"
	}
	return berthConfig(dir, addr, `  tls:
    letsencrypt:
      cachefile: `+filepath.Join(dir, "acme", "letsencrypt.cache")+`
      email: admin@berth.test
      hosts: [`+acmeHost+`]
      directoryurl: `+p.DirectoryURL+"\n", extra)
}

// servedSerial waits until berth serves a certificate for acmeHost that
// chains to pebble's root, and returns its serial.
func servedSerial(t *testing.T, addr string, p *pebble, not string) string {
	t.Helper()
	var serial string
	harness.WaitFor(t, 2*time.Minute, "a certificate from pebble", func() (bool, string) {
		s, err := peerSerial(addr, &tls.Config{RootCAs: p.Roots, ServerName: acmeHost})
		if err != nil {
			return false, err.Error()
		}
		serial = s
		return s != not, "still " + s
	})
	return serial
}

// registryGet does GET /v2/ on https://acmeHost:port, dialling addr.
func registryGet(t *testing.T, addr string, p *pebble) {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.Roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 15 * time.Second}).Get("https://" + acmeHost + ":" + portOf(addr) + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v2/: %s", resp.Status)
	}
}

// TestACMETLSALPN01 obtains a certificate with the TLS-ALPN-01 challenge
// (berth has no plain-HTTP listener, and pebble's HTTP-01 port is closed),
// serves it, and after a restart serves the same one from the cache file
// without a new order.
func TestACMETLSALPN01(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr, closed := freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")
	p := startPebble(t, portOf(closed), portOf(addr), 0)
	b := startBerth(t, dir, addr, acmeConfig(dir, addr, p, ""))

	serial := servedSerial(t, addr, p, "")
	registryGet(t, addr, p)
	if n := p.Issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1", n)
	}
	cache := filepath.Join(dir, "acme", "letsencrypt.cache")
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file %s: %v %v, want mode 0600", cache, fi, err)
	}

	// Stored in the cache file (a client may get it a moment before).
	harness.WaitFor(t, time.Minute, "the certificate in the cache file", func() (bool, string) {
		return strings.Contains(b.Log(), "ACME: new certificate stored"), ""
	})
	mark := len(b.Log())
	b.Restart()
	// The certificate comes from the cache file: same serial, no order.
	harness.WaitFor(t, time.Minute, "berth to load its certificate after the restart", func() (bool, string) {
		return strings.Contains(b.Log()[mark:], "ACME: certificate ready"), ""
	})
	if got := servedSerial(t, addr, p, ""); got != serial {
		t.Errorf("after restart: serial %s, want the cached %s", got, serial)
	}
	if n := p.Issued(); n != 1 {
		t.Errorf("after restart pebble has issued %d certificates, want still 1", n)
	}
	if n := strings.Count(p.Log(), "There are now 1 accounts"); n != 1 || strings.Contains(p.Log(), "There are now 2 accounts") {
		t.Errorf("the restart registered a new ACME account")
	}
}

// TestACMEHTTP01Renewal obtains a certificate with HTTP-01 on berth's
// plain-HTTP listener (pebble's TLS-ALPN-01 port is closed), and, since
// pebble issues it for 30 seconds only, sees berth renew it without a
// restart.
func TestACMEHTTP01Renewal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr, httpAddr, closed := freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")
	p := startPebble(t, portOf(httpAddr), portOf(closed), 30)
	b := startBerth(t, dir, addr, acmeConfig(dir, addr, p, httpAddr))

	first := servedSerial(t, addr, p, "")
	registryGet(t, addr, p)
	// Renewed a third of the lifetime before expiry (about 20s in).
	second := servedSerial(t, addr, p, first)
	registryGet(t, addr, p)
	if n := strings.Count(b.Log(), `msg="berth starting"`); n != 1 {
		t.Errorf("berth started %d times; the renewal must not need a restart", n)
	}
	if !strings.Contains(b.Log(), "ACME: new certificate stored") || p.Issued() < 2 {
		t.Errorf("renewal %s -> %s not logged or not issued by pebble (%d issued)", first, second, p.Issued())
	}
}
