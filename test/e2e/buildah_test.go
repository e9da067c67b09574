//go:build e2e

package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/test/harness"
)

// TestBuildahManifestListPlatforms: buildah builds FROM scratch images for
// linux/amd64 and linux/arm64 (different /arch.txt), makes a manifest list
// and pushes it with --all. crane and regctl show that list (same bytes,
// two platforms); docker and podman each pull both platforms and get the
// right image and file.
func TestBuildahManifestListPlatforms(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"buildah", "podman", "crane", "regctl"} {
		requireTool(t, tool)
	}
	d := newDocker(t)
	b := harness.Start(t, harness.Options{})
	c := containersEnv(t, b)
	dir := t.TempDir()

	archs := []string{"amd64", "arm64"}
	content := map[string][]byte{}
	for _, arch := range archs {
		content[arch] = []byte("built for linux/" + arch + " by buildah, " + b.Addr + "\n")
		ctx := filepath.Join(dir, arch)
		writeFile(t, filepath.Join(ctx, "arch.txt"), content[arch])
		writeFile(t, filepath.Join(ctx, "Containerfile"), []byte("FROM scratch\nCOPY arch.txt /arch.txt\n"))
	}
	c.run("buildah", "bud", "--platform", "linux/amd64", "-t", "localhost/e2e-amd64", filepath.Join(dir, "amd64"))
	c.run("buildah", "bud", "--arch", "arm64", "--os", "linux", "-t", "localhost/e2e-arm64", filepath.Join(dir, "arm64"))
	c.run("buildah", "manifest", "create", "localhost/e2e-list")
	for _, arch := range archs {
		c.run("buildah", "manifest", "add", "localhost/e2e-list", "containers-storage:localhost/e2e-"+arch)
	}
	ref := b.Addr + "/e2e/multiarch:v1"
	digestFile := filepath.Join(dir, "digest")
	c.run("buildah", "manifest", "push", "--all", "--tls-verify=false", "--digestfile", digestFile, "localhost/e2e-list", "docker://"+ref)
	raw, err := os.ReadFile(digestFile)
	if err != nil {
		t.Fatal(err)
	}
	listDigest := strings.TrimSpace(string(raw))

	// The list as berth serves it.
	m := getManifest(t, b, "e2e/multiarch", "v1")
	if m.Digest != listDigest {
		t.Fatalf("buildah pushed %s, berth serves %s", listDigest, m.Digest)
	}
	if m.MediaType != mtDockerList && m.MediaType != mtOCIIndex {
		t.Fatalf("list served as %s", m.MediaType)
	}
	var idx Index
	mustJSON(t, m.Body, &idx)
	child := map[string]string{} // arch -> manifest digest
	for _, e := range idx.Manifests {
		if e.Platform == nil || e.Platform.OS != "linux" {
			t.Fatalf("list entry without linux platform: %+v", e)
		}
		child[e.Platform.Architecture] = e.Digest
		if st := headManifestStatus(t, b, "e2e/multiarch", e.Digest); st != http.StatusOK {
			t.Errorf("HEAD child manifest %s: %d", e.Digest, st)
		}
	}
	if len(idx.Manifests) != 2 || child["amd64"] == "" || child["arm64"] == "" || child["amd64"] == child["arm64"] {
		t.Fatalf("list platforms %v, want distinct amd64 and arm64:\n%s", child, m.Body)
	}

	// crane and regctl show the index.
	r := runner{t: t}
	if got := r.run("crane", "manifest", "--insecure", ref); got != string(m.Body) {
		t.Errorf("crane manifest differs from berth's body:\n%s\nvs\n%s", got, m.Body)
	}
	if got := strings.TrimSpace(r.run("crane", "digest", "--insecure", ref)); got != listDigest {
		t.Errorf("crane digest %s, want %s", got, listDigest)
	}
	for _, arch := range archs {
		if got := strings.TrimSpace(r.run("crane", "digest", "--insecure", "--platform", "linux/"+arch, ref)); got != child[arch] {
			t.Errorf("crane digest --platform linux/%s: %s, want %s", arch, got, child[arch])
		}
	}
	rc := regctlEnv(t, b)
	if got := rc.run("regctl", "manifest", "get", "--format", "raw-body", ref); strings.TrimSuffix(got, "\n") != strings.TrimSuffix(string(m.Body), "\n") {
		t.Errorf("regctl manifest get differs from berth's body:\n%s\nvs\n%s", got, m.Body)
	}
	if got := strings.TrimSpace(rc.run("regctl", "image", "digest", ref)); got != listDigest {
		t.Errorf("regctl image digest %s, want %s", got, listDigest)
	}
	if got := strings.TrimSpace(rc.run("regctl", "image", "digest", "--platform", "linux/arm64", ref)); got != child["arm64"] {
		t.Errorf("regctl image digest --platform linux/arm64: %s, want %s", got, child["arm64"])
	}

	// docker pulls each platform.
	for _, arch := range []string{"arm64", "amd64"} {
		platform := "linux/" + arch
		d.pull(ref, "--platform", platform)
		if got := strings.TrimSpace(d.run("docker", "image", "inspect", "--format", "{{.Architecture}}", ref)); got != arch {
			t.Errorf("docker pull --platform %s: architecture %s", platform, got)
		}
		if got, _ := d.file(ref, "/arch.txt", platform); !bytes.Equal(got, content[arch]) {
			t.Errorf("docker, %s: /arch.txt = %q, want %q", platform, got, content[arch])
		}
		d.rmi(ref)
	}

	// podman pulls each platform.
	for _, arch := range []string{"arm64", "amd64"} {
		platform := "linux/" + arch
		c.run("podman", "pull", "--tls-verify=false", "--platform", platform, ref)
		if got := strings.TrimSpace(c.run("podman", "image", "inspect", "--format", "{{.Architecture}}", ref)); got != arch {
			t.Errorf("podman pull --platform %s: architecture %s", platform, got)
		}
		// podman records the list's digest and the platform manifest's.
		var repoDigests []string
		mustJSON(t, []byte(c.run("podman", "image", "inspect", "--format", "{{json .RepoDigests}}", ref)), &repoDigests)
		for _, dg := range []string{listDigest, child[arch]} {
			if !slices.Contains(repoDigests, b.Addr+"/e2e/multiarch@"+dg) {
				t.Errorf("podman pull --platform %s: RepoDigests %v lack %s", platform, repoDigests, dg)
			}
		}
		if got := podmanFile(t, c, ref, "arch.txt"); !bytes.Equal(got, content[arch]) {
			t.Errorf("podman, %s: /arch.txt = %q, want %q", platform, got, content[arch])
		}
		c.run("podman", "rmi", ref)
	}
}
