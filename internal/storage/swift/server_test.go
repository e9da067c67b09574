package swift

// The tests run against a real single-node OpenStack Swift with tempauth,
// started here once per test binary (TestMain stops it): memcached, the
// account, container and object servers and the proxy, from Debian's
// packages, on free 127.0.0.1 ports, with configs and rings in a temporary
// directory. Without the packages the tests skip, or fail when CI is set.
//
// BERTH_SWIFT_TEST_VERBOSE=1 makes the servers log every request into
// their log files; BERTH_SWIFT_TEST_KEEP=1 keeps the directory.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ncw/swift/v2"

	"github.com/berth-registry/berth/internal/testenv"
)

const (
	testUser = "test:tester"
	testKey  = "testing"
	// swiftPackages is what the tests need, from Debian's archive.
	swiftPackages = "swift swift-proxy swift-object swift-container swift-account memcached"
)

// swiftServer is a running single-node Swift.
type swiftServer struct {
	dir     string
	authURL string
	procs   []*proc
}

type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

var (
	serverOnce sync.Once
	server     *swiftServer
	serverErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		server.stop()
	}
	os.Exit(code)
}

// startedSwift returns the package's Swift, starting it on first use.
func startedSwift(t testing.TB) *swiftServer {
	t.Helper()
	serverOnce.Do(func() { server, serverErr = startSwift() })
	if serverErr != nil {
		testenv.Missing(t, fmt.Sprintf("OpenStack Swift test server: %v (install it with: apt-get install --no-install-recommends %s)", serverErr, swiftPackages))
	}
	return server
}

var swiftBinaries = []string{
	"memcached", "swift-ring-builder",
	"swift-account-server", "swift-container-server", "swift-object-server", "swift-proxy-server",
}

func startSwift() (*swiftServer, error) {
	var missing []string
	for _, b := range swiftBinaries {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("not installed: %s", strings.Join(missing, ", "))
	}
	dir, err := os.MkdirTemp("", "berth-swift-test-")
	if err != nil {
		return nil, err
	}
	// A port picked here can be taken before a server binds it: try a
	// few times.
	var lastErr error
	for attempt := range 3 {
		s, err := tryStartSwift(filepath.Join(dir, fmt.Sprint(attempt)))
		if err == nil {
			s.dir = dir
			return s, nil
		}
		lastErr = err
	}
	if os.Getenv("BERTH_SWIFT_TEST_KEEP") == "" {
		os.RemoveAll(dir)
	}
	return nil, lastErr
}

// freePorts returns n distinct free ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

const swiftConf = `[swift-hash]
swift_hash_path_suffix = berth-test
swift_hash_path_prefix = berth-test

[storage-policy:0]
name = gold
default = yes
`

// serverConf is the config of an account, container or object server.
// workers = 0 keeps each server one process, which dies with the tests.
const serverConf = `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = %[2]d
workers = 0
user = %[3]s
swift_dir = %[4]s
devices = %[4]s/srv/node
mount_check = false
log_name = %[1]s-server
recon_cache_path = %[4]s/run

[pipeline:main]
pipeline = %[1]s-server

[app:%[1]s-server]
use = egg:swift#%[1]s

[%[1]s-replicator]
[%[1]s-updater]
[%[1]s-auditor]
`

// proxyConf is the proxy's config: registry:2's Swift driver expects the
// usual middleware (bulk delete, temp URLs, large objects, COPY).
const proxyConf = `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = %[1]d
workers = 0
user = %[2]s
swift_dir = %[3]s
log_name = proxy-server

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl slo dlo tempauth copy proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:%[4]d

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:tempurl]
use = egg:swift#tempurl

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo
# Swift's defaults, kept on purpose: a DLO download through this
# middleware slows to one segment a second after the tenth. The driver
# reads large objects segment by segment itself; were it to go through
# here, the 64-segment objects of the tests would take a minute each.
rate_limit_after_segment = 10
rate_limit_segments_per_sec = 1

[filter:copy]
use = egg:swift#copy
`

