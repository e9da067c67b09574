package interop

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// distributionPackage is the Debian package that ships distribution 2.8.2.
	distributionPackage = "docker-registry"
	readyTimeout        = 60 * time.Second
	stopTimeout         = 15 * time.Second
	buildTimeout        = 10 * time.Minute
)

var (
	berthOnce sync.Once
	berthBin  string
	berthErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// distributionBinary returns the path of distribution 2.8.2's binary, or
// skips the test when it is missing (fails it under CI, which must never
// skip silently). DOCKER_REGISTRY_BIN overrides the lookup.
func distributionBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DOCKER_REGISTRY_BIN"); p != "" {
		return p
	}
	if p, err := exec.LookPath("docker-registry"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/docker-registry"); err == nil {
		return "/usr/bin/docker-registry"
	}
	msg := "docker-registry (distribution 2.8.2) not found: install it with `apt-get install -y " +
		distributionPackage + "`"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, so this is a failure, not a skip)")
	}
	t.Skip(msg)
	return ""
}

// berthBinary builds ./cmd/berth once per test run. INTEROP_BERTH_BIN points
// at an already built binary instead (e.g. one CI built for other suites).
func berthBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("INTEROP_BERTH_BIN"); p != "" {
		return p
	}
	berthOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			berthErr = err
			return
		}
		if err := statSources(root); err != nil {
			berthErr = err
			return
		}
		buildDir, err = os.MkdirTemp("", "berth-interop-bin-")
		if err != nil {
			berthErr = err
			return
		}
		out := filepath.Join(buildDir, "berth")
		cmd := exec.Command(goTool(), "build", "-o", out, "./cmd/berth")
		cmd.Dir = root
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := runWithTimeout(cmd, buildTimeout); err != nil {
			berthErr = fmt.Errorf("go build ./cmd/berth: %v\n%s", err, buf.String())
			return
		}
		berthBin = out
	})
	if berthErr != nil {
		t.Fatal(berthErr)
	}
	return berthBin
}

// statSources looks at every file berth is built from. The go test cache
// keys a cached result on the files and directories the test opened or
// stat'ed, and the build below runs in another process, so without this a
// change to berth would not invalidate a cached PASS.
func statSources(root string) error {
	return filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		_, err = os.Stat(path) // sources and embedded files alike
		return err
	})
}

func runWithTimeout(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("timed out after %v", d)
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// repoRoot finds the main module's root (the directory of berth's go.mod).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module github.com/berth-registry/berth\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find berth's go.mod above the working directory")
		}
		dir = parent
	}
}

// registryProc is one registry process (berth or distribution) serving a
// filesystem root on 127.0.0.1.
type registryProc struct {
	name    string
	addr    string
	root    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

func (p *registryProc) baseURL() string { return "http://" + p.addr }

func (p *registryProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startRegistry starts bin serving root (delete enabled) on a free port and
// returns once /v2/ answers. The process is killed in t.Cleanup if the test
// has not stopped it.
func startRegistry(t *testing.T, name, bin, root string) *registryProc {
	t.Helper()
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		p, err := tryStart(t, name, bin, root, attempt)
		if err == nil {
			return p
		}
		lastErr = err
		// Only a lost race for the port is worth another try.
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("starting %s: %v", name, lastErr)
	return nil
}

func tryStart(t *testing.T, name, bin, root string, attempt int) (*registryProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	config := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, root, addr)
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	p := &registryProc{name: name, addr: addr, root: root, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("log of %s (%s, attempt %d):\n%s", name, addr, attempt, tail(logPath, 60))
		}
	})
	if err := p.waitReady(readyTimeout); err != nil {
		p.kill()
		return nil, fmt.Errorf("%v; log:\n%s", err, tail(logPath, 40))
	}
	t.Logf("%s (%s) serving %s on %s", name, bin, root, addr)
	return p, nil
}

// waitReady polls GET /v2/ until it answers 200 or 401, the process exits,
// or the deadline passes.
func (p *registryProc) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	hc := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := hc.Get(p.baseURL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer /v2/ within %v (last error %v)", p.name, d, err)
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during start-up: %v", p.name, p.waitErr)
		case <-tick.C:
		}
	}
}

// stop ends the process (SIGTERM, then SIGKILL after stopTimeout) and waits
// until it has exited, so another registry can take over its root.
func (p *registryProc) stop(t *testing.T) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s had already exited: %v\n%s", p.name, p.waitErr, tail(p.logPath, 40))
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		t.Logf("%s ignored SIGTERM for %v; killing it", p.name, stopTimeout)
		p.kill()
	}
}

func (p *registryProc) kill() {
	if p.exited() {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// cleanEnv is the test's environment without REGISTRY_* overrides, which
// would change the config both registries read.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REGISTRY_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
