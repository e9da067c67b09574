//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/test/harness"
)

// Images built in Go, for scenarios whose subject is not the building
// client (skopeo's OCI layout, regctl's tag listing, oras's subject).

type goBlob struct {
	Digest string
	Data   []byte
}

type goImage struct {
	Manifest  []byte
	Digest    string
	MediaType string
	Blobs     []goBlob // config first, then layers
	Children  []goImage
}

// tarOf makes an uncompressed tar of files (sorted, fixed metadata).
func tarOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipOf(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newGoImage is a one-layer OCI image for linux/arch holding files.
func newGoImage(t *testing.T, arch string, files map[string][]byte) goImage {
	t.Helper()
	layerTar := tarOf(t, files)
	layer := gzipOf(t, layerTar)
	config := mustMarshal(t, map[string]any{
		"architecture": arch,
		"os":           "linux",
		"config":       map[string]any{"Env": []string{"PATH=/"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{digestOf(layerTar)}},
	})
	m := mustMarshal(t, Manifest{
		SchemaVersion: 2,
		MediaType:     mtOCIManifest,
		Config:        Descriptor{MediaType: mtOCIConfig, Digest: digestOf(config), Size: int64(len(config))},
		Layers:        []Descriptor{{MediaType: mtOCILayerGzip, Digest: digestOf(layer), Size: int64(len(layer))}},
	})
	return goImage{
		Manifest:  m,
		Digest:    digestOf(m),
		MediaType: mtOCIManifest,
		Blobs:     []goBlob{{digestOf(config), config}, {digestOf(layer), layer}},
	}
}

// newGoIndex is an OCI index over images (each with its platform).
func newGoIndex(t *testing.T, images ...goImage) goImage {
	t.Helper()
	idx := Index{SchemaVersion: 2, MediaType: mtOCIIndex}
	for _, img := range images {
		var cfg struct {
			Architecture string `json:"architecture"`
			OS           string `json:"os"`
		}
		mustJSON(t, img.Blobs[0].Data, &cfg)
		idx.Manifests = append(idx.Manifests, Descriptor{
			MediaType: img.MediaType,
			Digest:    img.Digest,
			Size:      int64(len(img.Manifest)),
			Platform:  &Platform{Architecture: cfg.Architecture, OS: cfg.OS},
		})
	}
	body := mustMarshal(t, idx)
	return goImage{Manifest: body, Digest: digestOf(body), MediaType: mtOCIIndex, Children: images}
}

// pushGoImage uploads img (children first) into repo over plain HTTP and
// tags it with every tag.
func pushGoImage(t *testing.T, b *harness.Berth, repo string, img goImage, tags ...string) {
	t.Helper()
	for _, c := range img.Children {
		pushGoImage(t, b, repo, c)
	}
	for _, bl := range img.Blobs {
		if headBlobStatus(t, b, repo, bl.Digest) == http.StatusOK {
			continue
		}
		r := httpDo(t, http.MethodPost, b.URL()+"/v2/"+repo+"/blobs/uploads/", nil, nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("POST upload to %s: status %d: %s", repo, r.Status, r.Body)
		}
		loc, err := url.Parse(r.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(b.URL())
		loc = u.ResolveReference(loc)
		q := loc.Query()
		q.Set("digest", bl.Digest)
		loc.RawQuery = q.Encode()
		r = httpDo(t, http.MethodPut, loc.String(), map[string]string{"Content-Type": "application/octet-stream"}, bl.Data)
		if r.Status != http.StatusCreated {
			t.Fatalf("PUT blob %s to %s: status %d: %s", bl.Digest, repo, r.Status, r.Body)
		}
	}
	for _, ref := range append([]string{img.Digest}, tags...) {
		r := httpDo(t, http.MethodPut, b.URL()+"/v2/"+repo+"/manifests/"+ref, map[string]string{"Content-Type": img.MediaType}, img.Manifest)
		if r.Status != http.StatusCreated {
			t.Fatalf("PUT manifest %s:%s: status %d: %s", repo, ref, r.Status, r.Body)
		}
	}
}

// writeOCILayout writes an OCI image layout at dir with each image under
// its tag (org.opencontainers.image.ref.name).
func writeOCILayout(t *testing.T, dir string, tagged map[string]goImage) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`))
	var put func(img goImage)
	put = func(img goImage) {
		for _, c := range img.Children {
			put(c)
		}
		for _, bl := range img.Blobs {
			writeFile(t, filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(bl.Digest, "sha256:")), bl.Data)
		}
		writeFile(t, filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(img.Digest, "sha256:")), img.Manifest)
	}
	idx := Index{SchemaVersion: 2, MediaType: mtOCIIndex}
	tags := make([]string, 0, len(tagged))
	for tag := range tagged {
		tags = append(tags, tag)
	}
	slices.Sort(tags)
	for _, tag := range tags {
		img := tagged[tag]
		put(img)
		idx.Manifests = append(idx.Manifests, Descriptor{
			MediaType:   img.MediaType,
			Digest:      img.Digest,
			Size:        int64(len(img.Manifest)),
			Annotations: map[string]string{"org.opencontainers.image.ref.name": tag},
		})
	}
	writeFile(t, filepath.Join(dir, "index.json"), mustMarshal(t, idx))
}

// readOCILayout returns the layout's index.json (tag -> descriptor) and a
// reader for its blobs that checks every blob's content against its name.
func readOCILayout(t *testing.T, dir string) (map[string]Descriptor, func(dgst string) []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx Index
	mustJSON(t, data, &idx)
	refs := map[string]Descriptor{}
	for _, d := range idx.Manifests {
		refs[d.Annotations["org.opencontainers.image.ref.name"]] = d
	}
	blob := func(dgst string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(dgst, "sha256:")))
		if err != nil {
			t.Fatalf("OCI layout %s: blob %s: %v", dir, dgst, err)
		}
		if got := digestOf(b); got != dgst {
			t.Fatalf("OCI layout %s: blob %s holds content digesting to %s", dir, dgst, got)
		}
		return b
	}
	return refs, blob
}

// layerFile extracts name from a gzip-compressed layer.
func layerFile(t *testing.T, layer []byte, name string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	content, _, found := fileFromTar(t, zr, name)
	if !found {
		t.Fatalf("layer has no file %s", name)
	}
	return content
}
