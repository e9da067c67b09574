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
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL.
type Server struct {
	Host string // 127.0.0.1
	Port int
	Dir  string // data, socket and log; owned by the server's user

	bin     string
	runAs   string // "" when the test's own user runs the server
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
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, so this is a failure, not a skip)")
	}
	t.Skip(msg)
	return ""
}

func pgVersion(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// Start initialises a new cluster and starts it on a free port. It is
// stopped, and its directory removed, in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := BinDir(t)
	s := &Server{Host: "127.0.0.1", bin: bin}
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		if _, err := user.Lookup("postgres"); err != nil {
			t.Fatalf("running as root, and there is no postgres user to run PostgreSQL as: %v", err)
		}
		s.runAs = "postgres"
	}
	// Not t.TempDir: its parents are private to root, and the server runs
	// as postgres.
	dir, err := os.MkdirTemp("", "berth-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s.Dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if s.runAs != "" {
		u, _ := user.Lookup(s.runAs)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
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
		opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", port, dir)
		out, err := s.run(2*time.Minute, "pg_ctl", "-D", data, "-l", s.logPath, "-o", opts, "-w", "-t", "60", "start")
		if err == nil {
			lastErr = nil
			break
		}
		lastErr = fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, s.LogTail())
	}
	if lastErr != nil {
		t.Fatal(lastErr)
	}
	t.Cleanup(func() {
		if out, err := s.run(time.Minute, "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"); err != nil {
			t.Logf("pg_ctl stop: %v\n%s", err, out)
		}
		if t.Failed() {
			t.Logf("tail of the PostgreSQL log:\n%s", s.LogTail())
		}
	})
	return s
}

func (s *Server) run(timeout time.Duration, tool string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	path := filepath.Join(s.bin, tool)
	var cmd *exec.Cmd
	if s.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", s.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = s.Dir
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.Bytes(), err
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
