// Package seed writes a registry:2 (CNCF distribution 2.8.2) storage tree
// directly on disk, file by file, without going through any registry: many
// small repositories with one tag each and one repository with many tags.
// Both berth and distribution then serve the same tree, which is how the
// benchmarks compare catalog and tag listings and berth's index build.
//
// It deliberately does not use berth's own code, so a layout bug in berth
// cannot hide behind a matching bug here. The layout is distribution's:
//
//	docker/registry/v2/blobs/sha256/<hh>/<hex>/data
//	docker/registry/v2/repositories/<name>/_layers/sha256/<hex>/link
//	docker/registry/v2/repositories/<name>/_manifests/revisions/sha256/<hex>/link
//	docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
//	docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link
//
// Link files hold the digest as text with no newline, as distribution
// writes them.
package seed

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"
)

// Media types of the seeded images (OCI image manifests).
const (
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// DefaultTagRepo is the repository that receives the many tags.
const DefaultTagRepo = "seed/tags"

// Options say what to write.
type Options struct {
	// Root is the registry's storage root (storage.filesystem.rootdirectory).
	Root string
	// Repos is the number of small repositories, each with tag "latest".
	Repos int
	// Tags is the number of tags in TagRepo, each on its own manifest; 0
	// writes no tag repository.
	Tags int
	// TagRepo defaults to DefaultTagRepo.
	TagRepo string
	// Workers writing in parallel; 0 means 8.
	Workers int
}

// Result describes what was written.
type Result struct {
	Repos     int    `json:"repos"`     // repositories, including TagRepo
	Tags      int    `json:"tags"`      // tags in TagRepo
	Manifests int    `json:"manifests"` // manifest revisions
	Files     int    `json:"files"`     // files written
	TagRepo   string `json:"tag_repo,omitempty"`
}

// RepoName is the name of small repository i: 100 repositories per
// namespace, so the tree has nested names like real registries do.
func RepoName(i int) string { return fmt.Sprintf("org%03d/app%05d", i/100, i) }

// TagName is the name of tag i in the tag repository.
func TagName(i int) string { return fmt.Sprintf("v%05d", i) }

// Image is one image's blobs and manifest.
type Image struct {
	Config, Layer, Manifest []byte
	ConfigDigest            digest.Digest
	LayerDigest             digest.Digest
	ManifestDigest          digest.Digest
}

// NewImage returns an OCI image of one layer whose manifest is unique to
// ref (it carries ref as an annotation) and whose config and layer are
// given. Use SharedBlobs for blobs shared by many images.
func NewImage(config, layer []byte, ref string) Image {
	img := Image{Config: config, Layer: layer,
		ConfigDigest: digest.FromBytes(config), LayerDigest: digest.FromBytes(layer)}
	img.Manifest = ManifestJSON(img.ConfigDigest, int64(len(config)),
		[]Descriptor{{MediaType: MediaTypeLayer, Digest: img.LayerDigest, Size: int64(len(layer))}},
		map[string]string{"org.berth.bench.ref": ref})
	img.ManifestDigest = digest.FromBytes(img.Manifest)
	return img
}

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
}

// ManifestJSON is an OCI image manifest.
func ManifestJSON(config digest.Digest, configSize int64, layers []Descriptor, annotations map[string]string) []byte {
	b, err := json.Marshal(struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Config        Descriptor        `json:"config"`
		Layers        []Descriptor      `json:"layers"`
		Annotations   map[string]string `json:"annotations,omitempty"`
	}{2, MediaTypeManifest, Descriptor{MediaTypeConfig, config, configSize}, layers, annotations})
	if err != nil {
		panic(err)
	}
	return b
}

