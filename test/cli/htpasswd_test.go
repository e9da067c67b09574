package cli

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// checkEntry asserts line is "user:<bcrypt of password, cost >= 10>".
func checkEntry(t *testing.T, line, user, password string) {
	t.Helper()
	u, hash, ok := strings.Cut(strings.TrimSpace(line), ":")
	if !ok || u != user {
		t.Fatalf("entry %q: want user %q", line, user)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		t.Fatalf("entry %q does not match the password: %v", line, err)
	}
	if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost < 10 {
		t.Fatalf("bcrypt cost %d (%v), want >= 10", cost, err)
	}
}

// Seed 002 and seed 004 make htpasswd files with
// `docker run --entrypoint htpasswd registry:2 -Bbn user pass`.
func TestHtpasswdPrintsAnEntry(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"htpasswd", "-Bbn", "testuser", "testpassword"},
		{"htpasswd", "testuser", "testpassword"},
	} {
		r := berth(t, dir, nil, "", args...)
		if r.code != 0 {
			t.Fatalf("berth %v: exit %d: %s", args, r.code, r.stderr)
		}
		checkEntry(t, r.stdout, "testuser", "testpassword")
	}

	r := berth(t, dir, nil, "s3cret\n", "htpasswd", "--password-stdin", "--cost", "11", "ci")
	if r.code != 0 {
		t.Fatalf("--password-stdin: exit %d: %s", r.code, r.stderr)
	}
	checkEntry(t, r.stdout, "ci", "s3cret")

	for _, c := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"htpasswd", "alice"}, "", "no password"}, // stdin is not a terminal
		{[]string{"htpasswd", "--password-stdin", "alice"}, "", "empty"},
		{[]string{"htpasswd", "al:ice", "pw"}, "", "':'"},
		{[]string{"htpasswd", "--cost", "5", "alice", "pw"}, "", "--cost"},
		{[]string{"htpasswd", "alice", strings.Repeat("x", 73)}, "", "72 bytes"},
		{[]string{"htpasswd", "--delete", "alice"}, "", "--file"},
	} {
		r := berth(t, dir, nil, c.stdin, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || r.stdout != "" {
			t.Errorf("berth %v: exit %d, stdout %q, stderr %q; want failure mentioning %q", c.args, r.code, r.stdout, r.stderr, c.want)
		}
	}
}

func TestUserAddReplaceDelete(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "htpasswd")
	// A file written by hand or by htpasswd(1): comments, an apr1 entry.
	orig := "# registry users\nbob:$apr1$x$y\n\ncarol:$2y$05$C3oDhd2O3nvcacmvGxojN.MPPvcV7LApYQU3meFMU5GeC27kb.0sK\n"
	writeFile(t, file, orig)
	if err := os.Chmod(file, 0o640); err != nil {
		t.Fatal(err)
	}

	if r := berth(t, dir, nil, "", "user", "add", "--file", file, "alice", "pw1"); r.code != 0 {
		t.Fatalf("user add: %d %s", r.code, r.stderr)
	}
	if r := berth(t, dir, nil, "pw2\n", "htpasswd", "--file", file, "--password-stdin", "carol"); r.code != 0 {
		t.Fatalf("htpasswd --file (replace): %d %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(readFile(t, file), "\n"), "\n")
	if len(lines) != 5 || lines[0] != "# registry users" || lines[1] != "bob:$apr1$x$y" || lines[2] != "" {
		t.Fatalf("other lines not kept:\n%s", strings.Join(lines, "\n"))
	}
	checkEntry(t, lines[3], "carol", "pw2") // replaced in place
	checkEntry(t, lines[4], "alice", "pw1") // appended
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode after rewrite: %v %v, want 0640", st.Mode(), err)
	}

	r := berth(t, dir, nil, "", "user", "list", "--file", file)
	if r.code != 0 || r.stdout != "bob\ncarol\nalice\n" {
		t.Errorf("user list: %d %q %s", r.code, r.stdout, r.stderr)
	}

	if r := berth(t, dir, nil, "", "user", "del", "--file", file, "bob"); r.code != 0 {
		t.Fatalf("user del: %d %s", r.code, r.stderr)
	}
	if r := berth(t, dir, nil, "", "htpasswd", "-D", "--file", file, "alice"); r.code != 0 {
		t.Fatalf("htpasswd -D: %d %s", r.code, r.stderr)
	}
	got := readFile(t, file)
	if strings.Contains(got, "bob:") || strings.Contains(got, "alice:") || !strings.HasPrefix(got, "# registry users\n\ncarol:") {
		t.Errorf("after deletes:\n%s", got)
	}
	r = berth(t, dir, nil, "", "user", "del", "--file", file, "nobody")
	if r.code == 0 || !strings.Contains(r.stderr, "nobody") {
		t.Errorf("deleting a missing user: %d %s", r.code, r.stderr)
	}
	if readFile(t, file) != got {
		t.Error("a failed delete changed the file")
	}
	// No temporary files are left beside it.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files in the directory: %v", entries)
	}

	// A new file is created.
	newFile := filepath.Join(dir, "new", "htpasswd")
	os.Mkdir(filepath.Dir(newFile), 0o755)
	if r := berth(t, dir, nil, "", "user", "add", "-f", newFile, "dave", "pw"); r.code != 0 {
		t.Fatalf("user add to a new file: %d %s", r.code, r.stderr)
	}
	checkEntry(t, readFile(t, newFile), "dave", "pw")
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every command explains itself with examples.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"},
		{"serve", "--help"},
		{"config", "check", "--help"},
		{"htpasswd", "--help"},
		{"user", "add", "--help"},
		{"user", "del", "--help"},
	} {
		r := berth(t, t.TempDir(), nil, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("berth %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		if len(args) > 1 && !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("berth %v: no examples:\n%s", args, r.stdout)
		}
	}
	r := berth(t, t.TempDir(), nil, "", "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "berth ") {
		t.Errorf("berth version: %d %q", r.code, r.stdout)
	}
}

// On a terminal the password is asked for twice and not echoed. script(1)
// gives berth a pseudo-terminal; the test types each line only after the
// prompt is shown, as a person would.
func TestHtpasswdPromptsWithoutEcho(t *testing.T) {
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) not installed (util-linux)")
	}
	cmd := exec.Command(scriptBin, "-qec", berthBin+" htpasswd alice", "/dev/null")
	cmd.Env = cleanEnv()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := &lockedBuffer{}
	copied := make(chan struct{})
	go func() { io.Copy(out, stdout); close(copied) }()
	waitFor := func(s string) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			text, changed := out.snapshot()
			if strings.Contains(text, s) {
				return
			}
			select {
			case <-changed:
			case <-copied:
				t.Fatalf("berth ended before printing %q: %q", s, out.String())
			case <-timeout:
				t.Fatalf("no %q within 30s: %q", s, text)
			}
		}
	}
	const password = "typed-Secret-9"
	waitFor("Password for alice: ")
	io.WriteString(stdin, password+"\n")
	waitFor("Retype password: ")
	io.WriteString(stdin, password+"\n")
	<-copied
	if err := cmd.Wait(); err != nil {
		t.Fatalf("berth htpasswd on a terminal: %v: %q", err, out.String())
	}
	text := out.String()
	if strings.Contains(text, password) {
		t.Errorf("the password was echoed: %q", text)
	}
	i := strings.Index(text, "alice:$2")
	if i < 0 {
		t.Fatalf("no entry printed: %q", text)
	}
	checkEntry(t, strings.Fields(text[i:])[0], "alice", password)
}
