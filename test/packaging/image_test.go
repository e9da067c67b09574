//go:build packaging

// Package packaging builds berth's container image with deploy/build-image.sh
// and runs it with the real Docker engine the way the seed articles run
// registry:2: docker run -d -v DIR:/var/lib/registry -e REGISTRY_..., then
// pushes and pulls over HTTP and checks where the data landed.
//
// CI's dockerd runs with --bridge=none, so containers use --network host and
// the port is chosen with -e REGISTRY_HTTP_ADDR=127.0.0.1:PORT instead of
// -p PORT:5000.
//
//	go test -tags packaging ./test/packaging/
//
// Without a Docker engine the tests skip, unless CI=true: then they fail.
package packaging

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/test/harness"
)

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

// docker runs a docker command and returns its combined output.
func docker(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(t, 2*time.Minute, args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestImage(t *testing.T) {
	harness.RequireDocker(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("berth-packaging-test:%d", os.Getpid())
	build := exec.Command(filepath.Join(root, "deploy", "build-image.sh"), tag)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("deploy/build-image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { docker(t, time.Minute, "rmi", "-f", tag) })
	size := mustDocker(t, "image", "inspect", "-f", "{{.Size}}", tag)
	t.Logf("image %s: %s bytes", tag, size)

	t.Run("registry2 defaults", func(t *testing.T) { testDefaults(t, tag) })
	t.Run("bind mount", func(t *testing.T) { testBindMount(t, tag) })
	t.Run("bind mount owned by nonroot", func(t *testing.T) { testNonrootBindMount(t, tag) })
	t.Run("named volume", func(t *testing.T) { testNamedVolume(t, tag) })
	t.Run("htpasswd", func(t *testing.T) { testHtpasswd(t, tag) })
}

// The image's metadata is registry:2's: port, volume, config path.
func testDefaults(t *testing.T, tag string) {
	var cfg struct {
		Entrypoint   []string
		Cmd          []string
		ExposedPorts map[string]any
		Volumes      map[string]any
		WorkingDir   string
		Env          []string
	}
	out := mustDocker(t, "image", "inspect", "-f", "{{json .Config}}", tag)
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Entrypoint, " ") != "/berth" || strings.Join(cfg.Cmd, " ") != "serve /etc/docker/registry/config.yml" {
		t.Errorf("entrypoint %v cmd %v", cfg.Entrypoint, cfg.Cmd)
	}
	if _, ok := cfg.ExposedPorts["5000/tcp"]; !ok {
		t.Errorf("exposed ports %v, want 5000/tcp", cfg.ExposedPorts)
	}
	if _, ok := cfg.Volumes["/var/lib/registry"]; !ok {
		t.Errorf("volumes %v, want /var/lib/registry", cfg.Volumes)
	}
	// The shipped config is valid and starts without warnings.
	out = mustDocker(t, "run", "--rm", tag, "config", "check", "/etc/docker/registry/config.yml")
	if !strings.Contains(out, "rootdirectory: /var/lib/registry") || !strings.Contains(out, "addr: :5000") ||
		strings.Contains(out, "warning") || !strings.Contains(out, "valid") {
		t.Errorf("config check of the shipped config:\n%s", out)
	}
}

type container struct {
	id   string
	base string
}

// run starts a detached container on the host network with REGISTRY_HTTP_ADDR
// on a free loopback port, and waits until /v2/ answers.
func run(t *testing.T, tag string, args ...string) *container {
	t.Helper()
	addr := freeAddr(t)
	all := append([]string{"run", "-d", "--network", "host", "-e", "REGISTRY_HTTP_ADDR=" + addr}, args...)
	all = append(all, tag)
	id := mustDocker(t, all...)
	c := &container{id: id, base: "http://" + addr}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := docker(t, time.Minute, "logs", id)
			t.Logf("container log:\n%s", logs)
		}
		docker(t, time.Minute, "rm", "-f", id)
	})
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := hc.Get(c.base + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		if state, _ := docker(t, time.Minute, "inspect", "-f", "{{.State.Status}}", id); state != "running" {
			logs, _ := docker(t, time.Minute, "logs", id)
			t.Fatalf("container %s: %s\n%s", id[:12], state, logs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: /v2/ not answering after 60s: %v", id[:12], err)
		}
		<-tick.C
	}
}

// stop stops the container (SIGTERM) and checks it exited cleanly.
func (c *container) stop(t *testing.T) {
	t.Helper()
	mustDocker(t, "stop", "-t", "30", c.id)
	if code := mustDocker(t, "inspect", "-f", "{{.State.ExitCode}}", c.id); code != "0" {
		t.Errorf("exit code after docker stop: %s", code)
	}
}

func (c *container) logs(t *testing.T) string {
	t.Helper()
	return mustDocker(t, "logs", c.id)
}

// Seed 003 and seed 001 mount a host directory at /var/lib/registry. A
// directory root owns (a registry:2 tree, or one docker created) is served
// as root, as registry:2 does; the data lands in it in registry:2's layout.
// Seed 001's read-only mode then serves the same tree without writes.
func testBindMount(t *testing.T, tag string) {
	dir := t.TempDir()
	c := run(t, tag, "-v", dir+":/var/lib/registry", "-e", "REGISTRY_STORAGE_DELETE_ENABLED=true")
	img := newImage("bind")
	push(t, c.base, "library/alpine", "3.20", img)
	pull(t, c.base, "library/alpine", "3.20", img)
	checkLayout(t, dir, "library/alpine", "3.20", img, 0)
	if !strings.Contains(c.logs(t), "running as root because the data directory is owned by root") {
		t.Errorf("no word on running as root:\n%s", c.logs(t))
	}
	c.stop(t)

	ro := run(t, tag, "-v", dir+":/var/lib/registry", "-e", "REGISTRY_STORAGE_MAINTENANCE_READONLY=enabled: true")
	pull(t, ro.base, "library/alpine", "3.20", img)
	resp, body := do(t, http.MethodPost, ro.base+"/v2/library/alpine/blobs/uploads/", "", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), "UNSUPPORTED") {
		t.Errorf("push to the read-only container: %s %s, want 405 UNSUPPORTED", resp.Status, body)
	}
	ro.stop(t)
}

