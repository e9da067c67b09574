package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/testenv"
)

// Proc is a server other than berth that a test started (nginx, an S3
// server, pebble, ...), in a process group of its own so that its workers
// stop with it.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string // its stdout and stderr, appended
	done    chan struct{}
}

// StartProc starts cmd, which the caller has set up (arguments,
// environment, process attributes), with its output appended to logPath
// and in a new process group. At t.Cleanup the group gets SIGTERM, and
// SIGKILL after 10s; a failed test logs the tail of the log.
func StartProc(t testing.TB, name, logPath string, cmd *exec.Cmd) *Proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", name, logPath, Tail(p.Log(), 60))
		}
	})
	return p
}

// Log is what the process has written so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitListening waits up to 30s for addr to accept TCP connections,
// failing the test at once if the process exits.
func (p *Proc) WaitListening(t testing.TB, addr string) {
	t.Helper()
	WaitFor(t, 30*time.Second, p.Name+" listening on "+addr, func() (bool, string) {
		if p.Exited() {
			t.Fatalf("%s exited: %v\n%s", p.Name, p.Cmd.ProcessState, Tail(p.Log(), 30))
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ExitStatus describes how a command ended, for failure messages.
func ExitStatus(err error) string {
	if err == nil {
		return "exit 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Sprintf("exit %d", ee.ExitCode())
	}
	return err.Error()
}

// Clip keeps the last 6,000 bytes of a command's output, where its error
// usually is.
func Clip(s string) string {
	const max = 6000
	if len(s) > max {
		return "..." + s[len(s)-max:]
	}
	return s
}

var (
	dockerOnce sync.Once
	dockerErr  error
)

// RequireDocker returns unless the docker client is installed and a
// dockerd answers it; otherwise the test is testenv.Missing.
func RequireDocker(t testing.TB) {
	t.Helper()
	testenv.Tool(t, "docker", "install it with test/e2e/install-tools.sh")
	dockerOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
		if err != nil {
			dockerErr = fmt.Errorf("dockerd does not answer (`docker info`: %v: %s); start it with test/e2e/install-tools.sh or `dockerd --iptables=false --bridge=none &`",
				err, strings.TrimSpace(string(out)))
		}
	})
	if dockerErr != nil {
		testenv.Missing(t, dockerErr.Error())
	}
}
