package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// `berth backup -o FILE` while berth serves, then `berth restore -i FILE`
// into a new, empty root with a new configuration: the restored berth
// serves both images byte for byte. Restore refuses a root that holds
// repositories and a root a running berth serves.
func TestBackupRestore(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "registry")
	addr := freeAddr(t)
	cfg := gcConfig(t, dir, root, addr)
	one, two := newImage("backup one"), newImage("backup two")

	b := serve(t, dir, "http://"+addr, nil, cfg)
	push(t, b.base, "team/app", "v1", one)
	push(t, b.base, "other", "latest", two)

	archive := filepath.Join(dir, "registry.tar.gz")
	r := berth(t, dir, nil, "", "backup", cfg, "-o", archive)
	if r.code != 0 {
		t.Fatalf("berth backup while serving: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "backed up 2 repositories, 2 tags, 2 manifests, 6 blobs") {
		t.Errorf("backup summary: %q", r.stdout)
	}
	if head := readAll(t, mustOpen(t, archive))[:2]; head[0] != 0x1f || head[1] != 0x8b {
		t.Errorf("%s is not gzip: starts with % x", archive, head)
	}
	if partial, _ := filepath.Glob(filepath.Join(dir, ".registry.tar.gz.partial-*")); len(partial) > 0 {
		t.Errorf("temporary files left: %v", partial)
	}

	// The running berth holds the index of its own root: restoring over
	// it is refused, whether or not the root were empty.
	r = berth(t, dir, nil, "", "restore", cfg, "-i", archive)
	if r.code == 0 || !strings.Contains(r.stderr, "stop it first") {
		t.Errorf("restore into a served root: exit %d\n%s", r.code, r.stderr)
	}
	b.stopClean(t)

	// Stopped, the root still holds repositories.
	r = berth(t, dir, nil, "", "restore", cfg, "-i", archive)
	if r.code == 0 || !strings.Contains(r.stderr, "already holds repositories") {
		t.Errorf("restore into a non-empty root: exit %d\n%s", r.code, r.stderr)
	}

	dir2 := t.TempDir()
	root2 := filepath.Join(dir2, "restored")
	addr2 := freeAddr(t)
	cfg2 := gcConfig(t, dir2, root2, addr2)
	r = berth(t, dir2, nil, "", "restore", cfg2, "-i", archive)
	if r.code != 0 {
		t.Fatalf("berth restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "restored 2 repositories, 2 tags, 2 manifests, 6 blobs") ||
		!strings.Contains(r.stdout, "rebuilt: 2 repositories") {
		t.Errorf("restore summary: %q", r.stdout)
	}
	b2 := serve(t, dir2, "http://"+addr2, nil, cfg2)
	pull(t, b2.base, "team/app", "v1", one)
	pull(t, b2.base, "other", "latest", two)
	b2.stopClean(t)

	// A plain tar on standard output, restored from standard input.
	r = berth(t, dir2, nil, "", "backup", cfg2)
	if r.code != 0 || !strings.Contains(r.stderr, "backed up 2 repositories") {
		t.Fatalf("berth backup to stdout: exit %d\n%s", r.code, r.stderr)
	}
	dir3 := t.TempDir()
	cfg3 := gcConfig(t, dir3, filepath.Join(dir3, "again"), freeAddr(t))
	r = berth(t, dir3, nil, r.stdout, "restore", cfg3)
	if r.code != 0 || !strings.Contains(r.stdout, "restored 2 repositories") {
		t.Fatalf("berth restore from stdin: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// `berth backup` refuses to write a tar to a terminal.
func TestBackupRefusesTerminal(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("opens a pseudo-terminal the Linux way")
	}
	dir := t.TempDir()
	cfg := gcConfig(t, dir, filepath.Join(dir, "registry"), freeAddr(t))
	tty := openPTY(t)
	cmd := exec.Command(berthBin, "backup", cfg)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = tty, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(stderr.String(), "refusing to write a tar archive to a terminal") {
			t.Fatalf("berth backup to a terminal: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("berth backup to a terminal did not finish")
	}
}

// openPTY opens a pseudo-terminal and returns its terminal side.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return tty
}

func mustOpen(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
