package swift

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/storagetest"
	"github.com/berth-registry/berth/internal/testenv"
)

// TestRegistry2Interop runs registry:2 itself (the docker-registry Debian
// package, CNCF distribution 2.8.2, with its Swift driver) on the same
// container and prefix as the driver: what registry:2 pushes berth reads,
// an upload registry:2 started berth continues and registry:2 then
// cancels, and what berth writes registry:2 serves.
func TestRegistry2Interop(t *testing.T) {
	s := startedSwift(t)
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		testenv.Missing(t, fmt.Sprintf("docker-registry (distribution 2.8.2) not installed (%v): apt-get install docker-registry", err))
	}
	p := s.params(randomName("interop-"), "/reg")
	reg := startRegistry2(t, bin, s, p)
	d, err := New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const repo = "interop"
	const root = "/docker/registry/v2"

	// registry:2 pushes: a layer in two chunks (its writer continues a
	// large object), a config, a manifest and a tag.
	layer := storagetest.RandomBytes(20, 2*mib+mib/2)
	layerDigest := reg.upload(t, repo, layer[:1200<<10], layer[1200<<10:])
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	configDigest := reg.upload(t, repo, config)
	manifest := schema2(configDigest, len(config), layerDigest, len(layer))
	manifestDigest := reg.putManifest(t, repo, "v1", manifest)

	if got := string(storagetest.MustGet(t, d, root+"/repositories/"+repo+"/_manifests/tags/v1/current/link")); got != manifestDigest {
		t.Fatalf("tag link = %q, want %q", got, manifestDigest)
	}
	layerPath := blobPath(layerDigest)
	if info, err := d.Stat(ctx, layerPath); err != nil || info.Size != int64(len(layer)) {
		t.Fatalf("Stat(layer) = %+v, %v", info, err)
	}
	if got := storagetest.MustGet(t, d, layerPath); !bytes.Equal(got, layer) {
		t.Fatal("layer written by registry:2 reads back differently")
	}
	if got := storagetest.MustGet(t, d, blobPath(manifestDigest)); !bytes.Equal(got, manifest) {
		t.Fatal("manifest written by registry:2 reads back differently")
	}
	isManifest := false
	for _, o := range rawObjects(t, s, p.Container) {
		if o.name == "reg/files"+layerPath {
			isManifest = o.manifest != ""
		}
	}
	if !isManifest {
		t.Fatal("registry:2 did not store the layer as a large object: the test does not test what it should")
	}
	if got, err := d.List(ctx, root+"/repositories"); err != nil || !slices.Equal(got, []string{root + "/repositories/" + repo}) {
		t.Fatalf("List(repositories) = %q, %v", got, err)
	}

	// An upload registry:2 started, continued by berth, which then
	// deletes it with registry:2's segments and its own. (registry:2
	// cannot cancel it any more: its upload state records the old size.)
	first := storagetest.RandomBytes(21, 1500<<10)
	loc := reg.startUpload(t, repo)
	loc = reg.patch(t, loc, 0, first)
	id := uploadID(t, loc)
	uploadData := root + "/repositories/" + repo + "/_uploads/" + id + "/data"
	if info, err := d.Stat(ctx, uploadData); err != nil || info.Size != int64(len(first)) {
		t.Fatalf("Stat(registry:2's upload) = %+v, %v; want size %d", info, err, len(first))
	}
	more := storagetest.RandomBytes(22, mib+3)
	writeSession(t, d, uploadData, true, more, false)
	if got := storagetest.MustGet(t, d, uploadData); !bytes.Equal(got, append(first, more...)) {
		t.Fatal("continued upload differs")
	}
	if err := d.Delete(ctx, root+"/repositories/"+repo+"/_uploads/"+id); err != nil {
		t.Fatal(err)
	}
	assertNoOrphanSegments(t, s, p.Container, "reg/segments/")

	// berth writes a layer (two sessions on two drivers, then Move), a
	// config and a manifest with its links; registry:2 serves them.
	d2, err := New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	layer2 := storagetest.RandomBytes(23, 2*mib+12345)
	layer2Digest := digestOf(layer2)
	upload := root + "/repositories/" + repo + "/_uploads/3b9e4c2a-5d1f-4e8b-a7c6-0d2e1f3a4b5c/data"
	writeSession(t, d, upload, false, layer2[:mib+7], false)
	writeSession(t, d2, upload, true, layer2[mib+7:], true)
	if err := d2.Move(ctx, upload, blobPath(layer2Digest)); err != nil {
		t.Fatal(err)
	}
	config2 := []byte(`{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	config2Digest := digestOf(config2)
	storagetest.MustPut(t, d, blobPath(config2Digest), config2)
	manifest2 := schema2(config2Digest, len(config2), layer2Digest, len(layer2))
	manifest2Digest := digestOf(manifest2)
	storagetest.MustPut(t, d, blobPath(manifest2Digest), manifest2)
	for _, dg := range []string{layer2Digest, config2Digest} {
		storagetest.MustPut(t, d, root+"/repositories/"+repo+"/_layers/sha256/"+hexOf(dg)+"/link", []byte(dg))
	}
	storagetest.MustPut(t, d, root+"/repositories/"+repo+"/_manifests/revisions/sha256/"+hexOf(manifest2Digest)+"/link", []byte(manifest2Digest))
	storagetest.MustPut(t, d, root+"/repositories/"+repo+"/_manifests/tags/v2/index/sha256/"+hexOf(manifest2Digest)+"/link", []byte(manifest2Digest))
	storagetest.MustPut(t, d, root+"/repositories/"+repo+"/_manifests/tags/v2/current/link", []byte(manifest2Digest))

	body, _ := reg.do(t, http.MethodGet, reg.url("/v2/"+repo+"/blobs/"+layer2Digest), nil, nil, http.StatusOK)
	if !bytes.Equal(body, layer2) {
		t.Fatalf("registry:2 serves berth's layer as %d bytes, want %d", len(body), len(layer2))
	}
	_, hdr := reg.do(t, http.MethodHead, reg.url("/v2/"+repo+"/blobs/"+layer2Digest), nil, nil, http.StatusOK)
	if hdr.Get("Content-Length") != fmt.Sprint(len(layer2)) {
		t.Fatalf("registry:2 HEAD of berth's layer: Content-Length %s", hdr.Get("Content-Length"))
	}
	body, hdr = reg.do(t, http.MethodGet, reg.url("/v2/"+repo+"/manifests/v2"),
		http.Header{"Accept": {schema2Type}}, nil, http.StatusOK)
	if !bytes.Equal(body, manifest2) || hdr.Get("Docker-Content-Digest") != manifest2Digest {
		t.Fatalf("registry:2 serves berth's manifest as %q (%s)", body, hdr.Get("Docker-Content-Digest"))
	}
	body, _ = reg.do(t, http.MethodGet, reg.url("/v2/"+repo+"/tags/list"), nil, nil, http.StatusOK)
	if !strings.Contains(string(body), `"v1"`) || !strings.Contains(string(body), `"v2"`) {
		t.Fatalf("registry:2 tags list = %s", body)
	}
	assertNoOrphanSegments(t, s, p.Container, "reg/segments/")

	// registry:2's garbage collector deletes an unreferenced large blob
	// berth wrote, segments included, and keeps the referenced one.
	orphan := storagetest.RandomBytes(24, 2*mib+1)
	orphanDigest := digestOf(orphan)
	writeSession(t, d, blobPath(orphanDigest), false, orphan, true)
	gc := exec.Command(bin, "garbage-collect", reg.config)
	gc.Env = reg.env
	if out, err := gc.CombinedOutput(); err != nil {
		t.Fatalf("docker-registry garbage-collect: %v\n%s", err, out)
	}
	if _, err := d.Stat(ctx, blobPath(orphanDigest)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(unreferenced blob) after registry:2's GC = %v, want ErrNotFound", err)
	}
	assertNoOrphanSegments(t, s, p.Container, "reg/segments/")
	if got := storagetest.MustGet(t, d, blobPath(layer2Digest)); !bytes.Equal(got, layer2) {
		t.Fatal("referenced layer damaged by registry:2's GC")
	}
}

const schema2Type = "application/vnd.docker.distribution.manifest.v2+json"

func schema2(configDigest string, configSize int, layerDigest string, layerSize int) []byte {
	return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":%q},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%d,"digest":%q}]}`,
		schema2Type, configSize, configDigest, layerSize, layerDigest)
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func hexOf(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

func blobPath(digest string) string {
	h := hexOf(digest)
	return "/docker/registry/v2/blobs/sha256/" + h[:2] + "/" + h + "/data"
}

// registry2 is a running docker-registry.
type registry2 struct {
	base   *url.URL
	client *http.Client
	config string   // its config file
	env    []string // its environment
}

func startRegistry2(t *testing.T, bin string, s *swiftServer, p Params) *registry2 {
	t.Helper()
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	config := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  swift:
    username: %q
    password: %q
    authurl: %q
    container: %q
    prefix: %q
    chunksize: %d
  redirect:
    disable: true
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: berth-interop-test
`, p.Username, p.Password, p.AuthURL, p.Container, p.Prefix, MinChunkSize, addr)
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := exec.Command(bin, "serve", cfg)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	r := &registry2{base: &url.URL{Scheme: "http", Host: addr}, client: &http.Client{Timeout: time.Minute}, config: cfg, env: cmd.Env}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := r.client.Get(r.url("/v2/").String())
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(logf.Name())
			t.Fatalf("docker-registry exited: %v\n%s", cmd.ProcessState, out)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logf.Name())
			t.Fatalf("docker-registry not ready after 30s: %v\n%s", err, out)
		}
	}
}

func (r *registry2) url(p string) *url.URL { return r.base.ResolveReference(&url.URL{Path: p}) }

// do makes a request and checks its status.
func (r *registry2) do(t *testing.T, method string, u *url.URL, h http.Header, body []byte, want int) ([]byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.ContentLength = int64(len(body))
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %s, want %d: %s", method, u, resp.Status, want, b)
	}
	return b, resp.Header
}

func (r *registry2) location(t *testing.T, h http.Header) *url.URL {
	t.Helper()
	loc, err := url.Parse(h.Get("Location"))
	if err != nil || h.Get("Location") == "" {
		t.Fatalf("bad Location %q: %v", h.Get("Location"), err)
	}
	return r.base.ResolveReference(loc)
}

func (r *registry2) startUpload(t *testing.T, repo string) *url.URL {
	_, h := r.do(t, http.MethodPost, r.url("/v2/"+repo+"/blobs/uploads/"), nil, nil, http.StatusAccepted)
	return r.location(t, h)
}

func (r *registry2) patch(t *testing.T, loc *url.URL, start int, chunk []byte) *url.URL {
	_, h := r.do(t, http.MethodPatch, loc, http.Header{
		"Content-Type":  {"application/octet-stream"},
		"Content-Range": {fmt.Sprintf("%d-%d", start, start+len(chunk)-1)},
	}, chunk, http.StatusAccepted)
	return r.location(t, h)
}

// upload pushes a blob in the given chunks and returns its digest.
func (r *registry2) upload(t *testing.T, repo string, chunks ...[]byte) string {
	t.Helper()
	blob := bytes.Join(chunks, nil)
	dg := digestOf(blob)
	loc := r.startUpload(t, repo)
	off := 0
	for _, c := range chunks {
		loc = r.patch(t, loc, off, c)
		off += len(c)
	}
	q := loc.Query()
	q.Set("digest", dg)
	loc.RawQuery = q.Encode()
	r.do(t, http.MethodPut, loc, nil, nil, http.StatusCreated)
	return dg
}

func (r *registry2) putManifest(t *testing.T, repo, tag string, body []byte) string {
	t.Helper()
	_, h := r.do(t, http.MethodPut, r.url("/v2/"+repo+"/manifests/"+tag), http.Header{"Content-Type": {schema2Type}}, body, http.StatusCreated)
	return h.Get("Docker-Content-Digest")
}

func uploadID(t *testing.T, loc *url.URL) string {
	t.Helper()
	i := strings.LastIndex(loc.Path, "/")
	if i < 0 || len(loc.Path)-i-1 < 30 {
		t.Fatalf("no upload id in %s", loc)
	}
	return loc.Path[i+1:]
}
