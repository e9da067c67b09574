package interop

import (
	"crypto/rand"
	"encoding/json"
	"maps"
	"slices"
	"testing"
)

// Repositories the fixture set writes; nested, deep and single-component
// names all appear in the catalog.
const (
	repoOCI    = "interop/oci"
	repoDocker = "interop/docker"
	repoMulti  = "interop/multi/arch"
	repoSolo   = "solo"
)

type blobRef struct {
	Repo   string
	Digest string
	Data   []byte
}

type manifestRef struct {
	Repo      string
	Digest    string
	MediaType string
	Body      []byte
}

// fixture is everything pushed, and what every registry serving the tree
// must therefore answer.
type fixture struct {
	blobs     []blobRef                    // pullable from their repository
	manifests []manifestRef                // pullable by digest
	tags      map[string]map[string]string // repo -> tag -> manifest digest

	goneManifests []manifestRef // deleted: 404 by digest
	goneTags      map[string][]string
	goneBlobs     []blobRef // deleted from, or never linked into, the repository
}

func (fx *fixture) manifest(repo, dgst string) manifestRef {
	for _, m := range fx.manifests {
		if m.Repo == repo && m.Digest == dgst {
			return m
		}
	}
	panic("no manifest " + repo + "@" + dgst)
}

func (fx *fixture) repos() []string {
	return slices.Sorted(maps.Keys(fx.tags))
}

