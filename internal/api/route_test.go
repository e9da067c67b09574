package api_test

import (
	"testing"

	"github.com/berth-registry/berth/internal/api"
)

// Metrics label requests with these names: registry:2's, and nothing
// taken from the path itself.
func TestRouteName(t *testing.T) {
	for p, want := range map[string]string{
		"/v2":                         "base",
		"/v2/":                        "base",
		"/v2/_catalog":                "catalog",
		"/v2/a/b/manifests/latest":    "manifest",
		"/v2/manifests/manifests/v1":  "manifest",
		"/v2/a/blobs/sha256:abc":      "blob",
		"/v2/a/blobs/uploads/":        "blob-upload",
		"/v2/a/blobs/uploads":         "blob-upload",
		"/v2/a/blobs/uploads/0b8e-4c": "blob-upload-chunk",
		"/v2/a/tags/list":             "tags",
		"/v2/a/referrers/sha256:abc":  "referrers",
		"/v2/a":                       "",
		"/auth/token":                 "",
		"/metrics":                    "",
		"/v2/a/b/c/d/e/f/g/unknown/endpoint/at/all": "",
	} {
		if got := api.RouteName(p); got != want {
			t.Errorf("RouteName(%q) = %q, want %q", p, got, want)
		}
	}
}
