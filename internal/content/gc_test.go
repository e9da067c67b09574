package content_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/filesystem"
	"github.com/berth-registry/berth/internal/storage/inmemory"
)

// gcFixture is a registry over one driver, pushed to through the content
// API as the HTTP layer would.
type gcFixture struct {
	t      *testing.T
	ctx    context.Context
	driver storage.Driver
	idx    *index.Bolt
	reg    *content.Registry
}

// desc is what a manifest needs to reference a blob or a manifest.
type desc struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int           `json:"size"`
}

// pushed is a manifest and every blob its image needs (children's too).
type pushed struct {
	desc
	blobs     []digest.Digest
	manifests []digest.Digest // itself and its children
}

var quiet = slog.New(slog.DiscardHandler)

func gcDrivers(t *testing.T) map[string]func() storage.Driver {
	return map[string]func() storage.Driver{
		"inmemory": func() storage.Driver { return inmemory.New() },
		"filesystem": func() storage.Driver {
			d, err := filesystem.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
	}
}

func newGCFixture(t *testing.T, d storage.Driver) *gcFixture {
	t.Helper()
	idx, err := index.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	reg := content.New(d, idx, content.Options{DeleteEnabled: true, Logger: quiet})
	if _, err := reg.Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &gcFixture{t: t, ctx: context.Background(), driver: d, idx: idx, reg: reg}
}

func (f *gcFixture) blob(repo, mediaType string, data []byte) desc {
	f.t.Helper()
	d := digest.FromBytes(data)
	if _, err := f.reg.PutBlob(f.ctx, repo, d, bytes.NewReader(data)); err != nil {
		f.t.Fatalf("put blob in %s: %v", repo, err)
	}
	return desc{mediaType, d, len(data)}
}

func (f *gcFixture) manifest(repo, ref, mediaType string, doc map[string]any) desc {
	f.t.Helper()
	doc["schemaVersion"] = 2
	doc["mediaType"] = mediaType
	body, err := json.Marshal(doc)
	if err != nil {
		f.t.Fatal(err)
	}
	if ref == "" {
		ref = digest.FromBytes(body).String()
	}
	m, err := f.reg.PutManifest(f.ctx, repo, ref, mediaType, body)
	if err != nil {
		f.t.Fatalf("put manifest %s:%s: %v", repo, ref, err)
	}
	return desc{mediaType, m.Digest, len(body)}
}

// image pushes an OCI (or Docker) image with its own config and layer,
// plus any shared layers, tagged ref ("" for by digest only).
func (f *gcFixture) image(repo, ref, seed string, docker bool, shared ...desc) pushed {
	f.t.Helper()
	mt, cmt, lmt := content.MediaTypeOCIManifest, "application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.layer.v1.tar+gzip"
	if docker {
		mt, cmt, lmt = content.MediaTypeDockerManifest, "application/vnd.docker.container.image.v1+json", "application/vnd.docker.image.rootfs.diff.tar.gzip"
	}
	cfg := f.blob(repo, cmt, []byte(`{"architecture":"amd64","os":"linux","seed":"`+seed+`"}`))
	layers := append([]desc{f.blob(repo, lmt, []byte("layer of "+seed))}, shared...)
	m := f.manifest(repo, ref, mt, map[string]any{"config": cfg, "layers": layers})
	p := pushed{desc: m, blobs: []digest.Digest{cfg.Digest}, manifests: []digest.Digest{m.Digest}}
	for _, l := range layers {
		p.blobs = append(p.blobs, l.Digest)
	}
	return p
}

// index pushes an image index (or Docker manifest list) of children.
func (f *gcFixture) index(repo, ref string, docker bool, children ...pushed) pushed {
	f.t.Helper()
	mt := content.MediaTypeOCIIndex
	if docker {
		mt = content.MediaTypeDockerList
	}
	var ds []desc
	p := pushed{}
	for _, c := range children {
		ds = append(ds, c.desc)
		p.blobs = append(p.blobs, c.blobs...)
		p.manifests = append(p.manifests, c.manifests...)
	}
	p.desc = f.manifest(repo, ref, mt, map[string]any{"manifests": ds})
	p.manifests = append(p.manifests, p.desc.Digest)
	return p
}

// referrer pushes an artifact (a signature, an SBOM) whose subject is s,
// by digest, as referrers are pushed.
func (f *gcFixture) referrer(repo, ref, seed string, s desc) pushed {
	f.t.Helper()
	cfg := f.blob(repo, "application/vnd.oci.empty.v1+json", []byte("{}"))
	layer := f.blob(repo, "application/vnd.example.signature", []byte("signature "+seed))
	m := f.manifest(repo, ref, content.MediaTypeOCIManifest, map[string]any{
		"artifactType": "application/vnd.example.signature",
		"config":       cfg, "layers": []desc{layer}, "subject": s,
	})
	return pushed{desc: m, blobs: []digest.Digest{cfg.Digest, layer.Digest}, manifests: []digest.Digest{m.Digest}}
}

func (f *gcFixture) gc(opts content.GCOptions) (content.GCResult, string) {
	f.t.Helper()
	var out strings.Builder
	opts.Out = &out
	res, err := f.reg.GarbageCollect(f.ctx, opts)
	if err != nil {
		f.t.Fatalf("GarbageCollect(%+v): %v\n%s", opts, err, out.String())
	}
	return res, out.String()
}

func blobPath(d digest.Digest) string {
	return v2 + "/blobs/" + string(d.Algorithm()) + "/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"
}

func (f *gcFixture) stored(p string) bool {
	f.t.Helper()
	_, err := f.driver.Stat(f.ctx, p)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		f.t.Fatal(err)
	}
	return err == nil
}