// A host directory owned by the image's nonroot user is served without root.
func testNonrootBindMount(t *testing.T, tag string) {
	if os.Getuid() != 0 {
		t.Skip("needs root to chown the directory")
	}
	dir := t.TempDir()
	if err := os.Chown(dir, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	c := run(t, tag, "-v", dir+":/var/lib/registry")
	img := newImage("nonroot")
	push(t, c.base, "team/app", "v1", img)
	pull(t, c.base, "team/app", "v1", img)
	checkLayout(t, dir, "team/app", "v1", img, 65532)
	if !strings.Contains(c.logs(t), "running unprivileged") {
		t.Errorf("no word on running unprivileged:\n%s", c.logs(t))
	}
	c.stop(t)
}

// Seed 002's systemd unit runs registry:2 with -v docker_registry:/var/lib/registry
// and REGISTRY_HTTP_ADDR; a new named volume takes the image's ownership,
// so berth runs unprivileged in it.
func testNamedVolume(t *testing.T, tag string) {
	vol := fmt.Sprintf("berth_packaging_test_%d", os.Getpid())
	t.Cleanup(func() { docker(t, time.Minute, "volume", "rm", "-f", vol) })
	c := run(t, tag, "-v", vol+":/var/lib/registry")
	img := newImage("volume")
	push(t, c.base, "ubuntu", "16.04", img)
	pull(t, c.base, "ubuntu", "16.04", img)
	c.stop(t)
	if os.Getuid() == 0 {
		dir := mustDocker(t, "volume", "inspect", "-f", "{{.Mountpoint}}", vol)
		checkLayout(t, dir, "ubuntu", "16.04", img, 65532)
	}
}

// Seeds 002 and 004 make htpasswd files with the image:
// docker run --entrypoint htpasswd registry:2 -Bbn user pass.
func testHtpasswd(t *testing.T, tag string) {
	out := mustDocker(t, "run", "--rm", tag, "htpasswd", "-Bbn", "testuser", "testpassword")
	user, hash, _ := strings.Cut(strings.TrimSpace(out), ":")
	if user != "testuser" || bcrypt.CompareHashAndPassword([]byte(hash), []byte("testpassword")) != nil {
		t.Errorf("htpasswd output %q", out)
	}
}

// checkLayout checks repo:tag's files in registry:2's layout under dir,
// owned by uid.
func checkLayout(t *testing.T, dir, repo, tag string, img image, uid int) {
	t.Helper()
	v2 := filepath.Join(dir, "docker", "registry", "v2")
	link := filepath.Join(v2, "repositories", repo, "_manifests", "tags", tag, "current", "link")
	b, err := os.ReadFile(link)
	if err != nil || string(b) != sha(img.manifest) {
		t.Fatalf("tag link %s: %q %v", link, b, err)
	}
	h := strings.TrimPrefix(sha(img.layer), "sha256:")
	data := filepath.Join(v2, "blobs", "sha256", h[:2], h, "data")
	b, err = os.ReadFile(data)
	if err != nil || !bytes.Equal(b, img.layer) {
		t.Fatalf("layer %s: %v", data, err)
	}
	for _, p := range []string{link, data, filepath.Join(dir, "berth", "index.db")} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := int(st.Sys().(*syscall.Stat_t).Uid); got != uid {
			t.Errorf("%s is owned by uid %d, want %d", p, got, uid)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// A tiny registry client.

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

type image struct{ config, layer, manifest []byte }

func newImage(seed string) image {
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":"` + seed + `"}`)
	layer := []byte("layer of " + seed)
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ociManifest,
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cfg), "size": len(cfg)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(layer), "size": len(layer)}},
	})
	return image{cfg, layer, m}
}

func do(t *testing.T, method, u, contentType string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", ociManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func push(t *testing.T, base, repo, tag string, img image) {
	t.Helper()
	for _, b := range [][]byte{img.config, img.layer} {
		resp, body := do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST upload: %s %s", resp.Status, body)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		b0, _ := url.Parse(base)
		u := b0.ResolveReference(loc)
		q := u.Query()
		q.Set("digest", sha(b))
		u.RawQuery = q.Encode()
		resp, body = do(t, http.MethodPut, u.String(), "application/octet-stream", bytes.NewReader(b))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT blob: %s %s", resp.Status, body)
		}
	}
	resp, body := do(t, http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, ociManifest, bytes.NewReader(img.manifest))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT manifest: %s %s", resp.Status, body)
	}
}

func pull(t *testing.T, base, repo, tag string, img image) {
	t.Helper()
	resp, body := do(t, http.MethodGet, base+"/v2/"+repo+"/manifests/"+tag, "", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, img.manifest) {
		t.Fatalf("GET manifest: %s %s", resp.Status, body)
	}
	for _, b := range [][]byte{img.config, img.layer} {
		resp, got := do(t, http.MethodGet, base+"/v2/"+repo+"/blobs/"+sha(b), "", nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, b) {
			t.Fatalf("GET blob: %s", resp.Status)
		}
	}
}
