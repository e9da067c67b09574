//go:build e2e

package e2e

import (
	"bytes"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/test/harness"
)

// TestSkopeoCopyLayoutListDelete: skopeo copies a two-platform index and a
// single image from an OCI layout into berth (--all --preserve-digests:
// digests unchanged), between two repositories, and back out into a new OCI
// layout (same index, every blob intact, files readable); lists the tags;
// deletes one, which leaves the other tag and the source repository alone.
func TestSkopeoCopyLayoutListDelete(t *testing.T) {
	t.Parallel()
	requireTool(t, "skopeo")
	b := harness.Start(t, harness.Options{})
	c := containersEnv(t, b)
	dir := t.TempDir()

	files := map[string][]byte{}
	var plats []goImage
	for _, arch := range []string{"amd64", "arm64"} {
		files[arch] = []byte("skopeo layout image for " + arch + "\n")
		plats = append(plats, newGoImage(t, arch, map[string][]byte{"etc/arch": files[arch]}))
	}
	multi := newGoIndex(t, plats...)
	single := newGoImage(t, "amd64", map[string][]byte{"single.txt": []byte("a single image\n")})
	src := filepath.Join(dir, "src-layout")
	writeOCILayout(t, src, map[string]goImage{"multi": multi, "single": single})

	reg := "docker://" + b.Addr + "/"
	copyArgs := func(extra ...string) []string {
		return append([]string{"copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests"}, extra...)
	}

	// OCI layout -> berth.
	c.run("skopeo", copyArgs("--all", "oci:"+src+":multi", reg+"e2e/skopeo/src:multi")...)
	c.run("skopeo", copyArgs("oci:"+src+":single", reg+"e2e/skopeo/src:single")...)
	if m := getManifest(t, b, "e2e/skopeo/src", "multi"); m.Digest != multi.Digest || !bytes.Equal(m.Body, multi.Manifest) {
		t.Fatalf("e2e/skopeo/src:multi is %s, the layout's index is %s", m.Digest, multi.Digest)
	}
	for _, p := range plats {
		if st := headManifestStatus(t, b, "e2e/skopeo/src", p.Digest); st != http.StatusOK {
			t.Errorf("platform manifest %s in e2e/skopeo/src: HEAD %d", p.Digest, st)
		}
		for _, bl := range p.Blobs {
			if st := headBlobStatus(t, b, "e2e/skopeo/src", bl.Digest); st != http.StatusOK {
				t.Errorf("blob %s in e2e/skopeo/src: HEAD %d", bl.Digest, st)
			}
		}
	}
	if got := getManifest(t, b, "e2e/skopeo/src", "single").Digest; got != single.Digest {
		t.Fatalf("e2e/skopeo/src:single is %s, want %s", got, single.Digest)
	}

	// Repository -> repository.
	c.run("skopeo", copyArgs("--all", reg+"e2e/skopeo/src:multi", reg+"e2e/skopeo/dst:multi")...)
	c.run("skopeo", copyArgs(reg+"e2e/skopeo/src:single", reg+"e2e/skopeo/dst:single")...)
	raw := c.run("skopeo", "inspect", "--tls-verify=false", "--raw", reg+"e2e/skopeo/dst:multi")
	if digestOf([]byte(raw)) != multi.Digest {
		t.Errorf("skopeo inspect --raw of e2e/skopeo/dst:multi digests to %s, want %s", digestOf([]byte(raw)), multi.Digest)
	}
	if got := strings.TrimSpace(c.run("skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", reg+"e2e/skopeo/dst:single")); got != single.Digest {
		t.Errorf("skopeo inspect e2e/skopeo/dst:single: %s, want %s", got, single.Digest)
	}

	// berth -> a new OCI layout.
	out := filepath.Join(dir, "out-layout")
	c.run("skopeo", copyArgs("--all", reg+"e2e/skopeo/dst:multi", "oci:"+out+":multi")...)
	refs, blob := readOCILayout(t, out)
	if refs["multi"].Digest != multi.Digest {
		t.Fatalf("copied-out layout's multi is %s, want %s", refs["multi"].Digest, multi.Digest)
	}
	var idx Index
	mustJSON(t, blob(multi.Digest), &idx)
	if len(idx.Manifests) != 2 {
		t.Fatalf("copied-out index has %d manifests", len(idx.Manifests))
	}
	for _, e := range idx.Manifests {
		var man Manifest
		mustJSON(t, blob(e.Digest), &man)
		blob(man.Config.Digest)
		got := layerFile(t, blob(man.Layers[0].Digest), "etc/arch")
		if want := files[e.Platform.Architecture]; !bytes.Equal(got, want) {
			t.Errorf("copied-out %s image: /etc/arch = %q, want %q", e.Platform.Architecture, got, want)
		}
	}

	// Tags, then delete one.
	listTags := func(repo string) []string {
		var tl struct {
			Repository string
			Tags       []string
		}
		mustJSON(t, []byte(c.run("skopeo", "list-tags", "--tls-verify=false", reg+repo)), &tl)
		slices.Sort(tl.Tags)
		return tl.Tags
	}
	if got := listTags("e2e/skopeo/dst"); !slices.Equal(got, []string{"multi", "single"}) {
		t.Fatalf("skopeo list-tags e2e/skopeo/dst: %v, want [multi single]", got)
	}
	c.run("skopeo", "delete", "--tls-verify=false", reg+"e2e/skopeo/dst:single")
	if got := listTags("e2e/skopeo/dst"); !slices.Equal(got, []string{"multi"}) {
		t.Errorf("after delete, skopeo list-tags e2e/skopeo/dst: %v, want [multi]", got)
	}
	if st := headManifestStatus(t, b, "e2e/skopeo/dst", single.Digest); st != http.StatusNotFound {
		t.Errorf("deleted manifest by digest: HEAD %d, want 404", st)
	}
	if st := headManifestStatus(t, b, "e2e/skopeo/dst", "single"); st != http.StatusNotFound {
		t.Errorf("deleted tag: HEAD %d, want 404", st)
	}
	c.fails("skopeo", "inspect", "--tls-verify=false", "--raw", reg+"e2e/skopeo/dst:single")
	if got := getManifest(t, b, "e2e/skopeo/dst", "multi").Digest; got != multi.Digest {
		t.Errorf("e2e/skopeo/dst:multi after the delete: %s", got)
	}
	if got := getManifest(t, b, "e2e/skopeo/src", "single").Digest; got != single.Digest {
		t.Errorf("e2e/skopeo/src:single after deleting it in dst: %s", got)
	}
}
