package content_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/filesystem"
	"github.com/berth-registry/berth/internal/storage/inmemory"
)

// backupSource is a registry on the filesystem holding what a backup must
// carry: images sharing a layer, a multi-arch index whose children are
// pushed by digest, a referrer, nested names and moved tags; and what it
// must not: an upload in progress and a blob nothing references.
type backupSource struct {
	*gcFixture
	images       map[string]pushed // "repo:tag" -> image
	unreferenced digest.Digest
	uploadID     string
}

func newBackupSource(t *testing.T) *backupSource {
	t.Helper()
	d, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newGCFixture(t, d)
	s := &backupSource{gcFixture: f, images: map[string]pushed{}}
	v1 := f.image("library/app", "v1", "app v1", false)
	shared := desc{"application/vnd.oci.image.layer.v1.tar+gzip", v1.blobs[1], len("layer of app v1")}
	s.images["library/app:v1"] = v1
	s.images["library/app:v2"] = f.image("library/app", "v2", "app v2", true, shared)
	f.image("library/app", "moved", "app old", false)
	s.images["library/app:moved"] = f.image("library/app", "moved", "app new", false)
	amd := f.image("team/sub/multi", "", "multi amd64", false)
	arm := f.image("team/sub/multi", "", "multi arm64", false)
	s.images["team/sub/multi:latest"] = f.index("team/sub/multi", "latest", false, amd, arm)
	s.images["library/app:sig"] = f.referrer("library/app", "", "sig of v1", v1.desc)
	s.images["b/c/d/e:1.0"] = f.image("b/c/d/e", "1.0", "deep", false)

	data := []byte("nobody references this")
	s.unreferenced = digest.FromBytes(data)
	if err := d.PutContent(f.ctx, blobPath(s.unreferenced), data); err != nil {
		t.Fatal(err)
	}
	u, err := f.reg.StartUpload(f.ctx, "library/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.AppendUpload(f.ctx, "library/app", u.ID, 0, strings.NewReader("half a layer")); err != nil {
		t.Fatal(err)
	}
	s.uploadID = u.ID
	return s
}

func (s *backupSource) backup(opts content.BackupOptions) ([]byte, content.BackupResult) {
	s.t.Helper()
	var buf bytes.Buffer
	res, err := s.reg.Backup(s.ctx, &buf, opts)
	if err != nil {
		s.t.Fatalf("Backup: %v", err)
	}
	return buf.Bytes(), res
}

// restoreTarget is an empty registry to restore into.
func restoreTarget(t *testing.T, d storage.Driver) *gcFixture {
	t.Helper()
	idx, err := index.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	reg := content.New(d, idx, content.Options{DeleteEnabled: true, Logger: quiet})
	return &gcFixture{t: t, ctx: context.Background(), driver: d, idx: idx, reg: reg}
}

// sameRegistry checks that to serves what from does: the same catalog and
// tags, every image pullable, the referrer found by its subject.
func (s *backupSource) sameRegistry(to *gcFixture) {
	s.t.Helper()
	repos, _, err := s.reg.Repositories(s.ctx, "", 1000)
	if err != nil {
		s.t.Fatal(err)
	}
	got, _, err := to.reg.Repositories(to.ctx, "", 1000)
	if err != nil || !slices.Equal(got, repos) {
		s.t.Fatalf("restored catalog %v (%v), want %v", got, err, repos)
	}
	for _, repo := range repos {
		want, _, _ := s.reg.Tags(s.ctx, repo, "", 1000)
		got, _, err := to.reg.Tags(to.ctx, repo, "", 1000)
		if err != nil || !slices.Equal(got, want) {
			s.t.Fatalf("restored tags of %s: %v (%v), want %v", repo, got, err, want)
		}
	}
	for ref, p := range s.images {
		repo, tag, _ := strings.Cut(ref, ":")
		if tag == "sig" {
			tag = p.Digest.String()
		}
		to.pullable(repo, tag, p)
	}
	v1 := s.images["library/app:v1"]
	refs, err := to.reg.Referrers(to.ctx, "library/app", v1.Digest, "")
	if err != nil || len(refs) != 1 || refs[0].Digest != s.images["library/app:sig"].Digest {
		s.t.Fatalf("referrers of v1 after restore: %+v, %v", refs, err)
	}
}

// archiveEntries lists an archive's entry names, failing on anything
// but regular files.
func archiveEntries(t *testing.T, archive []byte) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeReg {
			t.Fatalf("entry %s has type %q", hdr.Name, hdr.Typeflag)
		}
		out[hdr.Name] = true
	}
}

