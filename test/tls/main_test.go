// Package tlstest runs the berth binary with TLS: certificate files
// (start-up checks, reload, versions, client certificates), ACME against
// pebble, docker over TLS, and nginx and Apache in front of berth as in
// the seed articles.
//
// The tests that need only the berth binary run with `go test ./...`. The
// ones that need real components (pebble, dockerd, nginx, apache2) are
// behind the e2e build tag:
//
//	.ci/run tls        # installs pebble, nginx, apache2, docker.io, iproute2; runs everything
//	go test -tags e2e -count=1 ./test/tls/
//
// The docker tests need dockerd to verify berth's certificate, which it
// does not for 127.0.0.0/8, so they run berth in a network namespace of
// their own (netns_e2e_test.go; root and `ip netns`) and dockerd reaches
// it over a veth. No address of the machine itself is used.
//
// A missing tool skips its test locally and fails it when CI is set.
package tlstest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/testenv"
	testca "github.com/berth-registry/berth/internal/tlsconf/tlstest"
	"github.com/berth-registry/berth/test/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// requireTool returns the path of a program the test needs (testenv: a
// skip locally, a failure under CI).
func requireTool(t *testing.T, name, install string) string {
	t.Helper()
	return testenv.Tool(t, name, "install: "+install+", or run `.ci/run tls`")
}

// --- certificates -------------------------------------------------------------

// peerSerial connects to addr with conf and returns the serial of the
// server's certificate, or the error.
func peerSerial(addr string, conf *tls.Config) (string, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// --- berth processes ----------------------------------------------------------

// berth is one `berth serve` process with a config this package writes,
// so that it can carry an http.tls section (test/harness writes its own).
type berth struct {
	t       *testing.T
	Dir     string
	Config  string
	LogPath string
	Addr    string // http.addr
	opts    berthOptions

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// berthConfig is a config.yml for a fresh storage root under dir with the
// given http section body (indented two spaces) and extra top-level YAML.
func berthConfig(dir, addr, httpExtra, extra string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s%s`, filepath.Join(dir, "root"), addr, httpExtra, extra)
}

// berthOptions are startBerthWith's extras.
type berthOptions struct {
	// Prefix runs the binary through another program, which execs it:
	// `ip netns exec NAME` (netns.Prefix) to run berth in a test's own
	// network namespace.
	Prefix []string
	// ReadyURL, when set, is polled with GET from the test's process once
	// berth has logged that it listens, until it answers with any HTTP
	// status: proof that berth is reachable where the clients will look.
	ReadyURL string
	ReadyTLS *tls.Config // for an https ReadyURL
}

// startBerth writes cfg and starts berth, returning once it logs that it
// listens (or failing the test with its log if it exits first).
func startBerth(t *testing.T, dir, addr, cfg string) *berth {
	t.Helper()
	return startBerthWith(t, dir, addr, cfg, berthOptions{})
}

// startBerthWith is startBerth with a command prefix and a readiness URL.
func startBerthWith(t *testing.T, dir, addr, cfg string, opts berthOptions) *berth {
	t.Helper()
	b := &berth{t: t, Dir: dir, Config: filepath.Join(dir, "config.yml"), LogPath: filepath.Join(dir, "berth.log"), Addr: addr, opts: opts}
	testca.WriteFile(t, b.Config, []byte(cfg))
	b.start()
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			t.Logf("berth log (%s):\n%s", b.LogPath, b.Log())
		}
	})
	return b
}

func (b *berth) start() {
	b.t.Helper()
	logf, err := os.OpenFile(b.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.t.Fatal(err)
	}
	mark := len(b.Log())
	argv := append(append([]string{}, b.opts.Prefix...), harness.Binary(b.t), "serve", b.Config)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		logf.Close()
		b.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	b.mu.Lock()
	b.cmd, b.done = cmd, done
	b.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(b.Log()[mark:], `msg="berth listening" addr=`+b.Addr) {
		select {
		case <-done:
			b.t.Fatalf("berth exited during start-up: %v\n%s", cmd.ProcessState, b.Log()[mark:])
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("berth did not listen on %s within 60s:\n%s", b.Addr, b.Log()[mark:])
		}
	}
	if b.opts.ReadyURL != "" {
		b.waitReady(cmd, done, mark)
	}
}

// waitReady polls opts.ReadyURL until it answers, for at most 30s.
func (b *berth) waitReady(cmd *exec.Cmd, done <-chan struct{}, mark int) {
	b.t.Helper()
	tr := &http.Transport{TLSClientConfig: b.opts.ReadyTLS}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(b.opts.ReadyURL)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("berth logged that it listens but GET %s did not answer within 30s: %v\n%s", b.opts.ReadyURL, err, b.Log()[mark:])
		}
		select {
		case <-done:
			b.t.Fatalf("berth exited during start-up: %v\n%s", cmd.ProcessState, b.Log()[mark:])
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop sends SIGTERM and waits (SIGKILL after 15s).
func (b *berth) Stop() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Restart stops berth and starts it again with the same config.
func (b *berth) Restart() {
	b.t.Helper()
	b.Stop()
	b.start()
}

func (b *berth) Log() string {
	data, _ := os.ReadFile(b.LogPath)
	return string(data)
}

// berthFails runs `berth serve` with cfg, which must exit with an error
// before listening; it returns the output.
func berthFails(t *testing.T, cfg string) string {
	t.Helper()
	dir := t.TempDir()
	path := testca.WriteFile(t, filepath.Join(dir, "config.yml"), []byte(cfg))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(t), "serve", path)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("berth serve did not fail at start-up (err %v):\n%s", err, out)
	}
	if strings.Contains(string(out), "berth listening") {
		t.Fatalf("berth listened before failing:\n%s", out)
	}
	return string(out)
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

func freeAddr(t *testing.T, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
