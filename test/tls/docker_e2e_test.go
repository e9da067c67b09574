//go:build e2e

package tlstest

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"

	testca "github.com/berth-registry/berth/internal/tlsconf/tlstest"
	"github.com/berth-registry/berth/test/harness"
)

// dockerBerthPort is berth's port inside the test's network namespace
// (its own, so any port is free).
const dockerBerthPort = 5443

// TestDockerOverTLS pushes and pulls with the Docker engine over TLS,
// trusting berth's CA through /etc/docker/certs.d/HOST:PORT/ca.crt. berth
// runs in the test's own network namespace and dockerd reaches it over a
// veth at 10.231.X.2, where dockerd verifies certificates (it trusts
// 127.0.0.0/8 blindly); its port speaks only TLS, and with another CA in
// certs.d the push fails verification.
func TestDockerOverTLS(t *testing.T) {
	d := requireDocker(t)
	ns := newNetns(t)
	dir := t.TempDir()
	c := testca.NewCA(t, "berth docker test CA")
	cp, kp, _ := c.Issue(t, testca.Leaf{CN: ns.IP, Names: []string{ns.IP}})
	addr := ns.Addr(dockerBerthPort)
	b := startBerthWith(t, dir, addr, berthConfig(dir, addr,
		tlsLines(testca.WriteFile(t, filepath.Join(dir, "tls", "cert.pem"), cp), testca.WriteFile(t, filepath.Join(dir, "tls", "key.pem"), kp)), ""),
		berthOptions{Prefix: ns.Prefix(), ReadyURL: "https://" + addr + "/v2/", ReadyTLS: &tls.Config{RootCAs: c.Pool()}})
	if !strings.Contains(b.Log(), `msg="berth listening" addr=`+addr+" tls=true") {
		t.Fatalf("berth does not listen with TLS:\n%s", b.Log())
	}

	ref := addr + "/tls/hello:1"
	id := d.importImage(ref, 3<<20, 1)

	// Another CA in certs.d: docker must refuse berth's certificate.
	certsD(t, addr, map[string][]byte{"ca.crt": testca.NewCA(t, "not berth's CA").PEM()})
	out, err := d.run("push", ref)
	if err == nil || !strings.Contains(out, "x509") {
		t.Fatalf("push with the wrong CA in certs.d: %v\n%s\nwant a certificate verification error", err, out)
	}
	t.Logf("push with the wrong CA failed as it should:\n%s", out)

	certsD(t, addr, map[string][]byte{"ca.crt": c.PEM()})
	d.pushPull(ref, id)
	if !strings.Contains(b.Log(), "method=PUT path=/v2/tls/hello/manifests/1 status=201") {
		t.Errorf("berth did not log the manifest push:\n%s", harness.Tail(b.Log(), 30))
	}
}

// TestDockerClientCertificate: with http.tls.clientcas, docker pushes with
// the client certificate from certs.d (client.cert, client.key) and is
// refused without one.
func TestDockerClientCertificate(t *testing.T) {
	d := requireDocker(t)
	ns := newNetns(t)
	dir := t.TempDir()
	c := testca.NewCA(t, "berth docker test CA")
	clients := testca.NewCA(t, "berth docker client CA")
	cp, kp, _ := c.Issue(t, testca.Leaf{CN: ns.IP, Names: []string{ns.IP}})
	addr := ns.Addr(dockerBerthPort)
	// The readiness check presents a client certificate, so the only
	// refused handshake in berth's log is docker's.
	ready := &tls.Config{RootCAs: c.Pool(), Certificates: []tls.Certificate{clients.ClientCert(t, "readiness")}}
	b := startBerthWith(t, dir, addr, berthConfig(dir, addr,
		tlsLines(testca.WriteFile(t, filepath.Join(dir, "tls", "cert.pem"), cp), testca.WriteFile(t, filepath.Join(dir, "tls", "key.pem"), kp),
			"clientcas: ["+testca.WriteFile(t, filepath.Join(dir, "tls", "clients.pem"), clients.PEM())+"]"), ""),
		berthOptions{Prefix: ns.Prefix(), ReadyURL: "https://" + addr + "/v2/", ReadyTLS: ready})

	ref := addr + "/mtls/hello:1"
	id := d.importImage(ref, 1<<20, 2)

	certsD(t, addr, map[string][]byte{"ca.crt": c.PEM()})
	out, err := d.run("push", ref)
	if err == nil {
		t.Fatalf("push without a client certificate succeeded:\n%s", out)
	}
	t.Logf("push without a client certificate failed as it should:\n%s", out)
	harness.WaitFor(t, 10*time.Second, "berth to log the refused handshake", func() (bool, string) {
		return strings.Contains(b.Log(), "client didn't provide a certificate"), ""
	})

	ccert, ckey, _ := clients.Issue(t, testca.Leaf{CN: "ci-pusher", Client: true})
	certsD(t, addr, map[string][]byte{"ca.crt": c.PEM(), "client.cert": ccert, "client.key": ckey})
	d.pushPull(ref, id)
}
