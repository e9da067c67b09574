package tlsconf

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/tlsconf/tlstest"
)

func loadConfig(t *testing.T, yml string) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// bufLog returns a logger writing into the returned buffer.
func bufLog() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

type pki struct {
	dir      string
	ca       *tlstest.CA
	certFile string
	keyFile  string
	caFile   string
}

// newPKI writes a CA and a server certificate for registry.test and
// 127.0.0.1.
func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	c, k, _ := ca.Issue(t, tlstest.Leaf{CN: "registry.test", Names: []string{"registry.test", "127.0.0.1"}})
	return &pki{dir: dir, ca: ca,
		certFile: tlstest.WriteFile(t, filepath.Join(dir, "cert.pem"), c), keyFile: tlstest.WriteFile(t, filepath.Join(dir, "key.pem"), k),
		caFile: tlstest.WriteFile(t, filepath.Join(dir, "ca.pem"), ca.PEM())}
}

// serve runs an HTTPS server with conf whose handler answers with the
// client identity, and returns its address.
func serve(t *testing.T, conf *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, ok := ClientIdentity(r)
			if !ok {
				id = "-"
			}
			io.WriteString(w, r.Proto+" "+id)
		}),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.Serve(tls.NewListener(ln, conf))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func get(addr string, conf *tls.Config) (string, error) {
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/v2/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestNoTLS(t *testing.T) {
	s, err := New(loadConfig(t, "http:\n  addr: :5000\n"), quietLog())
	if s != nil || err != nil {
		t.Fatalf("New = %v, %v; want nil, nil", s, err)
	}
}

func TestConfigErrors(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		name, yml, want string
	}{
		{"tls section without certificate", "http:\n  tls:\n    minimumtls: tls1.3\n", "neither certificate"},
		{"clientcas without certificate", "http:\n  tls:\n    clientcas: [" + p.caFile + "]\n", "refusing to serve plain HTTP"},
		{"redirect without TLS", "berth:\n  tls:\n    httpredirect:\n      addr: :8080\n", "berth.tls.httpredirect.addr needs TLS"},
		{"cabundle without letsencrypt", "http:\n  tls:\n    certificate: " + p.certFile + "\n    key: " + p.keyFile + "\nberth:\n  tls:\n    acme:\n      cabundle: " + p.caFile + "\n", "berth.tls.acme.cabundle needs"},
		{"certificate and letsencrypt", "http:\n  tls:\n    certificate: " + p.certFile + "\n    key: " + p.keyFile + "\n    letsencrypt:\n      cachefile: " + p.dir + "/c\n      email: a@b.c\n", "both set"},
		{"unknown cipher", "http:\n  tls:\n    certificate: " + p.certFile + "\n    key: " + p.keyFile + "\n    ciphersuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_FOO]\n", `http.tls.ciphersuites[1]: unknown cipher suite "TLS_FOO"`},
		{"missing certificate file", "http:\n  tls:\n    certificate: " + p.dir + "/nope.pem\n    key: " + p.keyFile + "\n", "http.tls.certificate: stat"},
		{"key does not match", "http:\n  tls:\n    certificate: " + p.certFile + "\n    key: " + p.caFile + "\n", "http.tls.key " + p.caFile},
		{"bad client CA file", "http:\n  tls:\n    certificate: " + p.certFile + "\n    key: " + p.keyFile + "\n    clientcas: [" + p.keyFile + "]\n", "http.tls.clientcas[0]: no PEM certificates"},
		{"wildcard ACME host", "http:\n  tls:\n    letsencrypt:\n      cachefile: " + p.dir + "/c\n      email: a@b.c\n      hosts: ['*.example.com']\n", "wildcard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(loadConfig(t, tc.yml), quietLog())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCertificateChecksAtStartup(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	expC, expK, _ := ca.Issue(t, tlstest.Leaf{CN: "registry.test", Names: []string{"registry.test"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	futC, futK, _ := ca.Issue(t, tlstest.Leaf{CN: "registry.test", Names: []string{"registry.test"},
		NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(48 * time.Hour)})
	okC, okK, _ := ca.Issue(t, tlstest.Leaf{CN: "registry.test", Names: []string{"registry.test"}})
	files := func(name string, c, k []byte) string {
		return "    certificate: " + tlstest.WriteFile(t, filepath.Join(dir, name+".crt"), c) + "\n    key: " + tlstest.WriteFile(t, filepath.Join(dir, name+".key"), k) + "\n"
	}
	for _, tc := range []struct {
		name, yml, want string
	}{
		{"expired", "http:\n  tls:\n" + files("exp", expC, expK), "certificate for registry.test expired on"},
		{"not yet valid", "http:\n  tls:\n" + files("fut", futC, futK), "not valid before"},
		{"wrong host", "http:\n  host: https://other.example.com:5000\n  tls:\n" + files("ok", okC, okK), "certificate is for registry.test, not for other.example.com (the host of http.host)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(loadConfig(t, tc.yml), quietLog())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v; want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := New(loadConfig(t, "http:\n  host: https://registry.test\n  tls:\n"+files("ok", okC, okK)), quietLog()); err != nil {
		t.Errorf("matching host: %v", err)
	}
}

func TestVersionsAndCiphers(t *testing.T) {
	if v, err := MinVersion(""); err != nil || v != tls.VersionTLS12 {
		t.Errorf("default min version = %x, %v", v, err)
	}
	for name, want := range map[string]uint16{"tls1.0": tls.VersionTLS10, "TLS1.1": tls.VersionTLS11, "tls1.3": tls.VersionTLS13} {
		if v, err := MinVersion(name); err != nil || v != want {
			t.Errorf("MinVersion(%q) = %x, %v", name, v, err)
		}
	}
	if _, err := MinVersion("ssl3"); err == nil {
		t.Error("ssl3 accepted")
	}
	ids, insecure, err := CipherSuites([]string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA256"})
	if err != nil || len(ids) != 2 || ids[0] != tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 || len(insecure) != 1 {
		t.Errorf("CipherSuites = %x, %q, %v", ids, insecure, err)
	}
	// Every name in registry:2's documentation is known.
	for _, n := range []string{"TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA",
		"TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256",
		"TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
		"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_RC4_128_SHA", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
		"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
		"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
		"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
		"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"} {
		if _, _, err := CipherSuites([]string{n}); err != nil {
			t.Error(err)
		}
	}
}

func TestHandshakes(t *testing.T) {
	p := newPKI(t)
	base := "http:\n  tls:\n    certificate: " + p.certFile + "\n    key: " + p.keyFile + "\n"
	s, err := New(loadConfig(t, base), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.Config)
	client := func(min, max uint16) *tls.Config {
		return &tls.Config{RootCAs: p.ca.Pool(), ServerName: "registry.test", MinVersion: min, MaxVersion: max}
	}
	if body, err := get(addr, client(0, 0)); err != nil || body != "HTTP/2.0 -" {
		t.Errorf("TLS 1.3 client: %q, %v", body, err)
	}
	if _, err := get(addr, client(tls.VersionTLS12, tls.VersionTLS12)); err != nil {
		t.Errorf("TLS 1.2 client: %v", err)
	}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		_, err := get(addr, client(v, v))
		if err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("TLS %x client: %v; want a protocol version error", v, err)
		}
	}
	// Connecting by IP address works too: the certificate has the IP.
	if _, err := get(addr, &tls.Config{RootCAs: p.ca.Pool()}); err != nil {
		t.Errorf("by IP: %v", err)
	}

	// minimumtls: tls1.3 refuses TLS 1.2.
	s13, err := New(loadConfig(t, base+"    minimumtls: tls1.3\n"), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	addr13 := serve(t, s13.Config)
	if _, err := get(addr13, client(tls.VersionTLS12, tls.VersionTLS12)); err == nil {
		t.Error("minimumtls tls1.3 accepted TLS 1.2")
	}
	// http2.disabled leaves h2 out of ALPN.
	sh1, err := New(loadConfig(t, strings.Replace(base, "http:\n", "http:\n  http2:\n    disabled: true\n", 1)), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if body, err := get(serve(t, sh1.Config), client(0, 0)); err != nil || body != "HTTP/1.1 -" {
		t.Errorf("http2 disabled: %q, %v", body, err)
	}
}

func TestClientCertificates(t *testing.T) {
	p := newPKI(t)
	clientCA := tlstest.NewCA(t, "client CA")
	otherCA := tlstest.NewCA(t, "other CA")
	caFile := tlstest.WriteFile(t, filepath.Join(p.dir, "clients.pem"), clientCA.PEM())
	base := "http:\n  tls:\n    certificate: " + p.certFile + "\n    key: " + p.keyFile + "\n    clientcas: [" + caFile + "]\n"
	s, err := New(loadConfig(t, base), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if s.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("default client auth = %v", s.ClientAuth)
	}
	addr := serve(t, s.Config)
	// GetClientCertificate sends the certificate even when its issuer is
	// not among the CAs the server names (Go's client would send none).
	conf := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: p.ca.Pool(), ServerName: "registry.test",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if len(certs) == 0 {
					return &tls.Certificate{}, nil
				}
				return &certs[0], nil
			}}
	}
	if body, err := get(addr, conf(clientCA.ClientCert(t, "ci-robot"))); err != nil || body != "HTTP/2.0 ci-robot" {
		t.Errorf("good client certificate: %q, %v", body, err)
	}
	if _, err := get(addr, conf()); err == nil {
		t.Error("no client certificate accepted")
	}
	if _, err := get(addr, conf(otherCA.ClientCert(t, "mallory"))); err == nil {
		t.Error("client certificate from another CA accepted")
	}

	// verify-client-cert-if-given: anonymous allowed, a given one verified.
	s2, err := New(loadConfig(t, base+"    clientauth: verify-client-cert-if-given\n"), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	addr2 := serve(t, s2.Config)
	if body, err := get(addr2, conf()); err != nil || body != "HTTP/2.0 -" {
		t.Errorf("optional, none given: %q, %v", body, err)
	}
	if _, err := get(addr2, conf(otherCA.ClientCert(t, "mallory"))); err == nil {
		t.Error("optional: certificate from another CA accepted")
	}
	// request-client-cert does not verify, so there is no identity.
	s3, err := New(loadConfig(t, base+"    clientauth: request-client-cert\n"), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if body, err := get(serve(t, s3.Config), conf(otherCA.ClientCert(t, "mallory"))); err != nil || body != "HTTP/2.0 -" {
		t.Errorf("unverified certificate gave an identity: %q, %v", body, err)
	}
}

func TestCertificateReload(t *testing.T) {
	p := newPKI(t)
	logger, logs := bufLog()
	kp, err := newKeyPair(p.certFile, p.keyFile, "", logger)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	kp.now = func() time.Time { return now }
	serial := func() string {
		c, err := kp.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.String()
	}
	first := serial()

	c2, k2, s2 := p.ca.Issue(t, tlstest.Leaf{CN: "registry.test", Names: []string{"registry.test"}})
	tlstest.ReplaceFile(t, p.certFile, c2)
	tlstest.ReplaceFile(t, p.keyFile, k2)
	if got := serial(); got != first {
		t.Errorf("reloaded before the check interval passed")
	}
	now = now.Add(reloadCheckInterval)
	if got := serial(); got != s2.String() {
		t.Errorf("serial after replacing the files = %s, want %s", got, s2)
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("no reload logged:\n%s", logs)
	}

	// A half-done update (new certificate, old key) keeps the current pair,
	// logs once, and is picked up once the key arrives.
	c3, k3, s3 := p.ca.Issue(t, tlstest.Leaf{CN: "registry.test", Names: []string{"registry.test"}})
	tlstest.ReplaceFile(t, p.certFile, c3)
	now = now.Add(reloadCheckInterval)
	if got := serial(); got != s2.String() {
		t.Errorf("serial with mismatched files = %s, want the previous %s", got, s2)
	}
	now = now.Add(reloadCheckInterval)
	serial()
	if n := strings.Count(logs.String(), "cannot be used"); n != 1 {
		t.Errorf("mismatch logged %d times, want once:\n%s", n, logs)
	}
	tlstest.ReplaceFile(t, p.keyFile, k3)
	now = now.Add(reloadCheckInterval)
	if got := serial(); got != s3.String() {
		t.Errorf("serial after the key arrived = %s, want %s", got, s3)
	}

	// Deleted files: keep serving.
	os.Remove(p.certFile)
	now = now.Add(reloadCheckInterval)
	if got := serial(); got != s3.String() {
		t.Errorf("serial after deleting the files = %s", got)
	}
}

// TestReloadOverTheWire replaces the files under a running listener.
func TestReloadOverTheWire(t *testing.T) {
	p := newPKI(t)
	s, err := New(loadConfig(t, "http:\n  tls:\n    certificate: "+p.certFile+"\n    key: "+p.keyFile+"\n"), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.Config)
	peerSerial := func() string {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.ca.Pool(), ServerName: "registry.test"})
		if err != nil {
			return "error: " + err.Error()
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := peerSerial()
	c2, k2, s2 := p.ca.Issue(t, tlstest.Leaf{CN: "registry.test", Names: []string{"registry.test"}})
	tlstest.ReplaceFile(t, p.keyFile, k2)
	tlstest.ReplaceFile(t, p.certFile, c2)
	deadline := time.Now().Add(10 * time.Second)
	for got := peerSerial(); got != s2.String(); got = peerSerial() {
		if time.Now().After(deadline) {
			t.Fatalf("still serving %s (was %s), want %s", got, before, s2)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

func TestRedirect(t *testing.T) {
	p := newPKI(t)
	cfg := loadConfig(t, "http:\n  addr: :5443\n  tls:\n    certificate: "+p.certFile+"\n    key: "+p.keyFile+"\nberth:\n  tls:\n    httpredirect:\n      addr: :8080\n")
	s, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if s.RedirectAddr != ":8080" || s.RedirectHandler == nil {
		t.Fatalf("redirect = %q %v", s.RedirectAddr, s.RedirectHandler)
	}
	for _, tc := range []struct{ method, host, target, want string }{
		{"GET", "registry.test:8080", "/v2/_catalog?n=1", "https://registry.test:5443/v2/_catalog?n=1"},
		{"PUT", "[::1]:8080", "/v2/", "https://[::1]:5443/v2/"},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(tc.method, "http://"+tc.host+tc.target, nil)
		s.RedirectHandler.ServeHTTP(w, r)
		if w.Code != http.StatusPermanentRedirect || w.Header().Get("Location") != tc.want {
			t.Errorf("%s %s: %d %q, want 308 %q", tc.method, tc.host, w.Code, w.Header().Get("Location"), tc.want)
		}
	}
	// With http.host, the redirect goes there, port 443 implied.
	cfg.HTTP.Host = "https://registry.test"
	cfg.HTTP.Addr = ":443"
	s, err = New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	s.RedirectHandler.ServeHTTP(w, httptest.NewRequest("GET", "http://10.0.0.1/v2/", nil))
	if loc := w.Header().Get("Location"); loc != "https://registry.test/v2/" {
		t.Errorf("Location = %q", loc)
	}
}

func TestFileCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "acme.json")
	c, err := OpenFileCache(path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "a"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Errorf("Get on empty cache: %v", err)
	}
	if err := c.Put(ctx, "acme_account+key", []byte("KEY")); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "registry.test", []byte("CERT\x00\xff")); err != nil {
		t.Fatal(err)
	}
	// Another instance (a restart, a second process) sees it.
	c2, err := OpenFileCache(path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c2.Get(ctx, "registry.test"); err != nil || string(v) != "CERT\x00\xff" {
		t.Errorf("Get = %q, %v", v, err)
	}
	if err := c2.Delete(ctx, "registry.test"); err != nil {
		t.Fatal(err)
	}
	if err := c2.Delete(ctx, "never-there"); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
	if _, err := c.Get(ctx, "registry.test"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Errorf("Get after Delete: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode())
	}
	var d struct {
		Format  string
		Entries map[string][]byte
	}
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &d); err != nil || d.Format != cacheFormat || string(d.Entries["acme_account+key"]) != "KEY" {
		t.Errorf("file = %s (%v)", data, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestFileCacheForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "letsencrypt.json")
	// What registry:2 (rsc.io/letsencrypt) leaves behind.
	old := `{"Email":"a@b.c","Reg":null,"Key":"-----BEGIN EC PRIVATE KEY-----\n...","Certs":{}}`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	logger, logs := bufLog()
	c, err := OpenFileCache(path, logger)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path + ".registry2"); string(got) != old {
		t.Errorf("old file not kept aside: %q", got)
	}
	if !strings.Contains(logs.String(), "moved it aside") {
		t.Errorf("no warning: %s", logs)
	}
	if err := c.Put(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}

func TestACMESetup(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ACME server CA")
	bundle := tlstest.WriteFile(t, filepath.Join(dir, "bundle.pem"), ca.PEM())
	cfg := loadConfig(t, `http:
  addr: :443
  tls:
    clientcas: [`+bundle+`]
    letsencrypt:
      cachefile: `+dir+`/acme.json
      email: admin@example.com
      hosts: [Registry.Example.com.]
      directoryurl: https://127.0.0.1:14000/dir
berth:
  tls:
    httpredirect:
      addr: :80
    acme:
      cabundle: `+bundle+`
`)
	s, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode != "acme" || s.acme.hosts[0] != "registry.example.com" || s.acme.m.Client.DirectoryURL != "https://127.0.0.1:14000/dir" {
		t.Errorf("setup = %+v %+v", s, s.acme)
	}
	if !strings.Contains(strings.Join(s.Config.NextProtos, ","), "acme-tls/1") {
		t.Errorf("NextProtos = %q", s.Config.NextProtos)
	}
	// The CA's TLS-ALPN-01 validation carries no client certificate.
	c, err := s.Config.GetConfigForClient(&tls.ClientHelloInfo{SupportedProtos: []string{"acme-tls/1"}})
	if err != nil || c == nil || c.ClientAuth != tls.NoClientCert {
		t.Errorf("config for acme-tls/1 = %+v, %v", c, err)
	}
	if c, _ := s.Config.GetConfigForClient(&tls.ClientHelloInfo{SupportedProtos: []string{"h2", "http/1.1"}}); c != nil {
		t.Errorf("ordinary clients get a different config")
	}
	// The redirect listener answers HTTP-01 challenges (404 for an unknown
	// token, from autocert) and redirects the rest.
	w := httptest.NewRecorder()
	s.RedirectHandler.ServeHTTP(w, httptest.NewRequest("GET", "http://registry.example.com/.well-known/acme-challenge/x", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("unknown challenge token: %d", w.Code)
	}
	// A CA validating on another port sends Host with the port; the host
	// policy still sees just the name (403 would mean it did not).
	w = httptest.NewRecorder()
	s.RedirectHandler.ServeHTTP(w, httptest.NewRequest("GET", "http://registry.example.com:5002/.well-known/acme-challenge/x", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("challenge with a port in Host: %d", w.Code)
	}
	w = httptest.NewRecorder()
	s.RedirectHandler.ServeHTTP(w, httptest.NewRequest("GET", "http://other.example.com/.well-known/acme-challenge/x", nil))
	if w.Code != http.StatusForbidden {
		t.Errorf("challenge for a host not in hosts: %d", w.Code)
	}
	w = httptest.NewRecorder()
	s.RedirectHandler.ServeHTTP(w, httptest.NewRequest("GET", "http://registry.example.com/v2/", nil))
	if u, _ := url.Parse(w.Header().Get("Location")); u == nil || u.String() != "https://registry.example.com/v2/" {
		t.Errorf("redirect = %d %q", w.Code, w.Header().Get("Location"))
	}
	// The cache file exists from the start, private.
	if fi, err := os.Stat(filepath.Join(dir, "acme.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file: %v %v", fi, err)
	}
}

// TestACMEExpiryWarning: a certificate in the last sixth of its lifetime
// (its renewal has been failing) is reported.
func TestACMEExpiryWarning(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ACME CA")
	certPEM, keyPEM, _ := ca.Issue(t, tlstest.Leaf{CN: "registry.test", Names: []string{"registry.test"},
		NotBefore: time.Now().Add(-50 * time.Hour), NotAfter: time.Now().Add(10 * time.Hour)})
	cache, err := OpenFileCache(filepath.Join(dir, "acme.json"), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Put(context.Background(), "registry.test", append(keyPEM, certPEM...)); err != nil {
		t.Fatal(err)
	}
	logger, logs := bufLog()
	// Loading the certificate arms autocert's renewal timer. RenewBefore is
	// shorter than the certificate's remaining life, so it does not fire
	// during the test, and the client points at a closed loopback port, so
	// no renewal could ever leave this machine (or write into dir after the
	// test).
	a := &acmeSource{m: &autocert.Manager{Cache: cache, Prompt: autocert.AcceptTOS, HostPolicy: autocert.HostWhitelist("registry.test"),
		RenewBefore: time.Hour, Client: &acme.Client{DirectoryURL: "http://127.0.0.1:1/directory"}},
		hosts: []string{"registry.test"}, log: logger}
	a.checkExpiry("registry.test", time.Now().Add(-2*time.Hour)) // 12h of 60h left: fine
	if strings.Contains(logs.String(), "expires soon") {
		t.Errorf("warned too early:\n%s", logs)
	}
	a.checkExpiry("registry.test", time.Now()) // 10h of 60h left
	if !strings.Contains(logs.String(), "ACME: certificate expires soon and has not been renewed") {
		t.Errorf("no warning:\n%s", logs)
	}
}
