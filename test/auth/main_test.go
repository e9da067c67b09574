//go:build e2e

// Package auth tests berth's access control end to end: a built berth
// (test/harness) with configs written to temp dirs, driven by the real
// docker engine, podman and skopeo, against htpasswd files edited while it
// runs, a real slapd, robot tokens made with `berth token`, and tokens from
// a stand-in for cesanta/docker_auth. It is behind the e2e build tag:
//
//	test/e2e/install-tools.sh          # docker, podman, skopeo (as root)
//	apt-get install slapd ldap-utils   # see TESTING.md
//	go test -tags e2e -count=1 ./test/auth/
//
// A missing tool skips a test locally and fails it when CI is set.
package auth

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/internal/auth/htpasswd"
	"github.com/berth-registry/berth/internal/testenv"
	"github.com/berth-registry/berth/test/harness"
)

const cmdTimeout = 3 * time.Minute

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

func requireTool(t *testing.T, name string) string {
	t.Helper()
	return testenv.Tool(t, name, "install it with test/e2e/install-tools.sh")
}

// --- running tools ----------------------------------------------------------

type runner struct {
	t   *testing.T
	env []string
	dir string
}

// exec runs name with stdin and returns stdout, stderr and the error.
func (r runner) exec(stdin string, name string, args ...string) (string, string, error) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), r.env...)
	cmd.Dir = r.dir
	cmd.WaitDelay = 10 * time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r.t.Logf("$ %s %s  [%v, %s]", name, redactArgs(args), exitStatus(err), time.Since(start).Round(time.Millisecond))
	return stdout.String(), stderr.String(), err
}

// redactArgs hides credentials in logged command lines.
func redactArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if i > 0 && strings.Contains(args[i-1], "creds") {
			if u, _, ok := strings.Cut(a, ":"); ok {
				out[i] = u + ":***"
			}
		}
	}
	return strings.Join(out, " ")
}

// ok runs and fails the test unless it exits 0; it returns stdout.
func (r runner) ok(stdin, name string, args ...string) string {
	r.t.Helper()
	out, errOut, err := r.exec(stdin, name, args...)
	if err != nil {
		r.t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, redactArgs(args), err, clip(out), clip(errOut))
	}
	return out
}

// fails runs and fails the test if it exits 0; it returns stdout+stderr.
func (r runner) fails(stdin, name string, args ...string) string {
	r.t.Helper()
	out, errOut, err := r.exec(stdin, name, args...)
	if err == nil {
		r.t.Fatalf("%s %s succeeded, want an error\nstdout:\n%s", name, redactArgs(args), clip(out))
	}
	return out + errOut
}

var (
	exitStatus = harness.ExitStatus
	clip       = harness.Clip
)

// --- docker -----------------------------------------------------------------

// dockerClient has its own config dir (its logins) and removes its images.
type dockerClient struct {
	runner
	config string
	mu     sync.Mutex
	images []string
}

func newDocker(t *testing.T) *dockerClient {
	t.Helper()
	harness.RequireDocker(t)
	cfg := t.TempDir()
	d := &dockerClient{runner: runner{t: t, env: []string{"DOCKER_CONFIG=" + cfg}}, config: cfg}
	t.Cleanup(func() {
		d.mu.Lock()
		refs := d.images
		d.mu.Unlock()
		if len(refs) > 0 {
			d.exec("", "docker", append([]string{"rmi", "-f"}, refs...)...)
		}
	})
	return d
}

func (d *dockerClient) track(refs ...string) {
	d.mu.Lock()
	d.images = append(d.images, refs...)
	d.mu.Unlock()
}