func TestBackupRestore(t *testing.T) {
	s := newBackupSource(t)
	archive, res := s.backup(content.BackupOptions{})
	if res.Repositories != 3 || res.Tags != 5 || res.Dangling != 0 || res.Skipped != 0 {
		t.Errorf("backup result %+v", res)
	}

	entries := archiveEntries(t, archive)
	for name := range entries {
		if !strings.HasPrefix(name, "docker/registry/v2/") || strings.Contains(name, "_uploads") {
			t.Errorf("archive holds %s", name)
		}
	}
	if entries[strings.TrimPrefix(blobPath(s.unreferenced), "/")] {
		t.Error("the unreferenced blob is in the archive")
	}
	// The layout's files, as stored, are in the archive byte for byte.
	want := tree(t, s.driver)
	for p := range want {
		if strings.Contains(p, "/_uploads/") || p == blobPath(s.unreferenced) {
			delete(want, p)
		}
	}
	if len(entries) != len(want) {
		t.Errorf("archive holds %d files, the layout %d", len(entries), len(want))
	}

	for name, driver := range gcDrivers(t) {
		t.Run("into "+name, func(t *testing.T) {
			to := restoreTarget(t, driver())
			rres, err := to.reg.Restore(to.ctx, bytes.NewReader(archive))
			if err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if rres.Repositories != 3 || rres.Tags != 5 || rres.Manifests != res.Manifests ||
				rres.Blobs != res.Blobs || rres.Bytes != res.Bytes || rres.Indexed != 3 {
				t.Errorf("restore result %+v, backup %+v", rres, res)
			}
			s.sameRegistry(to)
			got := tree(t, to.driver)
			for p, b := range want {
				if got[p] != b {
					t.Errorf("%s restored as %q, want %q", p, got[p], b)
				}
			}
			if len(got) != len(want) {
				t.Errorf("restored %d files, want %d", len(got), len(want))
			}
			if _, err := to.driver.Stat(to.ctx, "/berth/restore"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("staging directory left behind: %v", err)
			}

			// A second restore finds repositories and writes nothing.
			if _, err := to.reg.Restore(to.ctx, bytes.NewReader(archive)); !errors.Is(err, content.ErrNotEmpty) {
				t.Errorf("restore into a restored registry: %v, want ErrNotEmpty", err)
			}
		})
	}
}

