package tlstest

import (
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	testca "github.com/berth-registry/berth/internal/tlsconf/tlstest"
	"github.com/berth-registry/berth/test/harness"
)

// filesSetup writes a CA and a server certificate for registry.test and
// 127.0.0.1, and returns the http.tls lines for them.
func filesSetup(t *testing.T, dir string) (*testca.CA, string, string, string) {
	t.Helper()
	c := testca.NewCA(t, "berth test CA")
	cp, kp, sn := c.Issue(t, testca.Leaf{CN: "registry.test", Names: []string{"registry.test", "127.0.0.1"}})
	certFile := testca.WriteFile(t, filepath.Join(dir, "tls", "cert.pem"), cp)
	keyFile := testca.WriteFile(t, filepath.Join(dir, "tls", "key.pem"), kp)
	return c, certFile, keyFile, sn.String()
}

func tlsLines(certFile, keyFile string, more ...string) string {
	s := "  tls:\n    certificate: " + certFile + "\n    key: " + keyFile + "\n"
	for _, m := range more {
		s += "    " + m + "\n"
	}
	return s
}

func httpsGet(t *testing.T, url string, conf *tls.Config) (*http.Response, string, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 15 * time.Second}).Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

// TestCertificateFiles: berth serves HTTPS from http.tls files, says so in
// its log, refuses TLS 1.0/1.1 and plain HTTP on the TLS port, redirects
// from the plain-HTTP listener, and picks up replaced files without a
// restart.
func TestCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	c, certFile, keyFile, serial := filesSetup(t, dir)
	addr, redirect := freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")
	b := startBerth(t, dir, addr, berthConfig(dir, addr, tlsLines(certFile, keyFile),
		"berth:\n  tls:\n    httpredirect:\n      addr: "+redirect+"\n"))
	if !strings.Contains(b.Log(), `msg="berth listening" addr=`+addr+" tls=true") {
		t.Errorf("berth's log does not say it listens with TLS:\n%s", b.Log())
	}
	conf := &tls.Config{RootCAs: c.Pool(), ServerName: "registry.test"}

	resp, body, err := httpsGet(t, "https://"+addr+"/v2/", conf)
	if err != nil || resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
		t.Fatalf("GET /v2/ over TLS: %v %v %q", resp, err, body)
	}
	if got := resp.TLS.PeerCertificates[0].SerialNumber.String(); got != serial {
		t.Errorf("serial %s, want %s", got, serial)
	}
	if resp.TLS.Version != tls.VersionTLS13 {
		t.Errorf("negotiated %x, want TLS 1.3", resp.TLS.Version)
	}

	// Old protocol versions are refused (default minimum: TLS 1.2).
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		_, err := peerSerial(addr, &tls.Config{RootCAs: c.Pool(), ServerName: "registry.test", MinVersion: v, MaxVersion: v})
		if err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("TLS version %x: %v; want a protocol version alert", v, err)
		}
	}
	if _, err := peerSerial(addr, &tls.Config{RootCAs: c.Pool(), ServerName: "registry.test", MaxVersion: tls.VersionTLS12}); err != nil {
		t.Errorf("TLS 1.2: %v", err)
	}

	// Plain HTTP on the TLS port gets no registry answer.
	if r, err := http.Get("http://" + addr + "/v2/"); err == nil {
		r.Body.Close()
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS port: %d", r.StatusCode)
		}
	}
	// The plain-HTTP listener redirects to HTTPS on the TLS port.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := noFollow.Get("http://" + redirect + "/v2/_catalog?n=5")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if want := "https://127.0.0.1:" + portOf(addr) + "/v2/_catalog?n=5"; r.StatusCode != http.StatusPermanentRedirect || r.Header.Get("Location") != want {
		t.Errorf("redirect: %d %q, want 308 %q", r.StatusCode, r.Header.Get("Location"), want)
	}

	// Replace the files (as certbot renew does): new connections get the
	// new certificate, no restart.
	cp2, kp2, sn2 := c.Issue(t, testca.Leaf{CN: "registry.test", Names: []string{"registry.test", "127.0.0.1"}})
	serial2 := sn2.String()
	testca.ReplaceFile(t, keyFile, kp2)
	testca.ReplaceFile(t, certFile, cp2)
	harness.WaitFor(t, 15*time.Second, "the new certificate", func() (bool, string) {
		got, err := peerSerial(addr, conf)
		return got == serial2, got + " " + errString(err)
	})
	if !strings.Contains(b.Log(), "TLS certificate reloaded") {
		t.Errorf("reload not logged:\n%s", b.Log())
	}
	// A broken replacement (key for another certificate) keeps the current
	// one and is logged.
	_, kp3, _ := c.Issue(t, testca.Leaf{CN: "registry.test", Names: []string{"registry.test"}})
	testca.ReplaceFile(t, keyFile, kp3)
	harness.WaitFor(t, 15*time.Second, "the broken files to be reported", func() (bool, string) {
		peerSerial(addr, conf) // files are checked on handshakes
		return strings.Contains(b.Log(), "cannot be used; still serving the previous certificate"), ""
	})
	if got, err := peerSerial(addr, conf); got != serial2 {
		t.Errorf("after a broken replacement: serial %s %v, want %s", got, err, serial2)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestStartupErrors: certificate files berth cannot serve stop start-up
// with a message naming the problem and the key.
func TestStartupErrors(t *testing.T) {
	dir := t.TempDir()
	c := testca.NewCA(t, "berth test CA")
	expC, expK, _ := c.Issue(t, testca.Leaf{CN: "registry.test", Names: []string{"registry.test"},
		NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	okC, okK, _ := c.Issue(t, testca.Leaf{CN: "registry.test", Names: []string{"registry.test"}})
	otherC, _, _ := c.Issue(t, testca.Leaf{CN: "registry.test", Names: []string{"registry.test"}})
	files := func(name string, cp, kp []byte) (string, string) {
		return testca.WriteFile(t, filepath.Join(dir, name+".crt"), cp), testca.WriteFile(t, filepath.Join(dir, name+".key"), kp)
	}
	expCert, expKey := files("expired", expC, expK)
	okCert, okKey := files("ok", okC, okK)
	mismatchCert, _ := files("other", otherC, nil)
	addr := freeAddr(t, "127.0.0.1")
	for _, tc := range []struct{ name, http, extra, want string }{
		{"expired", tlsLines(expCert, expKey), "", "http.tls.certificate " + expCert + ": certificate for registry.test expired on"},
		{"wrong host", "  host: https://registry.example.com\n" + tlsLines(okCert, okKey), "",
			"certificate is for registry.test, not for registry.example.com (the host of http.host)"},
		{"key of another certificate", tlsLines(mismatchCert, okKey), "", "private key does not match public key"},
		{"missing key file", tlsLines(okCert, filepath.Join(dir, "nope.key")), "", "http.tls.key: stat"},
		{"unknown cipher suite", tlsLines(okCert, okKey, "ciphersuites: [TLS_RSA_WITH_NULL_SHA]"), "", `http.tls.ciphersuites[0]: unknown cipher suite "TLS_RSA_WITH_NULL_SHA"`},
		{"client CA file without certificates", tlsLines(okCert, okKey, "clientcas: ["+okKey+"]"), "", "http.tls.clientcas[0]: no PEM certificates"},
		{"tls without certificate", "  tls:\n    minimumtls: tls1.3\n", "", "refusing to serve plain HTTP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := berthFails(t, berthConfig(t.TempDir(), addr, tc.http, tc.extra))
			if !strings.Contains(out, tc.want) {
				t.Errorf("output does not contain %q:\n%s", tc.want, out)
			}
		})
	}
}

// TestClientCertificates: with http.tls.clientcas, a request needs a client
// certificate from one of those CAs.
func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	c, certFile, keyFile, _ := filesSetup(t, dir)
	clients := testca.NewCA(t, "berth client CA")
	other := testca.NewCA(t, "someone else's CA")
	caFile := testca.WriteFile(t, filepath.Join(dir, "tls", "clients.pem"), clients.PEM())
	addr := freeAddr(t, "127.0.0.1")
	b := startBerth(t, dir, addr, berthConfig(dir, addr, tlsLines(certFile, keyFile, "clientcas: ["+caFile+"]"), ""))

	// GetClientCertificate sends the certificate even when the server does
	// not name its issuer (Go's client would otherwise send none).
	conf := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: c.Pool(), ServerName: "registry.test",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if len(certs) == 0 {
					return &tls.Certificate{}, nil
				}
				return &certs[0], nil
			}}
	}
	if resp, _, err := httpsGet(t, "https://"+addr+"/v2/", conf(clients.ClientCert(t, "ci"))); err != nil || resp.StatusCode != 200 {
		t.Fatalf("with a client certificate: %v %v", resp, err)
	}
	if _, _, err := httpsGet(t, "https://"+addr+"/v2/", conf()); err == nil {
		t.Error("a request without a client certificate was served")
	}
	if _, _, err := httpsGet(t, "https://"+addr+"/v2/", conf(other.ClientCert(t, "mallory"))); err == nil {
		t.Error("a request with a client certificate from another CA was served")
	}
	// Both were refused in the handshake, for the right reason.
	harness.WaitFor(t, 10*time.Second, "berth to log both refusals", func() (bool, string) {
		l := b.Log()
		return strings.Contains(l, "client didn't provide a certificate") &&
			strings.Contains(l, "failed to verify certificate: x509: certificate signed by unknown authority"), ""
	})
	if strings.Count(b.Log(), "msg=request ") != 1 {
		t.Errorf("want exactly one request served:\n%s", b.Log())
	}
}