// importImage makes a one-layer image ref from files with `docker import`.
func (d *dockerClient) importImage(ref string, files map[string]string) {
	d.t.Helper()
	path := filepath.Join(d.t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(path, tarOf(d.t, files), 0o644); err != nil {
		d.t.Fatal(err)
	}
	d.track(ref)
	d.ok("", "docker", "import", path, ref)
}

func (d *dockerClient) login(addr, user, pass string) {
	d.t.Helper()
	d.ok(pass+"\n", "docker", "login", "-u", user, "--password-stdin", addr)
}

func (d *dockerClient) logout(addr string) {
	d.t.Helper()
	d.ok("", "docker", "logout", addr)
}

func (d *dockerClient) push(ref string) { d.t.Helper(); d.ok("", "docker", "push", ref) }

func (d *dockerClient) pull(ref string) {
	d.t.Helper()
	d.track(ref)
	d.exec("", "docker", "rmi", "-f", ref)
	d.ok("", "docker", "pull", ref)
}

func (d *dockerClient) pullFails(ref string) string {
	d.t.Helper()
	d.exec("", "docker", "rmi", "-f", ref)
	return d.fails("", "docker", "pull", ref)
}

// authEntry is the docker CLI's stored login for addr.
func (d *dockerClient) authEntry(addr string) map[string]string {
	d.t.Helper()
	data, err := os.ReadFile(filepath.Join(d.config, "config.json"))
	if err != nil {
		d.t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]map[string]string `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		d.t.Fatal(err)
	}
	return cfg.Auths[addr]
}

// --- podman and skopeo -------------------------------------------------------

// containersEnv gives podman and skopeo private storage and configuration.
func containersEnv(t *testing.T, addr string) runner {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("storage.conf", fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = \"%s/graph\"\nrunroot = \"%s/run\"\n", dir, dir))
	write("registries.conf", fmt.Sprintf("unqualified-search-registries = []\n\n[[registry]]\nlocation = \"%s\"\ninsecure = true\n", addr))
	write("containers.conf", fmt.Sprintf("[engine]\nevents_logger = \"none\"\ntmp_dir = \"%s/tmp\"\n", dir))
	write("auth.json", "{}\n")
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o755)
	return runner{t: t, dir: dir, env: []string{
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(dir, "registries.conf"),
		"CONTAINERS_CONF=" + filepath.Join(dir, "containers.conf"),
		"REGISTRY_AUTH_FILE=" + filepath.Join(dir, "auth.json"),
		"TMPDIR=" + dir,
	}}
}

// podmanImage makes a one-layer image ref in podman's storage.
func podmanImage(t *testing.T, c runner, ref string, files map[string]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(path, tarOf(t, files), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("", "podman", "import", path, ref)
}

// --- content ----------------------------------------------------------------

func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeHtpasswd writes users (name → password) as bcrypt entries.
func writeHtpasswd(t *testing.T, path string, users map[string]string) {
	t.Helper()
	var b strings.Builder
	for u, p := range users {
		l, err := htpasswd.Line(u, p, bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(l)
	}
	// Write beside and rename, as editors and `berth user` do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// --- HTTP -------------------------------------------------------------------

type resp = harness.Response

var do = harness.Do

func basic(user, pass string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
}

func bearer(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// fetchToken gets a token from berth's (or another) token endpoint.
func fetchToken(t *testing.T, realm string, header map[string]string, service string, scopes ...string) (string, resp) {
	t.Helper()
	q := "service=" + service
	for _, s := range scopes {
		q += "&scope=" + s
	}
	r := do(t, "GET", realm+"?"+q, header, nil)
	var tr struct {
		Token string `json:"token"`
	}
	json.Unmarshal(r.Body, &tr)
	return tr.Token, r
}

// catalog lists the repositories the caller sees.
func catalog(t *testing.T, b *harness.Berth, header map[string]string) []string {
	t.Helper()
	r := do(t, "GET", b.URL()+"/v2/_catalog", header, nil)
	if r.Status != 200 {
		t.Fatalf("catalog: %d %s", r.Status, r.Body)
	}
	var c struct {
		Repositories []string `json:"repositories"`
	}
	json.Unmarshal(r.Body, &c)
	return c.Repositories
}

// noSecretsLogged checks berth's log for the given secrets.
func noSecretsLogged(t *testing.T, b *harness.Berth, secrets ...string) {
	t.Helper()
	data, err := os.ReadFile(b.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if s != "" && bytes.Contains(data, []byte(s)) {
			t.Errorf("berth's log contains the secret %.6s...", s)
		}
	}
	for _, marker := range []string{"Authorization", "eyJ", "berth_"} {
		if bytes.Contains(data, []byte(marker)) {
			t.Errorf("berth's log contains %q", marker)
		}
	}
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
