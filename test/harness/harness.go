// Package harness starts berth processes for tests that drive it over HTTP:
// it builds ./cmd/berth once per test binary, runs `berth serve CONFIG.yml`
// on a free 127.0.0.1 port with its own storage root, waits for /v2/ with a
// bounded deadline, captures berth's stderr in a log file (and parses its
// access lines), and stops the process in t.Cleanup. Options.Bin runs
// another registry:2-compatible binary (distribution's) the same way, and
// StartProc runs other servers (nginx, an S3 server, ...).
//
// Typical use:
//
//	func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
//
//	func TestX(t *testing.T) {
//		b := harness.Start(t, harness.Options{})
//		resp, err := http.Get(b.URL() + "/v2/")
//		...
//		for _, r := range b.Requests(t) { ... }
//	}
//
// BERTH_BIN points at an already built binary instead of building one.
package harness

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
	// ReadyTimeout bounds how long Start waits for /v2/ to answer.
	ReadyTimeout = 60 * time.Second
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout = 15 * time.Second
	// BuildTimeout bounds `go build ./cmd/berth`.
	BuildTimeout = 10 * time.Minute
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// Main runs the tests and removes the binary Binary built. Call it from
// TestMain: os.Exit(harness.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	return code
}

// Binary returns the path of a berth binary: $BERTH_BIN if set, otherwise
// ./cmd/berth built once per test binary (into a temp dir Main removes).
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BERTH_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		// The go test cache keys a cached result on the files the test
		// opened or stat'ed; the build runs in another process, so stat
		// every source here for a change to berth to invalidate a PASS.
		if err := statSources(root); err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "berth-harness-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		out := filepath.Join(dir, "berth")
		cmd := exec.Command(goTool(), "build", "-o", out, "./cmd/berth")
		cmd.Dir = root
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := runWithTimeout(cmd, BuildTimeout); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/berth: %v\n%s", err, buf.String())
			return
		}
		builtBin = out
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// Options configure one berth process. The zero value is a fresh storage
// root under t.TempDir(), a free port, delete enabled, log level info.
type Options struct {
	// Name labels the process in test logs ("berth" if empty).
	Name string
	// Root is the filesystem storage root; empty means a new temp dir.
	Root string
	// Addr is the listen address; empty means a free 127.0.0.1 port.
	Addr string
	// LogLevel is log.level (default "info"; access lines are info).
	LogLevel string
	// DisableDelete sets storage.delete.enabled to false.
	DisableDelete bool
	// ExtraConfig is YAML appended verbatim to the generated config, for
	// top-level sections the generated one does not contain (auth, ...).
	ExtraConfig string
	// Env is added to the process's environment.
	Env []string
	// Bin is the binary to run instead of berth's: any registry that
	// takes `serve CONFIG` and registry:2's config file (distribution's
	// registry does).
	Bin string
}

// Berth is one berth process (or, after Kill and Restart, a succession of
// them) serving Root on Addr.
type Berth struct {
	Name       string
	Addr       string // host:port
	Root       string // storage root
	Dir        string // holds the config and the log
	ConfigPath string
	LogPath    string // stderr and stdout of every run, appended

	bin  string
	env  []string
	mu   sync.Mutex
	proc *process
}

