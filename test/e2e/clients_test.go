//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/berth-registry/berth/test/harness"
)

// --- podman, buildah, skopeo -------------------------------------------------

// containersEnv gives podman/buildah/skopeo a private storage (vfs, under
// the test's temp dir), a registries.conf marking b insecure, and a
// containers.conf that keeps events and temp files there too.
func containersEnv(t *testing.T, b *harness.Berth) runner {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "storage.conf"), []byte(fmt.Sprintf(`[storage]
driver = "vfs"
graphroot = "%s/graph"
runroot = "%s/run"
`, dir, dir)))
	writeFile(t, filepath.Join(dir, "registries.conf"), []byte(fmt.Sprintf(`unqualified-search-registries = []

[[registry]]
location = "%s"
insecure = true
`, b.Addr)))
	writeFile(t, filepath.Join(dir, "containers.conf"), []byte(fmt.Sprintf(`[engine]
events_logger = "none"
tmp_dir = "%s/tmp"
`, dir)))
	return runner{t: t, dir: dir, env: []string{
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(dir, "registries.conf"),
		"CONTAINERS_CONF=" + filepath.Join(dir, "containers.conf"),
		"TMPDIR=" + dir,
	}}
}

// podmanFile reads path from a pulled image through `podman image mount`.
func podmanFile(t *testing.T, c runner, ref, path string) []byte {
	t.Helper()
	mnt := strings.TrimSpace(c.run("podman", "image", "mount", ref))
	defer c.run("podman", "image", "unmount", ref)
	data, err := os.ReadFile(filepath.Join(mnt, path))
	if err != nil {
		t.Fatalf("podman image %s: %v", ref, err)
	}
	return data
}

// --- regctl -----------------------------------------------------------------

// regctlEnv gives regctl a config in a temp HOME with TLS off for b.
func regctlEnv(t *testing.T, b *harness.Berth) runner {
	t.Helper()
	requireTool(t, "regctl")
	home := t.TempDir()
	r := runner{t: t, dir: home, env: []string{"HOME=" + home}}
	r.run("regctl", "registry", "set", "--tls", "disabled", b.Addr)
	return r
}

// --- docker -----------------------------------------------------------------

// dockerClient runs the docker CLI with a private config dir, the legacy
// builder (FROM scratch builds offline, no buildx needed), and removes the
// images and containers the test made.
type dockerClient struct {
	runner
	mu     sync.Mutex
	images []string
}

func newDocker(t *testing.T) *dockerClient {
	t.Helper()
	harness.RequireDocker(t)
	cfg := t.TempDir()
	d := &dockerClient{runner: runner{t: t, env: []string{"DOCKER_CONFIG=" + cfg, "DOCKER_BUILDKIT=0"}}}
	t.Cleanup(func() {
		d.mu.Lock()
		refs := d.images
		d.mu.Unlock()
		if len(refs) > 0 {
			// Best effort: an image may already be gone.
			d.try("docker", append([]string{"rmi", "-f"}, refs...)...)
		}
	})
	return d
}

// track marks refs for removal when the test ends.
func (d *dockerClient) track(refs ...string) {
	d.mu.Lock()
	d.images = append(d.images, refs...)
	d.mu.Unlock()
}

// build runs `docker build -t tag ctx` and returns the image ID.
func (d *dockerClient) build(ctxDir, tag string) string {
	d.t.Helper()
	d.track(tag)
	d.run("docker", "build", "-q", "-t", tag, ctxDir)
	return d.imageID(tag)
}

func (d *dockerClient) imageID(ref string) string {
	d.t.Helper()
	return strings.TrimSpace(d.run("docker", "image", "inspect", "--format", "{{.Id}}", ref))
}

func (d *dockerClient) exists(ref string) bool {
	d.t.Helper()
	_, _, err := d.try("docker", "image", "inspect", "--format", "{{.Id}}", ref)
	return err == nil
}

var pushDigestRE = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: \d+`)

// push runs `docker push ref` and returns the manifest digest it reports.
func (d *dockerClient) push(ref string) string {
	d.t.Helper()
	out := d.run("docker", "push", ref)
	m := pushDigestRE.FindStringSubmatch(out)
	if m == nil {
		d.t.Fatalf("docker push %s: no digest in output:\n%s", ref, out)
	}
	return m[1]
}

func (d *dockerClient) pull(ref string, extra ...string) {
	d.t.Helper()
	d.track(ref)
	d.run("docker", append(append([]string{"pull"}, extra...), ref)...)
}

// rmi removes refs and checks they are gone.
func (d *dockerClient) rmi(refs ...string) {
	d.t.Helper()
	d.run("docker", append([]string{"rmi"}, refs...)...)
	for _, r := range refs {
		if d.exists(r) {
			d.t.Fatalf("docker rmi %s: image still present", r)
		}
	}
}

// file returns a file of image ref (its content if at most 1 MiB, and its
// sha256 in any case), read through `docker create` and `docker cp`.
func (d *dockerClient) file(ref, path string, platform string) ([]byte, string) {
	d.t.Helper()
	args := []string{"create"}
	if platform != "" {
		args = append(args, "--platform", platform)
	}
	cid := strings.TrimSpace(d.run("docker", append(args, ref, "/no-such-command")...))
	defer d.try("docker", "rm", "-f", cid)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := d.cmd(ctx, "docker", "cp", cid+":"+path, "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	content, sum, found := fileFromTar(d.t, out, filepath.Base(path))
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		d.t.Fatalf("docker cp %s:%s: %v: %s", ref, path, err, stderr.String())
	}
	if !found {
		d.t.Fatalf("docker cp %s:%s: no such file in the stream", ref, path)
	}
	return content, sum
}
