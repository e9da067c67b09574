package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartProc runs berth's binary as any other server would be run:
// StartProc, WaitListening, Log, and the stop at cleanup.
func TestStartProc(t *testing.T) {
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "root"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Binary(t), "serve", cfg)
	cmd.Env = cleanEnv()
	p := StartProc(t, "berth as a proc", filepath.Join(dir, "proc.log"), cmd)
	p.WaitListening(t, addr)
	if p.Exited() {
		t.Fatalf("exited after listening:\n%s", p.Log())
	}
	WaitFor(t, ReadyTimeout, "a start-up line in the log", func() (bool, string) {
		return strings.Contains(p.Log(), "berth"), p.Log()
	})
}

func TestTail(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"a\nb\n\n\n", 1, "b"},
		{"", 3, ""},
	} {
		if got := Tail(c.in, c.n); got != c.want {
			t.Errorf("Tail(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