type process struct {
	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	expected bool // stopped or killed on purpose
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// URL is the registry's base URL, http://host:port.
func (b *Berth) URL() string { return "http://" + b.Addr }

// Start starts berth and returns once GET /v2/ answers. It is stopped in
// t.Cleanup; if it died on its own before that, the test fails, and a
// failed test logs the tail of berth's log.
func Start(t testing.TB, opts Options) *Berth {
	t.Helper()
	bin := opts.Bin
	if bin == "" {
		bin = Binary(t)
	}
	name := opts.Name
	if name == "" {
		name = "berth"
	}
	root := opts.Root
	if root == "" {
		root = filepath.Join(t.TempDir(), "root")
	}
	level := opts.LogLevel
	if level == "" {
		level = "info"
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		addr := opts.Addr
		if addr == "" {
			a, err := FreeAddr()
			if err != nil {
				t.Fatal(err)
			}
			addr = a
		}
		b := &Berth{
			Name:       name,
			Addr:       addr,
			Root:       root,
			Dir:        dir,
			ConfigPath: filepath.Join(dir, "config.yml"),
			LogPath:    filepath.Join(dir, name+".log"),
			bin:        bin,
			env:        append(cleanEnv(), opts.Env...),
		}
		cfg := fmt.Sprintf(`version: 0.1
log:
  level: %s
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: %t
http:
  addr: %s
`, level, root, !opts.DisableDelete, addr)
		if opts.ExtraConfig != "" {
			cfg += opts.ExtraConfig
			if !strings.HasSuffix(cfg, "\n") {
				cfg += "\n"
			}
		}
		if err := os.WriteFile(b.ConfigPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		err := b.start()
		if err == nil {
			t.Cleanup(func() { b.cleanup(t) })
			t.Logf("%s serving %s on %s (log %s)", name, root, addr, b.LogPath)
			return b
		}
		lastErr = err
		// Only a lost race for a port we picked is worth another try.
		if opts.Addr != "" || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("starting %s: %v", name, lastErr)
	return nil
}

func (b *Berth) start() error {
	logFile, err := os.OpenFile(b.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(b.bin, "serve", b.ConfigPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = b.env
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	b.mu.Lock()
	b.proc = p
	b.mu.Unlock()
	if err := waitReady(b.URL(), p, ReadyTimeout); err != nil {
		p.expected = true
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%v; log:\n%s", err, b.LogTail(40))
	}
	return nil
}

func (b *Berth) current() *process {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.proc
}

func (b *Berth) cleanup(t testing.TB) {
	p := b.current()
	if p != nil && p.exited() && !p.expected {
		t.Errorf("%s exited unexpectedly: %v", b.Name, p.waitErr)
	}
	if p != nil && !p.exited() {
		p.expected = true
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(StopTimeout):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if t.Failed() {
		t.Logf("tail of %s's log (%s):\n%s", b.Name, b.LogPath, b.LogTail(60))
		// A failed request can be far from the tail of a busy log, and
		// the log goes with the test's temporary directory.
		if problems := b.LogProblems(40); problems != "" {
			t.Logf("errors and warnings in %s's log:\n%s", b.Name, problems)
		}
	}
}

// Pid is the process id of the running berth (0 if none).
func (b *Berth) Pid() int {
	if p := b.current(); p != nil && !p.exited() {
		return p.cmd.Process.Pid
	}
	return 0
}

// Running reports whether the process is alive.
func (b *Berth) Running() bool {
	p := b.current()
	return p != nil && !p.exited()
}

// Stop sends SIGTERM and waits for the exit (SIGKILL after StopTimeout).
func (b *Berth) Stop(t testing.TB) {
	t.Helper()
	p := b.current()
	if p == nil || p.exited() {
		t.Fatalf("%s is not running (exit: %v)\n%s", b.Name, p.waitErr, b.LogTail(40))
	}
	p.expected = true
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(StopTimeout):
		t.Logf("%s ignored SIGTERM for %v; killing it", b.Name, StopTimeout)
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill sends SIGKILL (no chance to flush or clean up) and waits for the exit.
func (b *Berth) Kill(t testing.TB) {
	t.Helper()
	p := b.current()
	if p == nil || p.exited() {
		t.Fatalf("%s is not running (exit: %v)\n%s", b.Name, p.waitErr, b.LogTail(40))
	}
	p.expected = true
	p.cmd.Process.Kill()
	<-p.done
}

// Restart starts berth again with the same config: same address, same
// storage root, log appended to the same file. The previous process must
// have been stopped or killed.
func (b *Berth) Restart(t testing.TB) {
	t.Helper()
	if p := b.current(); p != nil && !p.exited() {
		t.Fatalf("%s is still running; Stop or Kill it first", b.Name)
	}
	// The port was just freed; retry briefly in case the kernel has not
	// released it yet (bounded by the deadline, not a fixed sleep).
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := b.start()
		if err == nil {
			t.Logf("%s restarted on %s", b.Name, b.Addr)
			return
		}
		if !strings.Contains(err.Error(), "address already in use") || time.Now().After(deadline) {
			t.Fatalf("restarting %s: %v", b.Name, err)
		}
	}
}

// waitReady polls GET /v2/ until it answers 200 or 401, the process exits,
// or the deadline passes.
func waitReady(base string, p *process, d time.Duration) error {
	deadline := time.Now().Add(d)
	hc := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := hc.Get(base + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer on %s/v2/ within %v (last error %v)", base, d, err)
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited during start-up: %v", p.waitErr)
		case <-tick.C:
		}
	}
}

// LogProblems returns the last n lines of berth's log at level WARN or
// ERROR.
func (b *Berth) LogProblems(n int) string {
	data, err := os.ReadFile(b.LogPath)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
			lines = append(lines, l)
		}
	}
	return Tail(strings.Join(lines, "\n"), n)
}

// LogTail returns the last n lines of berth's log.
func (b *Berth) LogTail(n int) string {
	data, err := os.ReadFile(b.LogPath)
	if err != nil {
		return err.Error()
	}
	return Tail(string(data), n)
}

// FreeAddr returns a 127.0.0.1 address with a port free at the time of the
// call.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// WaitFor polls cond every 25ms until it returns true, failing the test
// with what (and cond's last message) if timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, msg)
		}
		<-tick.C
	}
}

// RepoRoot finds the main module's root (the directory of berth's go.mod)
// above the working directory.
func RepoRoot() (string, error) {
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

func statSources(root string) error {
	return filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules":
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

// cleanEnv is the environment without REGISTRY_* overrides, which would
// change the config berth reads.
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