func TestBackupGzip(t *testing.T) {
	s := newBackupSource(t)
	archive, _ := s.backup(content.BackupOptions{Gzip: true})
	if !bytes.HasPrefix(archive, []byte{0x1f, 0x8b}) {
		t.Fatalf("archive starts with % x, not gzip's magic", archive[:2])
	}
	to := restoreTarget(t, inmemory.New())
	if _, err := to.reg.Restore(to.ctx, bytes.NewReader(archive)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	s.sameRegistry(to)

	// Cut short, gzip's trailer is missing: refused, nothing linked.
	to = restoreTarget(t, inmemory.New())
	if _, err := to.reg.Restore(to.ctx, bytes.NewReader(archive[:len(archive)-4])); err == nil {
		t.Fatal("Restore of a truncated gzip archive succeeded")
	}
	if held, _ := to.reg.HoldsRepositories(to.ctx); held {
		t.Error("a refused archive left repositories")
	}
}

// `tar x` of a backup is a tree the filesystem driver serves as it is.
func TestBackupExtracted(t *testing.T) {
	s := newBackupSource(t)
	archive, _ := s.backup(content.BackupOptions{})
	root := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.FromSlash(hdr.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	to := restoreTarget(t, d)
	if _, err := to.reg.Rebuild(to.ctx); err != nil {
		t.Fatal(err)
	}
	s.sameRegistry(to)
}

// A blob that is missing or corrupt fails the backup, naming the blob and
// the repository, and the archive is left unfinished: restore refuses it.
func TestBackupFailsOnBadBlob(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(f *gcFixture, p string) error
	}{
		{"corrupt", func(f *gcFixture, p string) error {
			return f.driver.PutContent(f.ctx, p, []byte("layer of XXX v1")) // same size
		}},
		{"missing", func(f *gcFixture, p string) error { return f.driver.Delete(f.ctx, p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newBackupSource(t)
			layer := s.images["b/c/d/e:1.0"].blobs[1]
			if err := tc.spoil(s.gcFixture, blobPath(layer)); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, err := s.reg.Backup(s.ctx, &buf, content.BackupOptions{})
			if err == nil || !strings.Contains(err.Error(), layer.String()) || !strings.Contains(err.Error(), "b/c/d/e") {
				t.Fatalf("Backup with a %s blob: %v; want an error naming %s and b/c/d/e", tc.name, err, layer)
			}
			to := restoreTarget(t, inmemory.New())
			if _, err := to.reg.Restore(to.ctx, &buf); err == nil {
				t.Fatal("Restore of a failed backup's output succeeded")
			}
			if held, _ := to.reg.HoldsRepositories(to.ctx); held {
				t.Error("a refused archive left repositories")
			}
		})
	}
}

// A layer link whose blob registry:2's garbage collection deleted is kept
// as it is, not an error: no manifest needs the blob.
func TestBackupKeepsDanglingLayerLinks(t *testing.T) {
	s := newBackupSource(t)
	gone := s.blob("library/app", "application/octet-stream", []byte("collected by registry:2"))
	if err := s.driver.Delete(s.ctx, blobPath(gone.Digest)); err != nil {
		t.Fatal(err)
	}
	archive, res := s.backup(content.BackupOptions{})
	if res.Dangling != 1 {
		t.Errorf("Dangling = %d, want 1", res.Dangling)
	}
	to := restoreTarget(t, inmemory.New())
	if _, err := to.reg.Restore(to.ctx, bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	s.sameRegistry(to)
}

// tarEntry is one entry of a hand-made archive.
type tarEntry struct {
	name     string
	typeflag byte
	body     string
	linkname string
}

func makeTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typeflag, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.linkname}
		if e.typeflag != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRestoreRefuses(t *testing.T) {
	good := []byte("a good blob")
	gd := digest.FromBytes(good)
	blobEntry := tarEntry{name: strings.TrimPrefix(blobPath(gd), "/"), typeflag: tar.TypeReg, body: string(good)}
	link := "docker/registry/v2/repositories/app/_layers/sha256/" + gd.Encoded() + "/link"
	other := digest.FromString("other")

	s := newBackupSource(t)
	archive, _ := s.backup(content.BackupOptions{})

	for _, tc := range []struct {
		name    string
		archive []byte
		want    string
	}{
		{"dot-dot", makeTar(t, blobEntry, tarEntry{name: "docker/registry/v2/../../../etc/passwd", typeflag: tar.TypeReg, body: "x"}), "invalid path"},
		{"leading dot-dot", makeTar(t, tarEntry{name: "../docker/registry/v2/repositories/app/_layers/sha256/" + gd.Encoded() + "/link", typeflag: tar.TypeReg, body: gd.String()}), "invalid path"},
		{"absolute", makeTar(t, tarEntry{name: "/" + link, typeflag: tar.TypeReg, body: gd.String()}), "absolute"},
		{"symlink", makeTar(t, blobEntry, tarEntry{name: link, typeflag: tar.TypeSymlink, linkname: "/etc/passwd"}), "not a regular file"},
		{"hardlink", makeTar(t, blobEntry, tarEntry{name: link, typeflag: tar.TypeLink, linkname: blobEntry.name}), "not a regular file"},
		{"device", makeTar(t, tarEntry{name: link, typeflag: tar.TypeChar}), "not a regular file"},
		{"outside the layout", makeTar(t, tarEntry{name: "etc/passwd", typeflag: tar.TypeReg, body: "x"}), "not a file of the registry layout"},
		{"berth's index", makeTar(t, tarEntry{name: "berth/index.db", typeflag: tar.TypeReg, body: "x"}), "not a file of the registry layout"},
		{"upload", makeTar(t, tarEntry{name: "docker/registry/v2/repositories/app/_uploads/" + s.uploadID + "/data", typeflag: tar.TypeReg, body: "x"}), "not a file of the registry layout"},
		{"blob in the wrong prefix", makeTar(t, tarEntry{name: "docker/registry/v2/blobs/sha256/zz/" + gd.Encoded() + "/data", typeflag: tar.TypeReg, body: string(good)}), "not a file of the registry layout"},
		{"invalid repository name", makeTar(t, tarEntry{name: "docker/registry/v2/repositories/App/_layers/sha256/" + gd.Encoded() + "/link", typeflag: tar.TypeReg, body: gd.String()}), "not a file of the registry layout"},
		{"oversized link", makeTar(t, blobEntry, tarEntry{name: link, typeflag: tar.TypeReg, body: gd.String() + strings.Repeat(" ", 2000)}), "too large"},
		{"link to another digest", makeTar(t, blobEntry, tarEntry{name: link, typeflag: tar.TypeReg, body: other.String()}), "not to the digest its path names"},
		{"link that is no digest", makeTar(t, blobEntry, tarEntry{name: link, typeflag: tar.TypeReg, body: "hello"}), "not a link"},
		{"corrupt blob", makeTar(t, tarEntry{name: blobEntry.name, typeflag: tar.TypeReg, body: "a bad blob!"}, tarEntry{name: link, typeflag: tar.TypeReg, body: gd.String()}), "the archive is corrupt"},
		{"tag without its manifest", makeTar(t, tarEntry{name: "docker/registry/v2/repositories/app/_manifests/tags/v1/current/link", typeflag: tar.TypeReg, body: other.String()}), "the archive is incomplete"},
		{"cut short", archive[:len(archive)-1024], "no end-of-archive marker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := restoreTarget(t, inmemory.New())
			_, err := to.reg.Restore(to.ctx, bytes.NewReader(tc.archive))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore: %v; want an error with %q", err, tc.want)
			}
			if held, _ := to.reg.HoldsRepositories(to.ctx); held {
				t.Error("a refused archive left repositories")
			}
			// A blob is visible only once verified: the corrupt one is not.
			if tc.name == "corrupt blob" {
				if _, err := to.driver.Stat(to.ctx, blobPath(gd)); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("the corrupt blob is stored: %v", err)
				}
			}
			if _, err := to.driver.Stat(to.ctx, "/berth/restore"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("staging directory left behind: %v", err)
			}
		})
	}

	t.Run("not empty", func(t *testing.T) {
		to := restoreTarget(t, inmemory.New())
		to.image("mine", "latest", "already here", false)
		before := tree(t, to.driver)
		_, err := to.reg.Restore(to.ctx, bytes.NewReader(archive))
		if !errors.Is(err, content.ErrNotEmpty) {
			t.Fatalf("Restore into a registry with a repository: %v, want ErrNotEmpty", err)
		}
		if after := tree(t, to.driver); len(after) != len(before) {
			t.Errorf("the refused restore changed storage: %d files, were %d", len(after), len(before))
		}
	})
}

