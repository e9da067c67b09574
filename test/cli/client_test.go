package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// image is a tiny image: a config, one layer, a manifest.
type image struct {
	config, layer, manifest []byte
}

func newImage(seed string) image {
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":"` + seed + `"}`)
	layer := []byte("layer bytes for " + seed)
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ociManifest,
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cfg), "size": len(cfg)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(layer), "size": len(layer)}},
	})
	return image{config: cfg, layer: layer, manifest: m}
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
	if method == http.MethodGet && strings.Contains(u, "/manifests/") {
		req.Header.Set("Accept", ociManifest)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	return resp, readAll(t, resp.Body)
}

// resolve turns a Location header into an absolute URL.
func resolve(t *testing.T, base, loc string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	l, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return b.ResolveReference(l).String()
}

// pushBlob uploads b to repo with POST + PUT, returning the status of the
// first request that failed (or of the final PUT).
func pushBlob(t *testing.T, base, repo string, b []byte) (int, []byte) {
	t.Helper()
	resp, body := do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if resp.StatusCode != http.StatusAccepted {
		return resp.StatusCode, body
	}
	u := resolve(t, base, resp.Header.Get("Location"))
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	resp, body = do(t, http.MethodPut, u+sep+"digest="+sha(b), "application/octet-stream", bytes.NewReader(b))
	return resp.StatusCode, body
}

// push pushes img as repo:tag and fails the test on any error.
func push(t *testing.T, base, repo, tag string, img image) {
	t.Helper()
	for _, b := range [][]byte{img.config, img.layer} {
		if code, body := pushBlob(t, base, repo, b); code != http.StatusCreated {
			t.Fatalf("pushing blob to %s: %d %s", repo, code, body)
		}
	}
	resp, body := do(t, http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, ociManifest, bytes.NewReader(img.manifest))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT manifest %s:%s: %s %s", repo, tag, resp.Status, body)
	}
}

// pull fetches repo:tag and its blobs and checks they are img's.
func pull(t *testing.T, base, repo, tag string, img image) {
	t.Helper()
	resp, body := do(t, http.MethodGet, base+"/v2/"+repo+"/manifests/"+tag, "", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, img.manifest) {
		t.Fatalf("GET manifest %s:%s: %s %s", repo, tag, resp.Status, body)
	}
	for _, b := range [][]byte{img.config, img.layer} {
		resp, got := do(t, http.MethodGet, base+"/v2/"+repo+"/blobs/"+sha(b), "", nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, b) {
			t.Fatalf("GET blob %s: %s %q", sha(b), resp.Status, got)
		}
	}
}

// errorCode returns the first error code of a registry error body.
func errorCode(body []byte) string {
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return fmt.Sprintf("(no error body: %q)", body)
	}
	return e.Errors[0].Code
}