func (fx *fixture) tagList(repo string) []string {
	return slices.Sorted(maps.Keys(fx.tags[repo]))
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// jsonBody renders v as a registry client might: indented, with a trailing
// newline. Registries must store and serve these bytes unchanged, so any
// re-serialisation shows up as a digest mismatch.
func jsonBody(t *testing.T, v any) []byte {
	b, err := json.MarshalIndent(v, "", "   ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type imageManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        descriptor        `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type imageIndex struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     []descriptor      `json:"manifests"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

func desc(mediaType string, data []byte) descriptor {
	return descriptor{MediaType: mediaType, Digest: digestOf(data), Size: len(data)}
}

func imageConfig(t *testing.T, arch string, layers ...[]byte) []byte {
	diffIDs := []string{}
	for _, l := range layers {
		diffIDs = append(diffIDs, digestOf(l)) // not real diff IDs; registries do not look
	}
	return jsonBody(t, map[string]any{
		"architecture": arch,
		"os":           "linux",
		"author":       "berth interop " + digestOf(randomBytes(t, 16))[7:19],
		"config":       map[string]any{"Env": []string{"PATH=/usr/bin:/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
}

// pushFixtures writes the fixture set through c: a multi-layer OCI image
// manifest under three tags (one of them moved from an older manifest), a
// Docker schema2 manifest with a layer cross-mounted from another
// repository, an OCI index over two platform manifests, a deleted manifest
// and a deleted blob. Layers are random, a few MiB in all, uploaded both
// monolithically and in chunks.
func pushFixtures(t *testing.T, c *client) *fixture {
	t.Helper()
	fx := &fixture{
		tags:     map[string]map[string]string{},
		goneTags: map[string][]string{},
	}
	addBlob := func(repo string, data []byte) {
		fx.blobs = append(fx.blobs, blobRef{Repo: repo, Digest: digestOf(data), Data: data})
	}
	addManifest := func(repo, mediaType string, body []byte, tags ...string) string {
		dgst := c.pushManifest(repo, digestOf(body), mediaType, body)
		for _, tag := range tags {
			c.pushManifest(repo, tag, mediaType, body)
			if fx.tags[repo] == nil {
				fx.tags[repo] = map[string]string{}
			}
			fx.tags[repo][tag] = dgst
		}
		fx.manifests = append(fx.manifests, manifestRef{Repo: repo, Digest: dgst, MediaType: mediaType, Body: body})
		return dgst
	}

	// --- interop/oci: multi-layer OCI image, several tags.
	l1 := randomBytes(t, 3<<20)
	l2 := randomBytes(t, 1<<20+123)
	l3 := randomBytes(t, 512<<10+7)
	cfg := imageConfig(t, "amd64", l1, l2, l3)
	c.pushBlobChunked(repoOCI, l1, 1<<20)
	c.pushBlobMonolithic(repoOCI, l2)
	c.pushBlobChunked(repoOCI, l3, 200_000)
	c.pushBlobMonolithic(repoOCI, cfg)
	for _, b := range [][]byte{l1, l2, l3, cfg} {
		addBlob(repoOCI, b)
	}

	// An older manifest first tagged "moving"; the tag moves on below, the
	// manifest stays pullable by digest.
	oldCfg := imageConfig(t, "amd64", l3)
	c.pushBlobMonolithic(repoOCI, oldCfg)
	addBlob(repoOCI, oldCfg)
	old := jsonBody(t, imageManifest{
		SchemaVersion: 2, MediaType: mtOCIManifest,
		Config: desc(mtOCIConfig, oldCfg),
		Layers: []descriptor{desc(mtOCILayer, l3)},
	})
	addManifest(repoOCI, mtOCIManifest, old, "moving")

	mainManifest := jsonBody(t, imageManifest{
		SchemaVersion: 2, MediaType: mtOCIManifest,
		Config:      desc(mtOCIConfig, cfg),
		Layers:      []descriptor{desc(mtOCILayer, l1), desc(mtOCILayer, l2), desc(mtOCILayer, l3)},
		Annotations: map[string]string{"org.opencontainers.image.title": "interop main"},
	})
	addManifest(repoOCI, mtOCIManifest, mainManifest, "latest", "v1.0", "moving")

	// A manifest pushed, tagged and deleted: gone by digest and by tag.
	doomed := jsonBody(t, imageManifest{
		SchemaVersion: 2, MediaType: mtOCIManifest,
		Config:      desc(mtOCIConfig, cfg),
		Layers:      []descriptor{desc(mtOCILayer, l2)},
		Annotations: map[string]string{"org.opencontainers.image.title": "doomed"},
	})
	doomedDigest := c.pushManifest(repoOCI, "doomed", mtOCIManifest, doomed)
	c.deleteManifest(repoOCI, doomedDigest)
	fx.goneManifests = append(fx.goneManifests, manifestRef{Repo: repoOCI, Digest: doomedDigest, MediaType: mtOCIManifest, Body: doomed})
	fx.goneTags[repoOCI] = append(fx.goneTags[repoOCI], "doomed")

	// --- interop/docker: Docker schema2 manifest, one layer mounted from
	// interop/oci.
	c.mountBlob(repoDocker, repoOCI, digestOf(l1))
	dl := randomBytes(t, 2<<20+5)
	dcfg := imageConfig(t, "amd64", l1, dl)
	c.pushBlobMonolithic(repoDocker, dl)
	c.pushBlobChunked(repoDocker, dcfg, 100)
	for _, b := range [][]byte{l1, dl, dcfg} {
		addBlob(repoDocker, b)
	}
	dockerManifest := jsonBody(t, imageManifest{
		SchemaVersion: 2, MediaType: mtDockerManifest,
		Config: desc(mtDockerConfig, dcfg),
		Layers: []descriptor{desc(mtDockerLayer, l1), desc(mtDockerLayer, dl)},
	})
	addManifest(repoDocker, mtDockerManifest, dockerManifest, "2.0")
	// A blob of interop/oci that was never linked here.
	fx.goneBlobs = append(fx.goneBlobs, blobRef{Repo: repoDocker, Digest: digestOf(l2), Data: l2})

	// --- interop/multi/arch: OCI index over two platform manifests pushed
	// by digest; one of them also tagged.
	var children []descriptor
	for i, arch := range []string{"amd64", "arm64"} {
		layer := randomBytes(t, 64<<10+i)
		acfg := imageConfig(t, arch, layer)
		c.pushBlobMonolithic(repoMulti, layer)
		c.pushBlobMonolithic(repoMulti, acfg)
		addBlob(repoMulti, layer)
		addBlob(repoMulti, acfg)
		m := jsonBody(t, imageManifest{
			SchemaVersion: 2, MediaType: mtOCIManifest,
			Config: desc(mtOCIConfig, acfg),
			Layers: []descriptor{desc(mtOCILayer, layer)},
		})
		var tags []string
		if arch == "amd64" {
			tags = []string{"amd64"}
		}
		addManifest(repoMulti, mtOCIManifest, m, tags...)
		d := desc(mtOCIManifest, m)
		d.Platform = &platform{Architecture: arch, OS: "linux"}
		children = append(children, d)
	}
	index := jsonBody(t, imageIndex{
		SchemaVersion: 2, MediaType: mtOCIIndex,
		Manifests:   children,
		Annotations: map[string]string{"org.opencontainers.image.title": "interop index"},
	})
	addManifest(repoMulti, mtOCIIndex, index, "latest")

	// --- solo: single-component name; one blob uploaded then deleted.
	sl := randomBytes(t, 256<<10)
	scfg := imageConfig(t, "amd64", sl)
	c.pushBlobChunked(repoSolo, sl, 64<<10)
	c.pushBlobMonolithic(repoSolo, scfg)
	addBlob(repoSolo, sl)
	addBlob(repoSolo, scfg)
	addManifest(repoSolo, mtOCIManifest, jsonBody(t, imageManifest{
		SchemaVersion: 2, MediaType: mtOCIManifest,
		Config: desc(mtOCIConfig, scfg),
		Layers: []descriptor{desc(mtOCILayer, sl)},
	}), "only")
	stray := randomBytes(t, 100<<10)
	c.pushBlobMonolithic(repoSolo, stray)
	c.deleteBlob(repoSolo, digestOf(stray))
	fx.goneBlobs = append(fx.goneBlobs, blobRef{Repo: repoSolo, Digest: digestOf(stray), Data: stray})

	return fx
}