// pausingDriver lets a test run code in the middle of a backup's reads:
// pause is called (from the backup's goroutine) before each List and Stat.
type pausingDriver struct {
	storage.Driver
	pause func(op, p string)
}

func (d pausingDriver) List(ctx context.Context, p string) ([]string, error) {
	d.pause("list", p)
	return d.Driver.List(ctx, p)
}

func (d pausingDriver) Stat(ctx context.Context, p string) (storage.FileInfo, error) {
	d.pause("stat", p)
	return d.Driver.Stat(ctx, p)
}

// A backup taken while pushes go on restores into a registry where every
// tag is fully pullable. The pushes are made to land in every phase of
// the backup: between reading a repository's tags and its revisions,
// between its revisions and its layer links, and while blobs are read.
func TestBackupUnderLoad(t *testing.T) {
	s := newBackupSource(t)
	s.image("load/a", "t0", "seed a", false)
	s.image("load/b", "t0", "seed b", false)

	// pushed receives once per push completed while someone waits on it.
	pushed := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var pushErr error
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			repo := []string{"load/a", "load/b", "load/new"}[i%3]
			// Moved tags and new ones; every fifth push an index.
			tag := fmt.Sprintf("t%d", i%7)
			seed := fmt.Sprintf("load %d", i)
			if err := s.pushQuietly(repo, tag, seed, i%5 == 4); err != nil {
				pushErr = err
				return
			}
			select {
			case pushed <- struct{}{}:
			default:
			}
		}
	})
	waitPushes := func(n int) {
		for range n {
			select {
			case <-pushed:
			case <-stop:
			}
		}
	}
	blobStats := 0
	backupReg := content.New(pausingDriver{s.driver, func(op, p string) {
		switch {
		case op == "list" && strings.HasSuffix(p, "/_manifests/tags") && strings.Contains(p, "/load/"),
			op == "list" && strings.HasSuffix(p, "/_manifests/revisions/sha256") && strings.Contains(p, "/load/"),
			op == "list" && strings.HasSuffix(p, "/_layers/sha256") && strings.Contains(p, "/load/"):
			waitPushes(3)
		case op == "stat" && strings.Contains(p, "/blobs/") && blobStats < 4:
			blobStats++
			waitPushes(3)
		}
	}}, nil, content.Options{Logger: quiet})

	var buf bytes.Buffer
	_, err := backupReg.Backup(s.ctx, &buf, content.BackupOptions{})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup under load: %v", err)
	}
	if pushErr != nil {
		t.Fatalf("push: %v", pushErr)
	}

	to := restoreTarget(t, inmemory.New())
	if _, err := to.reg.Restore(to.ctx, &buf); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	repos, _, err := to.reg.Repositories(to.ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var loadB []string
	for _, repo := range repos {
		// Every tag stored, not only those the index lists: the rebuild
		// leaves out a tag whose manifest is not there.
		dirs, err := to.driver.List(to.ctx, v2+"/repositories/"+repo+"/_manifests/tags")
		if err != nil {
			t.Fatal(err)
		}
		var tags []string
		for _, d := range dirs {
			tags = append(tags, path.Base(d))
		}
		for _, tag := range tags {
			fullyPullable(t, to, repo, tag)
			n++
		}
		if repo == "load/b" {
			loadB = tags
		}
	}
	// load/b's tags are read after pushes waited for while load/a was
	// read; load/new appeared after the repositories were listed.
	if len(loadB) < 2 {
		t.Errorf("load/b has tags %v: the pushes that landed before its walk are missing", loadB)
	}
	if slices.Contains(repos, "load/new") {
		t.Errorf("load/new, created after the walk listed repositories, is in the backup")
	}
	t.Logf("%d tags in %d repositories, all pullable", n, len(repos))
}