// pullable checks that every manifest and blob of p resolves in repo and
// reads back with its digest.
func (f *gcFixture) pullable(repo, ref string, p pushed) {
	f.t.Helper()
	m, err := f.reg.GetManifest(f.ctx, repo, ref)
	if err != nil || m.Digest != p.Digest || digest.FromBytes(m.Body) != p.Digest {
		f.t.Fatalf("GetManifest %s:%s = %s, %v; want %s", repo, ref, m.Digest, err, p.Digest)
	}
	for _, d := range p.manifests {
		m, err := f.reg.GetManifest(f.ctx, repo, d.String())
		if err != nil || digest.FromBytes(m.Body) != d {
			f.t.Fatalf("GetManifest %s@%s: %v", repo, d, err)
		}
	}
	for _, d := range p.blobs {
		if _, err := f.reg.Blob(f.ctx, repo, d); err != nil {
			f.t.Fatalf("Blob %s@%s: %v", repo, d, err)
		}
		rc, err := f.reg.ReadBlob(f.ctx, d, 0)
		if err != nil {
			f.t.Fatalf("ReadBlob %s: %v", d, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || digest.FromBytes(b) != d {
			f.t.Fatalf("blob %s reads back as %s (%v)", d, digest.FromBytes(b), err)
		}
	}
}

// gone checks that a blob is deleted: no data, no link in repo, unknown.
func (f *gcFixture) gone(repo string, d digest.Digest) {
	f.t.Helper()
	if f.stored(blobPath(d)) {
		f.t.Errorf("blob %s still stored", d)
	}
	if f.stored(v2 + "/repositories/" + repo + "/_layers/sha256/" + d.Encoded() + "/link") {
		f.t.Errorf("link to deleted blob %s still in %s", d, repo)
	}
	if _, err := f.reg.Blob(f.ctx, repo, d); !errors.Is(err, content.ErrBlobUnknown) {
		f.t.Errorf("Blob %s@%s after GC: %v, want BLOB_UNKNOWN", repo, d, err)
	}
}

// manifestGone checks that a manifest revision is deleted from repo.
func (f *gcFixture) manifestGone(repo string, d digest.Digest) {
	f.t.Helper()
	if f.stored(v2 + "/repositories/" + repo + "/_manifests/revisions/sha256/" + d.Encoded()) {
		f.t.Errorf("revision %s still in %s", d, repo)
	}
	if _, err := f.reg.StatManifest(f.ctx, repo, d.String()); err == nil {
		f.t.Errorf("manifest %s@%s still resolves after GC", repo, d)
	}
}

func digests(ds ...[]digest.Digest) []digest.Digest {
	var out []digest.Digest
	for _, d := range ds {
		out = append(out, d...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func revisionsOf(ms []content.RepoDigest) []digest.Digest {
	var out []digest.Digest
	for _, m := range ms {
		out = append(out, m.Digest)
	}
	return digests(out)
}

// tree reads every object under the layout, for byte comparisons.
func tree(t *testing.T, d storage.Driver) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(p string)
	walk = func(p string) {
		children, err := d.List(context.Background(), p)
		if err != nil {
			t.Fatalf("list %s: %v", p, err)
		}
		for _, c := range children {
			fi, err := d.Stat(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if fi.IsDir {
				walk(c)
				continue
			}
			b, err := d.GetContent(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			out[c] = string(b)
		}
	}
	walk(v2)
	return out
}

func TestGarbageCollect(t *testing.T) {
	for name, newDriver := range gcDrivers(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("unreferenced blob", func(t *testing.T) { testGCUnreferenced(t, newGCFixture(t, newDriver())) })
			t.Run("shared blob", func(t *testing.T) { testGCShared(t, newGCFixture(t, newDriver())) })
			t.Run("untagged manifest", func(t *testing.T) { testGCUntagged(t, newGCFixture(t, newDriver())) })
			t.Run("multi-arch", func(t *testing.T) { testGCMultiArch(t, newGCFixture(t, newDriver())) })
			t.Run("referrers", func(t *testing.T) { testGCReferrers(t, newGCFixture(t, newDriver())) })
			t.Run("dry run", func(t *testing.T) { testGCDryRun(t, newGCFixture(t, newDriver())) })
		})
	}
}

// A blob no manifest references is deleted with its link; referenced
// blobs, and uploads in progress, are not.
func testGCUnreferenced(t *testing.T, f *gcFixture) {
	img := f.image("team/app", "latest", "a", false)
	orphan := f.blob("team/app", "x", []byte("pushed, never referenced"))
	up, err := f.reg.StartUpload(f.ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.AppendUpload(f.ctx, "team/app", up.ID, 0, strings.NewReader("half an upload")); err != nil {
		t.Fatal(err)
	}

	res, out := f.gc(content.GCOptions{})
	if !slices.Equal(res.Blobs, []digest.Digest{orphan.Digest}) || len(res.Manifests) != 0 || res.Bytes != int64(orphan.Size) {
		t.Fatalf("deleted %v and manifests %v (%d bytes); want only %s (%d bytes)", res.Blobs, res.Manifests, res.Bytes, orphan.Digest, orphan.Size)
	}
	if !strings.Contains(out, "blob eligible for deletion: "+orphan.Digest.String()) ||
		!strings.Contains(out, "team/app: marking manifest "+img.Digest.String()) {
		t.Errorf("report lacks registry:2's lines:\n%s", out)
	}
	if res.Repositories != 1 {
		t.Errorf("index rebuilt with %d repositories, want 1", res.Repositories)
	}
	f.gone("team/app", orphan.Digest)
	f.pullable("team/app", "latest", img)
	if st, err := f.reg.UploadStatus(f.ctx, "team/app", up.ID); err != nil || st.Size != int64(len("half an upload")) {
		t.Fatalf("upload after GC: %+v, %v; want it untouched", st, err)
	}
	if f.idx.Stale() {
		t.Error("index stale after a successful collection")
	}
}

// A blob two repositories use is kept while either one's manifests need
// it.
func testGCShared(t *testing.T, f *gcFixture) {
	base := f.blob("a", "application/vnd.oci.image.layer.v1.tar+gzip", []byte("shared base layer"))
	if _, ok, err := f.reg.MountBlob(f.ctx, "b", "a", base.Digest); err != nil || !ok {
		t.Fatalf("mount: %v, %v", ok, err)
	}
	imgA := f.image("a", "latest", "a", false, base)
	imgB := f.image("b", "latest", "b", false, base)

	if err := f.reg.DeleteManifest(f.ctx, "b", "latest"); err != nil {
		t.Fatal(err)
	}
	res, _ := f.gc(content.GCOptions{DeleteUntagged: true})
	if got, want := digests(res.Blobs), digests(imgB.blobs[:2], imgB.manifests); !slices.Equal(got, want) {
		t.Fatalf("deleted %v, want b's own blobs and manifest %v", got, want)
	}
	f.pullable("a", "latest", imgA)
	f.manifestGone("b", imgB.Digest)
	for _, d := range imgB.blobs[:2] {
		f.gone("b", d)
	}
	if _, err := f.reg.Blob(f.ctx, "b", base.Digest); err != nil {
		t.Fatalf("b's link to the shared layer, still stored: %v", err)
	}

	if err := f.reg.DeleteManifest(f.ctx, "a", "latest"); err != nil {
		t.Fatal(err)
	}
	res, _ = f.gc(content.GCOptions{DeleteUntagged: true})
	if got, want := digests(res.Blobs), digests(imgA.blobs, imgA.manifests); !slices.Equal(got, want) {
		t.Fatalf("deleted %v, want all of a's, the shared layer with them: %v", got, want)
	}
	f.gone("a", base.Digest)
	f.gone("b", base.Digest)
}

// --delete-untagged deletes a manifest no tag reaches any more, and the
// blobs only it used; without the flag it is kept.
func testGCUntagged(t *testing.T, f *gcFixture) {
	old := f.image("team/app", "latest", "v1", false)
	cur := f.image("team/app", "latest", "v2", false) // moves the tag

	if res, _ := f.gc(content.GCOptions{}); len(res.Blobs)+len(res.Manifests) != 0 {
		t.Fatalf("without --delete-untagged, deleted %v %v", res.Blobs, res.Manifests)
	}
	res, out := f.gc(content.GCOptions{DeleteUntagged: true})
	if got := revisionsOf(res.Manifests); !slices.Equal(got, []digest.Digest{old.Digest}) {
		t.Fatalf("deleted manifests %v, want %s", got, old.Digest)
	}
	if got, want := digests(res.Blobs), digests(old.blobs, old.manifests); !slices.Equal(got, want) {
		t.Fatalf("deleted blobs %v, want %v", got, want)
	}
	if !strings.Contains(out, "team/app: manifest eligible for deletion: "+old.Digest.String()) {
		t.Errorf("report does not name the deleted manifest:\n%s", out)
	}
	f.manifestGone("team/app", old.Digest)
	if f.stored(v2 + "/repositories/team/app/_manifests/tags/latest/index/sha256/" + old.Digest.Encoded()) {
		t.Error("the tag's history still names the deleted manifest")
	}
	for _, d := range old.blobs {
		f.gone("team/app", d)
	}
	f.pullable("team/app", "latest", cur)
}

// Per-platform manifests are pushed by digest and only their index is
// tagged: they are reachable, so kept (registry:2 2.8 deletes them). An
// untagged index takes its children with it.
func testGCMultiArch(t *testing.T, f *gcFixture) {
	oci := f.index("multi/oci", "latest", false,
		f.image("multi/oci", "", "oci-amd64", false), f.image("multi/oci", "", "oci-arm64", false))
	list := f.index("multi/docker", "latest", true,
		f.image("multi/docker", "", "docker-amd64", true), f.image("multi/docker", "", "docker-arm64", true))
	nested := f.index("multi/nested", "latest", false,
		f.index("multi/nested", "", false, f.image("multi/nested", "", "nested-amd64", false)))
	orphan := f.index("multi/orphan", "", false, f.image("multi/orphan", "", "orphan-amd64", false))
	keep := f.image("multi/orphan", "latest", "orphan-tagged", false)

	res, _ := f.gc(content.GCOptions{DeleteUntagged: true})
	if got, want := revisionsOf(res.Manifests), digests(orphan.manifests); !slices.Equal(got, want) {
		t.Fatalf("deleted manifests %v, want only the untagged index and its child %v", got, want)
	}
	if got, want := digests(res.Blobs), digests(orphan.blobs, orphan.manifests); !slices.Equal(got, want) {
		t.Fatalf("deleted blobs %v, want %v", got, want)
	}
	f.pullable("multi/oci", "latest", oci)
	f.pullable("multi/docker", "latest", list)
	f.pullable("multi/nested", "latest", nested)
	f.pullable("multi/orphan", "latest", keep)
	for _, d := range orphan.manifests {
		f.manifestGone("multi/orphan", d)
	}
}

// Referrers (signatures, SBOMs, signatures of those) of a tagged image are
// kept with their blobs (registry:2 2.8 deletes them all); a tagged
// referrer keeps its untagged subject; referrers of a deleted manifest go.
func testGCReferrers(t *testing.T, f *gcFixture) {
	img := f.image("signed", "latest", "img", false)
	sig := f.referrer("signed", "", "sig", img.desc)
	sbom := f.referrer("signed", "", "sbom", img.desc)
	sbomSig := f.referrer("signed", "", "sbom-sig", sbom.desc)

	subject := f.image("attested", "", "untagged subject", false)
	attestation := f.referrer("attested", "attestation", "att", subject.desc)

	old := f.image("signed", "", "untagged", false)
	oldSig := f.referrer("signed", "", "old-sig", old.desc)

	res, _ := f.gc(content.GCOptions{DeleteUntagged: true})
	if got, want := revisionsOf(res.Manifests), digests(old.manifests, oldSig.manifests); !slices.Equal(got, want) {
		t.Fatalf("deleted manifests %v, want the untagged image and its signature %v", got, want)
	}
	// The empty config "{}" is shared by every referrer, so it stays.
	if got, want := digests(res.Blobs), digests(old.blobs, old.manifests, oldSig.blobs[1:], oldSig.manifests); !slices.Equal(got, want) {
		t.Fatalf("deleted blobs %v, want %v", got, want)
	}
	f.pullable("signed", "latest", img)
	for _, r := range []pushed{sig, sbom, sbomSig} {
		f.pullable("signed", r.Digest.String(), r)
	}
	f.pullable("attested", "attestation", attestation)
	f.pullable("attested", subject.Digest.String(), subject)
	refs, err := f.reg.Referrers(f.ctx, "signed", img.Digest, "")
	if err != nil || len(refs) != 2 {
		t.Fatalf("referrers of the image after GC: %v, %v; want sig and sbom", refs, err)
	}
}

// A dry run deletes nothing, byte for byte, and reports what the real run
// then deletes.
func testGCDryRun(t *testing.T, f *gcFixture) {
	f.image("team/app", "latest", "v1", false)
	cur := f.image("team/app", "latest", "v2", false)
	f.index("multi", "", false, f.image("multi", "", "amd64", false))
	f.blob("team/app", "x", []byte("orphan"))

	before := tree(t, f.driver)
	dry, dryOut := f.gc(content.GCOptions{DryRun: true, DeleteUntagged: true})
	if after := tree(t, f.driver); !maps.Equal(before, after) {
		t.Fatal("a dry run changed the tree")
	}
	if len(dry.Blobs) != 8 || len(dry.Manifests) != 3 || dry.Repositories != 0 {
		t.Fatalf("dry run reports %d blobs, %d manifests, rebuilt %d; want 8, 3, no rebuild", len(dry.Blobs), len(dry.Manifests), dry.Repositories)
	}
	wet, wetOut := f.gc(content.GCOptions{DeleteUntagged: true})
	if !slices.Equal(dry.Blobs, wet.Blobs) || !slices.Equal(dry.Manifests, wet.Manifests) || dry.Bytes != wet.Bytes {
		t.Fatalf("dry run: %v %v %d\nreal run: %v %v %d", dry.Blobs, dry.Manifests, dry.Bytes, wet.Blobs, wet.Manifests, wet.Bytes)
	}
	if dryOut != wetOut {
		t.Errorf("the reports differ:\ndry:\n%s\nreal:\n%s", dryOut, wetOut)
	}
	f.pullable("team/app", "latest", cur)
}

// A manifest whose references cannot be read stops the run before
// anything is deleted.
func TestGarbageCollectStopsOnUnreadableManifest(t *testing.T) {
	f := newGCFixture(t, inmemory.New())
	f.image("team/app", "latest", "a", false)
	orphan := f.blob("team/app", "x", []byte("orphan"))
	bad := digest.FromString("not json")
	for p, v := range map[string]string{
		blobPath(bad): "not json",
		v2 + "/repositories/team/app/_manifests/revisions/sha256/" + bad.Encoded() + "/link": bad.String(),
	} {
		if err := f.driver.PutContent(f.ctx, p, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	before := tree(t, f.driver)
	_, err := f.reg.GarbageCollect(f.ctx, content.GCOptions{})
	if err == nil || !strings.Contains(err.Error(), bad.String()) {
		t.Fatalf("GarbageCollect = %v; want an error naming %s", err, bad)
	}
	if !maps.Equal(before, tree(t, f.driver)) || !f.stored(blobPath(orphan.Digest)) {
		t.Fatal("a failed mark deleted something")
	}
}

// failDelete fails deleting any blob.
type failDelete struct{ storage.Driver }

func (f failDelete) Delete(ctx context.Context, p string) error {
	if strings.Contains(p, "/blobs/") {
		return errDisk
	}
	return f.Driver.Delete(ctx, p)
}

// A run that fails halfway has deleted manifests, never a blob a kept
// manifest needs, and leaves the index stale so the next start rebuilds it.
func TestGarbageCollectFailureHalfway(t *testing.T) {
	d := inmemory.New()
	f := newGCFixture(t, d)
	old := f.image("team/app", "latest", "v1", false)
	cur := f.image("team/app", "latest", "v2", false)

	f.reg = content.New(failDelete{d}, f.idx, content.Options{Logger: quiet})
	_, err := f.reg.GarbageCollect(f.ctx, content.GCOptions{DeleteUntagged: true})
	if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), "delete blob") {
		t.Fatalf("GarbageCollect = %v; want the delete error with context", err)
	}
	if !f.idx.Stale() {
		t.Fatal("index not stale after a failed collection")
	}
	if f.stored(v2 + "/repositories/team/app/_manifests/revisions/sha256/" + old.Digest.Encoded()) {
		t.Error("the untagged manifest was not deleted before the blobs")
	}
	if _, err := f.reg.Rebuild(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.pullable("team/app", "latest", cur)
}
