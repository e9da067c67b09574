package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/berth-registry/berth/internal/content"
)

// What a page shows of a manifest is decoded here, apart from the content
// package's validation: content checks what it must to accept a push; the
// UI reads display fields (platforms, artifact types, annotations) that
// content has no use for. Bodies were validated on push, so a body that
// does not decode (an opaque media type) is shown by media type alone.

// Kinds of manifest, as the pages name them.
const (
	kindImage    = "image"
	kindIndex    = "index"
	kindArtifact = "artifact"
	kindOther    = "other"
)

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType"`
	Annotations  map[string]string `json:"annotations"`
	Platform     *platform         `json:"platform"`
}

type platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant"`
	OSVersion    string `json:"os.version"`
}

func (p *platform) String() string {
	if p == nil || p.OS == "" && p.Architecture == "" {
		return "unknown"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	if p.OSVersion != "" {
		s += " (" + p.OSVersion + ")"
	}
	return s
}

type manifestDoc struct {
	ArtifactType string            `json:"artifactType"`
	Config       *descriptor       `json:"config"`
	Layers       []descriptor      `json:"layers"`
	Manifests    []descriptor      `json:"manifests"`
	Subject      *descriptor       `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

// imageConfigTypes are the config media types of runnable images; a
// manifest with any other config (or an artifactType) is an artifact:
// a signature, an SBOM, a Helm chart.
var imageConfigTypes = map[string]bool{
	"application/vnd.oci.image.config.v1+json":       true,
	"application/vnd.docker.container.image.v1+json": true,
}

// decodeManifest reads the display fields of a stored manifest body; nil if
// the body is not a JSON object of the usual shape.
func decodeManifest(body []byte) *manifestDoc {
	var doc manifestDoc
	if json.Unmarshal(body, &doc) != nil {
		return nil
	}
	return &doc
}

// kindOf classifies a manifest by its media type and, for image manifests,
// by what its config says it is.
func kindOf(mediaType string, doc *manifestDoc) string {
	switch mediaType {
	case content.MediaTypeOCIIndex, content.MediaTypeDockerList:
		return kindIndex
	case content.MediaTypeOCIManifest, content.MediaTypeDockerManifest:
		if doc == nil {
			return kindOther
		}
		if doc.ArtifactType != "" || doc.Config == nil || !imageConfigTypes[doc.Config.MediaType] {
			return kindArtifact
		}
		return kindImage
	}
	return kindOther
}

// totalSize is what pulling the manifest's blobs transfers: config plus
// layers. ok is false for indexes and unknown kinds, which have no single
// size.
func totalSize(kind string, doc *manifestDoc) (size int64, ok bool) {
	if doc == nil || kind != kindImage && kind != kindArtifact {
		return 0, false
	}
	if doc.Config != nil {
		size += doc.Config.Size
	}
	for _, l := range doc.Layers {
		size += l.Size
	}
	return size, true
}

// maxConfigSize bounds the image config read for a manifest page. Real
// configs are a few KiB; a larger one is not worth the page's time.
const maxConfigSize = 1 << 20

// imageConfig is the part of an image config blob a page shows.
type imageConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant"`
	Created      string `json:"created"`
	Config       struct {
		Labels map[string]string `json:"Labels"`
	} `json:"config"`
}

// readConfig reads and decodes an image's config blob, if it is one that is
// linked into repo and small enough.
func readConfig(ctx context.Context, reg *content.Registry, repo string, d *descriptor) (*imageConfig, error) {
	if d == nil || !imageConfigTypes[d.MediaType] {
		return nil, nil
	}
	dg, err := content.ParseDigest(d.Digest)
	if err != nil {
		return nil, err
	}
	info, err := reg.Blob(ctx, repo, dg)
	if err != nil {
		return nil, err
	}
	if info.Size > maxConfigSize {
		return nil, fmt.Errorf("config %s is %d bytes, more than the %d a page reads", dg, info.Size, maxConfigSize)
	}
	rc, err := reg.ReadBlob(ctx, dg, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxConfigSize))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", dg, err)
	}
	var c imageConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decode config %s: %w", dg, err)
	}
	return &c, nil
}

// keyValue is one entry of a sorted map (labels, annotations) for a table.
type keyValue struct{ Key, Value string }

func sortedPairs(m map[string]string) []keyValue {
	out := make([]keyValue, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, keyValue{k, m[k]})
	}
	return out
}

// humanSize renders a byte count in binary units, one decimal.
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	v := float64(n) / 1024
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// shortDigest is the algorithm and the first 12 hex digits, as docker
// shows image ids.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}

// formatCreated shows an RFC 3339 time in UTC to the minute; anything else
// as written.
func formatCreated(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}