// pushQuietly pushes an image (or an index of two) without failing the
// test from a goroutine that is not the test's.
func (s *backupSource) pushQuietly(repo, tag, seed string, multi bool) error {
	put := func(mt string, data []byte) (desc, error) {
		d := digest.FromBytes(data)
		if _, err := s.reg.PutBlob(s.ctx, repo, d, bytes.NewReader(data)); err != nil {
			return desc{}, err
		}
		return desc{mt, d, len(data)}, nil
	}
	manifest := func(ref, mt string, doc map[string]any) (desc, error) {
		doc["schemaVersion"] = 2
		doc["mediaType"] = mt
		body, _ := json.Marshal(doc)
		if ref == "" {
			ref = digest.FromBytes(body).String()
		}
		m, err := s.reg.PutManifest(s.ctx, repo, ref, mt, body)
		return desc{mt, m.Digest, len(body)}, err
	}
	image := func(ref, seed string) (desc, error) {
		cfg, err := put("application/vnd.oci.image.config.v1+json", []byte(`{"seed":"`+seed+`"}`))
		if err != nil {
			return desc{}, err
		}
		layer, err := put("application/vnd.oci.image.layer.v1.tar+gzip", []byte("layer of "+seed))
		if err != nil {
			return desc{}, err
		}
		return manifest(ref, content.MediaTypeOCIManifest, map[string]any{"config": cfg, "layers": []desc{layer}})
	}
	if !multi {
		_, err := image(tag, seed)
		return err
	}
	a, err := image("", seed+" amd64")
	if err != nil {
		return err
	}
	b, err := image("", seed+" arm64")
	if err != nil {
		return err
	}
	_, err = manifest(tag, content.MediaTypeOCIIndex, map[string]any{"manifests": []desc{a, b}})
	return err
}

// fullyPullable pulls repo:tag as a client would: the manifest, and
// recursively every manifest and blob it references, each checked
// against its digest.
func fullyPullable(t *testing.T, f *gcFixture, repo, ref string) {
	t.Helper()
	m, err := f.reg.GetManifest(f.ctx, repo, ref)
	if err != nil {
		t.Fatalf("pull %s:%s: %v", repo, ref, err)
	}
	if digest.FromBytes(m.Body) != m.Digest {
		t.Fatalf("manifest %s:%s reads back with another digest", repo, ref)
	}
	var doc struct {
		Config    *desc  `json:"config"`
		Layers    []desc `json:"layers"`
		Manifests []desc `json:"manifests"`
	}
	if err := json.Unmarshal(m.Body, &doc); err != nil {
		t.Fatal(err)
	}
	blobs := doc.Layers
	if doc.Config != nil {
		blobs = append(blobs, *doc.Config)
	}
	for _, b := range blobs {
		if _, err := f.reg.Blob(f.ctx, repo, b.Digest); err != nil {
			t.Fatalf("pull %s:%s: blob %s: %v", repo, ref, b.Digest, err)
		}
		rc, err := f.reg.ReadBlob(f.ctx, b.Digest, 0)
		if err != nil {
			t.Fatalf("pull %s:%s: blob %s: %v", repo, ref, b.Digest, err)
		}
		got, err := digest.SHA256.FromReader(rc)
		rc.Close()
		if err != nil || got != b.Digest {
			t.Fatalf("pull %s:%s: blob %s reads back as %s (%v)", repo, ref, b.Digest, got, err)
		}
	}
	for _, c := range doc.Manifests {
		fullyPullable(t, f, repo, c.Digest.String())
	}
}
