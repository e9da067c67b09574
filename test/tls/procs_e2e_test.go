//go:build e2e

package tlstest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	testca "github.com/berth-registry/berth/internal/tlsconf/tlstest"
	"github.com/berth-registry/berth/test/harness"
)

// startProc starts an external server for a test (pebble, nginx,
// apache2) with env added to the test's environment; it is stopped in
// t.Cleanup, its workers too.
func startProc(t *testing.T, name, logPath string, env []string, bin string, args ...string) *harness.Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return harness.StartProc(t, name, logPath, cmd)
}

// --- pebble -------------------------------------------------------------------

// pebble is Let's Encrypt's test ACME server with pebble-challtestsrv as
// its DNS, which resolves every name to 127.0.0.1.
type pebble struct {
	*harness.Proc
	DirectoryURL string
	CAFile       string         // signs pebble's own HTTPS certificate
	Roots        *x509.CertPool // issued certificates chain to these
}

// startPebble starts pebble validating HTTP-01 on httpPort and TLS-ALPN-01
// on tlsPort of 127.0.0.1; validity (seconds, 0 for pebble's default of
// five years) is the lifetime of the certificates it issues.
func startPebble(t *testing.T, httpPort, tlsPort string, validity int) *pebble {
	t.Helper()
	bin := requireTool(t, "pebble", "apt-get install pebble")
	chall := requireTool(t, "pebble-challtestsrv", "apt-get install pebble")
	dir := t.TempDir()
	dns, dnsMgmt := freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")
	cts := startProc(t, "pebble-challtestsrv", filepath.Join(dir, "challtestsrv.log"), nil, chall,
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", dns, "-http01", "", "-https01", "",
		"-tlsalpn01", "", "-management", dnsMgmt)
	cts.WaitListening(t, dnsMgmt)

	// pebble's own listener needs a certificate for 127.0.0.1.
	ca := testca.NewCA(t, "pebble listener CA")
	cp, kp, _ := ca.Issue(t, testca.Leaf{CN: "localhost", Names: []string{"localhost", "127.0.0.1"}})
	acmeAddr, mgmtAddr := freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")
	hp, _ := strconv.Atoi(httpPort)
	tp, _ := strconv.Atoi(tlsPort)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  acmeAddr,
		"managementListenAddress":        mgmtAddr,
		"certificate":                    testca.WriteFile(t, filepath.Join(dir, "cert.pem"), cp),
		"privateKey":                     testca.WriteFile(t, filepath.Join(dir, "key.pem"), kp),
		"httpPort":                       hp,
		"tlsPort":                        tp,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"certificateValidityPeriod":      validity,
	}}
	js, _ := json.Marshal(conf)
	cfgPath := testca.WriteFile(t, filepath.Join(dir, "pebble.json"), js)
	p := &pebble{
		DirectoryURL: "https://" + acmeAddr + "/dir",
		CAFile:       testca.WriteFile(t, filepath.Join(dir, "ca.pem"), ca.PEM()),
	}
	p.Proc = startProc(t, "pebble", filepath.Join(dir, "pebble.log"),
		[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		bin, "-config", cfgPath, "-dnsserver", dns)
	p.WaitListening(t, acmeAddr)
	p.WaitListening(t, mgmtAddr)

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err := hc.Get("https://" + mgmtAddr + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	root, _ := io.ReadAll(resp.Body)
	p.Roots = x509.NewCertPool()
	if resp.StatusCode != 200 || !p.Roots.AppendCertsFromPEM(root) {
		t.Fatalf("pebble root: %s %q", resp.Status, root)
	}
	return p
}

// Issued counts the certificates pebble has issued.
func (p *pebble) Issued() int { return strings.Count(p.Log(), "Issued certificate serial") }

// --- docker -------------------------------------------------------------------

// dockerCLI runs the docker client with its own DOCKER_CONFIG (logins stay
// out of the machine's ~/.docker).
type dockerCLI struct {
	t   *testing.T
	env []string
}

func requireDocker(t *testing.T) *dockerCLI {
	t.Helper()
	harness.RequireDocker(t)
	return &dockerCLI{t: t, env: append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())}
}

// with is d for subtest t (failures and cleanups go to t).
func (d *dockerCLI) with(t *testing.T) *dockerCLI { return &dockerCLI{t: t, env: d.env} }

func (d *dockerCLI) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = d.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *dockerCLI) must(args ...string) string {
	d.t.Helper()
	out, err := d.run(args...)
	if err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// login logs in with a password on stdin.
func (d *dockerCLI) login(host, user, password string) {
	d.t.Helper()
	cmd := exec.Command("docker", "login", "--username", user, "--password-stdin", host)
	cmd.Env = d.env
	cmd.Stdin = strings.NewReader(password)
	if out, err := cmd.CombinedOutput(); err != nil {
		d.t.Fatalf("docker login %s: %v\n%s", host, err, out)
	}
}

// importImage makes image ref from a tar holding size bytes of random data
// (incompressible, so the layer is that large) and returns its image id.
func (d *dockerCLI) importImage(ref string, size int, seed uint64) string {
	d.t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := make([]byte, size)
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	rand.NewChaCha8(s).Read(data)
	for _, f := range []struct {
		name string
		body []byte
	}{{"hello.txt", []byte("hello from " + ref + "\n")}, {"random.bin", data}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: time.Unix(1700000000, 0)})
		tw.Write(f.body)
	}
	tw.Close()
	tarPath := testca.WriteFile(d.t, filepath.Join(d.t.TempDir(), "rootfs.tar"), buf.Bytes())
	d.must("import", tarPath, ref)
	d.t.Cleanup(func() { d.run("rmi", "-f", ref) })
	return strings.TrimSpace(d.must("image", "inspect", "--format", "{{.Id}}", ref))
}

// pushPull pushes ref, removes it locally, pulls it back and checks the
// image id survived the round trip.
func (d *dockerCLI) pushPull(ref, id string) {
	d.t.Helper()
	d.must("push", ref)
	d.must("rmi", ref)
	d.must("pull", ref)
	if got := strings.TrimSpace(d.must("image", "inspect", "--format", "{{.Id}}", ref)); got != id {
		d.t.Errorf("pulled image id %s, pushed %s", got, id)
	}
}

// certsD writes files into /etc/docker/certs.d/HOST (where dockerd looks
// for a registry's CA and client certificate) and removes them afterwards.
func certsD(t *testing.T, host string, files map[string][]byte) {
	t.Helper()
	dir := filepath.Join("/etc/docker/certs.d", host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cannot write %s (not root?): %v", dir, err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.Remove(filepath.Join(dir, e.Name()))
	}
	for name, data := range files {
		testca.WriteFile(t, filepath.Join(dir, name), data)
	}
}
