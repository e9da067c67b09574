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
	"time"

	"github.com/berth-registry/berth/test/harness"
)

// TestOrasArtifactAndReferrers: oras pushes an artifact with an
// artifactType and pulls the same file back; attaches a signature-like
// referrer to an image; `oras discover` lists it, through the referrers API
// (berth logs GET /v2/<name>/referrers/<digest>) and not through the
// tag-schema fallback (no sha256-<hex> tag is ever written).
func TestOrasArtifactAndReferrers(t *testing.T) {
	t.Parallel()
	requireTool(t, "oras")
	b := harness.Start(t, harness.Options{})
	dir := t.TempDir()
	o := runner{t: t, dir: dir, env: []string{"HOME=" + dir}}

	// An artifact with its own artifactType.
	const artifactType = "application/vnd.berth.e2e.bundle.v1"
	const layerType = "application/vnd.berth.e2e.payload.v1+json"
	payload := []byte(`{"payload":"berth e2e","addr":"` + b.Addr + `"}` + "\n")
	writeFile(t, filepath.Join(dir, "payload.json"), payload)
	artRef := b.Addr + "/e2e/oras/artifact:v1"
	o.run("oras", "push", "--plain-http", "--artifact-type", artifactType, artRef, "payload.json:"+layerType)

	m := getManifest(t, b, "e2e/oras/artifact", "v1")
	var art Manifest
	mustJSON(t, m.Body, &art)
	if art.ArtifactType != artifactType || len(art.Layers) != 1 || art.Layers[0].MediaType != layerType || art.Layers[0].Digest != digestOf(payload) {
		t.Fatalf("artifact manifest does not carry what was pushed:\n%s", m.Body)
	}
	if fetched := o.run("oras", "manifest", "fetch", "--plain-http", artRef); digestOf([]byte(fetched)) != m.Digest {
		t.Errorf("oras manifest fetch digests to %s, berth serves %s", digestOf([]byte(fetched)), m.Digest)
	}
	pulled := filepath.Join(dir, "pulled")
	o.run("oras", "pull", "--plain-http", "-o", pulled, artRef)
	if got, err := os.ReadFile(filepath.Join(pulled, "payload.json")); err != nil || !bytes.Equal(got, payload) {
		t.Errorf("oras pull: payload.json = %q (%v), want %q", got, err, payload)
	}

	// A subject image, and a signature attached to it.
	img := newGoImage(t, "amd64", map[string][]byte{"app.txt": []byte("signed app\n")})
	pushGoImage(t, b, "e2e/oras/app", img, "v1")
	subject := b.Addr + "/e2e/oras/app:v1"
	const sigType = "application/vnd.berth.e2e.signature.v1"
	sig := []byte(`{"signed":"` + img.Digest + `","by":"berth-e2e"}`)
	writeFile(t, filepath.Join(dir, "sig.json"), sig)
	attachMark := len(b.Requests(t))
	out := o.run("oras", "attach", "--plain-http", "--artifact-type", sigType, "--format", "json", subject, "sig.json:application/vnd.berth.e2e.signature.v1+json")
	var attached struct {
		Digest string `json:"digest"`
	}
	mustJSON(t, []byte(out), &attached)
	if attached.Digest == "" {
		t.Fatalf("oras attach printed no digest:\n%s", out)
	}
	var sigMan Manifest
	mustJSON(t, getManifest(t, b, "e2e/oras/app", attached.Digest).Body, &sigMan)
	if sigMan.Subject == nil || sigMan.Subject.Digest != img.Digest || sigMan.ArtifactType != sigType {
		t.Fatalf("signature manifest lacks subject %s / artifactType %s: %+v", img.Digest, sigType, sigMan)
	}

	// Discover it.
	discoverMark := len(b.Requests(t))
	var found struct {
		Manifests []Descriptor `json:"manifests"`
	}
	mustJSON(t, []byte(o.run("oras", "discover", "--plain-http", "--format", "json", subject)), &found)
	if len(found.Manifests) != 1 || found.Manifests[0].Digest != attached.Digest || found.Manifests[0].ArtifactType != sigType {
		t.Fatalf("oras discover: %+v, want the one signature %s", found.Manifests, attached.Digest)
	}
	var none struct {
		Manifests []Descriptor `json:"manifests"`
	}
	mustJSON(t, []byte(o.run("oras", "discover", "--plain-http", "--format", "json", "--artifact-type", "application/vnd.berth.e2e.other", subject)), &none)
	if len(none.Manifests) != 0 {
		t.Errorf("oras discover --artifact-type other: %+v, want none", none.Manifests)
	}

	// Through the referrers API, not the tag fallback.
	referrersPath := "/v2/e2e/oras/app/referrers/" + img.Digest
	b.WaitRequest(t, discoverMark, 10*time.Second, "GET "+referrersPath+" 200", func(r harness.Request) bool {
		return r.Method == http.MethodGet && r.Path == referrersPath && r.Status == http.StatusOK
	})
	fallbackTag := "sha256-" + strings.TrimPrefix(img.Digest, "sha256:")
	for _, r := range b.RequestsSince(t, attachMark) {
		if strings.Contains(r.Path, "/manifests/"+fallbackTag) || strings.HasSuffix(r.Path, "/tags/list") {
			t.Errorf("oras used the referrers tag schema: %s", r)
		}
	}
	if tags := tagList(t, b, "e2e/oras/app"); !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("tags of e2e/oras/app: %v, want [v1] (no %s fallback tag)", tags, fallbackTag)
	}
	if st := headManifestStatus(t, b, "e2e/oras/app", fallbackTag); st != http.StatusNotFound {
		t.Errorf("HEAD fallback tag %s: %d, want 404", fallbackTag, st)
	}
}