func tryStartSwift(dir string) (*swiftServer, error) {
	if err := os.MkdirAll(filepath.Join(dir, "srv", "node", "d1"), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	memcachePort, proxyPort := ports[0], ports[1]
	serverPorts := map[string]int{"account": ports[2], "container": ports[3], "object": ports[4]}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	files := map[string]string{
		"swift.conf":        swiftConf,
		"proxy-server.conf": fmt.Sprintf(proxyConf, proxyPort, u.Username, dir, memcachePort),
	}
	for kind, port := range serverPorts {
		files[kind+"-server.conf"] = fmt.Sprintf(serverConf, kind, port, u.Username, dir)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}

	// Rings: one device per ring, built concurrently.
	var wg sync.WaitGroup
	ringErrs := make(chan error, len(serverPorts))
	for kind, port := range serverPorts {
		wg.Go(func() {
			builder := kind + ".builder"
			for _, args := range [][]string{
				{builder, "create", "6", "1", "1"},
				{builder, "add", "--region", "1", "--zone", "1", "--ip", "127.0.0.1", "--port", fmt.Sprint(port), "--device", "d1", "--weight", "100"},
				{builder, "rebalance"},
			} {
				cmd := exec.Command("swift-ring-builder", args...)
				cmd.Dir = dir
				out, err := cmd.CombinedOutput()
				// rebalance exits 1 for warnings.
				var ee *exec.ExitError
				if err != nil && !(args[1] == "rebalance" && errors.As(err, &ee) && ee.ExitCode() == 1) {
					ringErrs <- fmt.Errorf("swift-ring-builder %s: %v\n%s", strings.Join(args, " "), err, out)
					return
				}
			}
		})
	}
	wg.Wait()
	close(ringErrs)
	if err := <-ringErrs; err != nil {
		return nil, err
	}

	s := &swiftServer{authURL: fmt.Sprintf("http://127.0.0.1:%d/auth/v1.0", proxyPort)}
	memcached := []string{"memcached", "-l", "127.0.0.1", "-p", fmt.Sprint(memcachePort), "-U", "0", "-m", "64", "-t", "1"}
	if os.Geteuid() == 0 {
		memcached = append(memcached, "-u", "root")
	}
	verbose := os.Getenv("BERTH_SWIFT_TEST_VERBOSE") != ""
	swiftCmd := func(bin, conf string) []string {
		args := []string{bin, filepath.Join(dir, conf)}
		if verbose {
			args = append(args, "--verbose")
		}
		return args
	}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"memcached", memcached},
		{"account", swiftCmd("swift-account-server", "account-server.conf")},
		{"container", swiftCmd("swift-container-server", "container-server.conf")},
		{"object", swiftCmd("swift-object-server", "object-server.conf")},
		{"proxy", swiftCmd("swift-proxy-server", "proxy-server.conf")},
	} {
		if err := s.start(dir, c.name, c.args); err != nil {
			s.stop()
			return nil, err
		}
	}
	if err := s.waitReady(90 * time.Second); err != nil {
		logs := s.logs()
		s.stop()
		return nil, fmt.Errorf("swift on %s: %v\n%s", s.authURL, err, logs)
	}
	return s, nil
}

func (s *swiftServer) start(dir, name string, args []string) error {
	logName := filepath.Join(dir, name+".log")
	logf, err := os.Create(logName)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", args[0], err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{}), log: logName}
	go func() { cmd.Wait(); close(p.exited) }()
	s.procs = append(s.procs, p)
	return nil
}

// waitReady polls, with a bound, until a container and an object can be
// written (which needs every server), or a server exits.
func (s *swiftServer) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.probe(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v", timeout, err)
		}
		for _, p := range s.procs {
			select {
			case <-p.exited:
				return fmt.Errorf("%s exited: %v", p.name, p.cmd.ProcessState)
			default:
			}
		}
		<-tick.C
	}
}

func (s *swiftServer) probe(ctx context.Context) error {
	c := s.conn()
	if err := c.Authenticate(ctx); err != nil {
		return err
	}
	if err := c.ContainerCreate(ctx, "berth-ready", nil); err != nil {
		return err
	}
	return c.ObjectPutString(ctx, "berth-ready", "probe", "ok", "text/plain")
}

func (s *swiftServer) logs() string {
	var b strings.Builder
	for _, p := range s.procs {
		out, _ := os.ReadFile(p.log)
		if len(out) > 4000 {
			out = out[len(out)-4000:]
		}
		fmt.Fprintf(&b, "--- %s:\n%s\n", p.name, out)
	}
	return b.String()
}

// stop ends the servers (SIGTERM, then SIGKILL after a bound) and removes
// the directory.
func (s *swiftServer) stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		if p.cmd.Process == nil {
			continue
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(10 * time.Second)
		select {
		case <-p.exited:
		case <-t.C:
			p.cmd.Process.Kill()
			<-p.exited
		}
		t.Stop()
	}
	s.procs = nil
	if s.dir != "" && os.Getenv("BERTH_SWIFT_TEST_KEEP") == "" {
		os.RemoveAll(s.dir)
	}
}

// conn returns a client for the test account.
func (s *swiftServer) conn() *swift.Connection {
	return &swift.Connection{
		UserName:  testUser,
		ApiKey:    testKey,
		AuthUrl:   s.authURL,
		Transport: http.DefaultTransport,
	}
}

// params returns driver parameters for container on this Swift, with
// 1 MiB segments so that small tests make large objects.
func (s *swiftServer) params(container, prefix string) Params {
	p := DefaultParams()
	p.Username, p.Password, p.AuthURL = testUser, testKey, s.authURL
	p.Container, p.Prefix = container, prefix
	p.ChunkSize = MinChunkSize
	return p
}

func randomName(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// newTestDriver returns a driver on a fresh container.
func newTestDriver(t testing.TB, prefix string, edit ...func(*Params)) (*Driver, *swiftServer, Params) {
	t.Helper()
	s := startedSwift(t)
	p := s.params(randomName("berth-"), prefix)
	for _, e := range edit {
		e(&p)
	}
	d, err := New(context.Background(), p)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d, s, p
}
