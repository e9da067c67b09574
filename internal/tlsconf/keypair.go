package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// reloadCheckInterval is how often, at most, the certificate and key files
// are checked for changes (on a handshake).
const reloadCheckInterval = time.Second

// keyPair serves the certificate and key from http.tls.certificate and
// http.tls.key, re-reading them when either file changes (certbot renewing,
// an operator copying new files), without a restart. A changed pair that
// does not load (half-written, key and certificate not matching, expired)
// is logged and the previous one is kept until the files change again.
type keyPair struct {
	certFile, keyFile string
	host              string // name the certificate must cover; "" = unchecked
	log               *slog.Logger
	now               func() time.Time

	mu     sync.Mutex
	cert   *tls.Certificate
	loaded [2]fileSig // what cert was loaded from
	failed [2]fileSig // last pair that failed to load, not retried
	// unreadable: the last check could not stat the files (logged once)
	unreadable bool
	checked    time.Time
}

// fileSig identifies one version of a file: same inode, size and mtime.
type fileSig struct {
	fi os.FileInfo
}

func statSig(path string) (fileSig, error) {
	fi, err := os.Stat(path) // follows symlinks: certbot's live/ links
	return fileSig{fi}, err
}

func (a fileSig) same(b fileSig) bool {
	if a.fi == nil || b.fi == nil {
		return a.fi == nil && b.fi == nil
	}
	return os.SameFile(a.fi, b.fi) && a.fi.Size() == b.fi.Size() && a.fi.ModTime().Equal(b.fi.ModTime())
}

func newKeyPair(certFile, keyFile, host string, log *slog.Logger) (*keyPair, error) {
	k := &keyPair{certFile: certFile, keyFile: keyFile, host: host, log: log, now: time.Now}
	sigs, err := k.stat()
	if err != nil {
		return nil, err
	}
	cert, err := k.load()
	if err != nil {
		return nil, err
	}
	k.cert, k.loaded, k.checked = cert, sigs, k.now()
	leaf := cert.Leaf
	k.log.Info("TLS certificate loaded", certAttrs(leaf, certFile)...)
	if left := leaf.NotAfter.Sub(k.now()); left < 14*24*time.Hour {
		k.log.Warn("TLS certificate expires soon; replace the files (berth reloads them without a restart)",
			"file", certFile, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "left", left.Round(time.Minute))
	}
	return k, nil
}

func certAttrs(leaf *x509.Certificate, file string) []any {
	a := []any{"subject", leaf.Subject.String(), "names", certNames(leaf),
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339)}
	if file != "" {
		a = append([]any{"file", file}, a...)
	}
	return a
}

func (k *keyPair) stat() ([2]fileSig, error) {
	var s [2]fileSig
	var err error
	if s[0], err = statSig(k.certFile); err != nil {
		return s, fmt.Errorf("http.tls.certificate: %w", err)
	}
	if s[1], err = statSig(k.keyFile); err != nil {
		return s, fmt.Errorf("http.tls.key: %w", err)
	}
	return s, nil
}

// load reads and checks the pair: it must parse, the key must match, and
// the leaf must be valid now and cover k.host.
func (k *keyPair) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return nil, fmt.Errorf("http.tls.certificate %s / http.tls.key %s: %w", k.certFile, k.keyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("http.tls.certificate %s: %w", k.certFile, err)
		}
		cert.Leaf = leaf
	}
	if err := checkLeaf(leaf, k.host, k.now()); err != nil {
		return nil, fmt.Errorf("http.tls.certificate %s: %w", k.certFile, err)
	}
	return &cert, nil
}

// checkLeaf refuses a certificate that is expired, not yet valid, or (if
// host is set) not for host.
func checkLeaf(leaf *x509.Certificate, host string, now time.Time) error {
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("certificate for %s expired on %s", certNames(leaf), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("certificate for %s is not valid before %s (is the clock right?)", certNames(leaf), leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if host != "" {
		if err := leaf.VerifyHostname(host); err != nil {
			return fmt.Errorf("certificate is for %s, not for %s (the host of http.host)", certNames(leaf), host)
		}
	}
	return nil
}

func certNames(leaf *x509.Certificate) string {
	var n []string
	n = append(n, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		n = append(n, ip.String())
	}
	if len(n) == 0 && leaf.Subject.CommonName != "" {
		n = append(n, "CN="+leaf.Subject.CommonName)
	}
	if len(n) == 0 {
		return "no names"
	}
	return strings.Join(n, ", ")
}

// GetCertificate is the tls.Config hook: the current pair, reloaded first
// if the files changed (checked at most once per reloadCheckInterval).
func (k *keyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now := k.now(); now.Sub(k.checked) >= reloadCheckInterval || now.Before(k.checked) {
		k.checked = now
		k.reloadLocked()
	}
	return k.cert, nil
}

func (k *keyPair) reloadLocked() {
	sigs, err := k.stat()
	if err != nil {
		if !k.unreadable {
			k.log.Error("TLS certificate files cannot be read; still serving the previous certificate", "err", err)
			k.unreadable = true
		}
		return
	}
	k.unreadable = false
	if (sigs[0].same(k.loaded[0]) && sigs[1].same(k.loaded[1])) ||
		(sigs[0].same(k.failed[0]) && sigs[1].same(k.failed[1])) {
		return
	}
	cert, err := k.load()
	if err != nil {
		k.failed = sigs
		k.log.Error("TLS certificate files changed but cannot be used; still serving the previous certificate", "err", err)
		return
	}
	k.cert, k.loaded, k.failed = cert, sigs, [2]fileSig{}
	k.log.Info("TLS certificate reloaded", certAttrs(cert.Leaf, k.certFile)...)
}