// ConfigJSON is a minimal image config naming one layer's diff id.
func ConfigJSON(diffID digest.Digest, marker string) []byte {
	b, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Labels": map[string]string{"org.berth.bench": marker}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []digest.Digest{diffID}},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// SharedBlobs returns the config and the 1 KiB layer every seeded image
// uses, as a registry's many images share base layers.
func SharedBlobs() (config, layer []byte) {
	layer = make([]byte, 1024)
	r := rand.NewChaCha8([32]byte{'s', 'e', 'e', 'd'})
	r.Read(layer)
	return ConfigJSON(digest.FromBytes(layer), "seed"), layer
}

type writer struct {
	root string
	mu   sync.Mutex
	dirs map[string]bool
	n    int
}

func (w *writer) v2(parts ...string) string {
	return filepath.Join(append([]string{w.root, "docker", "registry", "v2"}, parts...)...)
}

func (w *writer) put(p string, data []byte) error {
	dir := filepath.Dir(p)
	w.mu.Lock()
	known := w.dirs[dir]
	w.mu.Unlock()
	if !known {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		w.mu.Lock()
		w.dirs[dir] = true
		w.mu.Unlock()
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	w.mu.Lock()
	w.n++
	w.mu.Unlock()
	return nil
}

func (w *writer) blob(d digest.Digest, data []byte) error {
	hex := d.Encoded()
	return w.put(w.v2("blobs", string(d.Algorithm()), hex[:2], hex, "data"), data)
}

func (w *writer) link(p string, d digest.Digest) error { return w.put(p, []byte(d)) }

func (w *writer) repo(name string, parts ...string) string {
	return w.v2(append([]string{"repositories", filepath.FromSlash(name)}, parts...)...)
}

// image writes img's manifest blob and links it (and the shared blobs) into
// repo under tag. The shared blobs themselves are written once by Write.
func (w *writer) image(repo, tag string, img Image) error {
	d := img.ManifestDigest
	steps := []func() error{
		func() error { return w.blob(d, img.Manifest) },
		func() error {
			return w.link(w.repo(repo, "_layers", "sha256", img.ConfigDigest.Encoded(), "link"), img.ConfigDigest)
		},
		func() error {
			return w.link(w.repo(repo, "_layers", "sha256", img.LayerDigest.Encoded(), "link"), img.LayerDigest)
		},
		func() error {
			return w.link(w.repo(repo, "_manifests", "revisions", "sha256", d.Encoded(), "link"), d)
		},
		func() error {
			return w.link(w.repo(repo, "_manifests", "tags", tag, "index", "sha256", d.Encoded(), "link"), d)
		},
		func() error { return w.link(w.repo(repo, "_manifests", "tags", tag, "current", "link"), d) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// Write seeds the tree described by opts. Existing files are overwritten;
// writing the same options twice gives the same tree.
func Write(opts Options) (Result, error) {
	if opts.Root == "" {
		return Result{}, fmt.Errorf("seed: no root directory")
	}
	if opts.TagRepo == "" {
		opts.TagRepo = DefaultTagRepo
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	w := &writer{root: opts.Root, dirs: map[string]bool{}}
	config, layer := SharedBlobs()
	if err := w.blob(digest.FromBytes(config), config); err != nil {
		return Result{}, err
	}
	if err := w.blob(digest.FromBytes(layer), layer); err != nil {
		return Result{}, err
	}

	type job struct{ repo, tag string }
	jobs := make(chan job)
	errc := make(chan error, opts.Workers)
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := w.image(j.repo, j.tag, NewImage(config, layer, j.repo+":"+j.tag)); err != nil {
					errc <- err
					for range jobs { // drain so the producer finishes
					}
					return
				}
			}
		}()
	}
	for i := range opts.Repos {
		jobs <- job{RepoName(i), "latest"}
	}
	for i := range opts.Tags {
		jobs <- job{opts.TagRepo, TagName(i)}
	}
	close(jobs)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return Result{}, fmt.Errorf("seed: %w", err)
	}
	res := Result{Repos: opts.Repos, Tags: opts.Tags, Manifests: opts.Repos + opts.Tags, Files: w.n}
	if opts.Tags > 0 {
		res.Repos++
		res.TagRepo = opts.TagRepo
	}
	return res, nil
}
