// Package pgtest runs a private PostgreSQL server on 127.0.0.1 for tests: its
// own data directory, socket directory and port under a temp dir, stopped and
// removed at cleanup. Without PostgreSQL installed, tests are skipped, or fail
// when CI is set. Install it with: apt-get install -y postgresql (TESTING.md).
//
// The server is tuned for tests (fsync off): never point it at real data.
package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/berth-registry/berth/internal/testenv"
)

// Server is a running PostgreSQL.
type Server struct {
	Host string // 127.0.0.1
	Port int
	Dir  string // data, socket and log; owned by the server's user

	bin     string
	runAs   *user.User // nil when the test's own user runs the server
	logPath string
	dbs     atomic.Int64
}

// BinDir finds the newest /usr/lib/postgresql/*/bin holding initdb, skipping
// the test (failing under CI) if there is none.
func BinDir(t testing.TB) string {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return pgVersion(matches[i]) > pgVersion(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0])
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	msg := "PostgreSQL not found (no /usr/lib/postgresql/*/bin/initdb): install it with `apt-get install -y postgresql`"
	testenv.Missing(t, msg)
	return ""
}

func pgVersion(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// Start initialises a new cluster and starts it on a free port. It is
// stopped, and its directory removed, in t.Cleanup. The server is a child
// of the test process (not daemonized by pg_ctl) and is killed with it,
// even when the test binary dies first (Linux).
func Start(t testing.TB) *Server {
	t.Helper()
	bin := BinDir(t)
	s := &Server{Host: "127.0.0.1", bin: bin}
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, and there is no postgres user to run PostgreSQL as: %v", err)
		}
		s.runAs = u
	}
	// Not t.TempDir: its parents are private to root, and the server runs
	// as postgres.
	dir, err := os.MkdirTemp("", "berth-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s.Dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if s.runAs != nil {
		uid, gid := ids(s.runAs)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	s.logPath = filepath.Join(dir, "postgres.log")
	if out, err := s.run(2*time.Minute, "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.Port = port
		lastErr = s.start(t, data)
		if lastErr == nil {
			return s
		}
	}
	t.Fatal(lastErr)
	return nil
}

func (s *Server) start(t testing.TB, data string) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", data, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1", "-k", s.Dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr(s.runAs)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	stop := func() {
		// SIGQUIT: immediate shutdown; the data is thrown away anyway.
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN("postgres", ""))
		if err == nil {
			conn.Close(ctx)
			cancel()
			break
		}
		cancel()
		select {
		case <-exited:
			return fmt.Errorf("postgres exited during start-up:\n%s", s.LogTail())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("postgres not ready within a minute: %v\n%s", err, s.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tail of the PostgreSQL log:\n%s", s.LogTail())
		}
		stop()
	})
	return nil
}

func (s *Server) run(timeout time.Duration, tool string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, tool), args...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = procAttr(s.runAs)
	if s.runAs != nil {
		cmd.Env = append(os.Environ(), "HOME="+s.runAs.HomeDir, "USER="+s.runAs.Username)
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.Bytes(), err
}

func ids(u *user.User) (int, int) {
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

// LogTail is the end of the server's log.
func (s *Server) LogTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// DSN is the URL of database db as user (superuser postgres when empty).
func (s *Server) DSN(db, user string) string {
	if user == "" {
		user = "postgres"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", user, s.Host, s.Port, db)
}

// Exec runs SQL statements in database db as the superuser.
func (s *Server) Exec(t testing.TB, db string, sql ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN(db, ""))
	if err != nil {
		t.Fatalf("connect to %s: %v", db, err)
	}
	defer conn.Close(ctx)
	for _, q := range sql {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// NewDatabase creates an empty database and returns its superuser DSN.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("berth_test_%d", s.dbs.Add(1))
	s.Exec(t, "postgres", "CREATE DATABASE "+name)
	return s.DSN(name, "")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
