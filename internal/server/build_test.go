package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/testlog"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/filesystem"
)

// gatedDriver holds every listing of a repository's tags until the gate
// opens (or the caller's context ends): an index build over it cannot
// finish before the test says so, while reads of single objects (how a
// pull resolves from storage) pass.
type gatedDriver struct {
	storage.Driver
	gate   chan struct{}
	opened atomic.Bool
}

func (d *gatedDriver) List(ctx context.Context, p string) ([]string, error) {
	if strings.HasSuffix(p, "/_manifests/tags") {
		select {
		case <-d.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return d.Driver.List(ctx, p)
}

func (d *gatedDriver) open() {
	d.opened.Store(true)
	close(d.gate)
}

func newGated(t *testing.T, root string) *gatedDriver {
	t.Helper()
	fs, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return &gatedDriver{Driver: fs, gate: make(chan struct{})}
}

// Over a tree with content and no index (the first start over a registry:2
// tree, or the start after a crash), the server serves at once while the
// index builds: pulls and blob uploads go through, and what needs the
// index (a manifest push, the catalog) waits and then answers as if the
// index had been there all along.
func TestServesWhileTheIndexBuilds(t *testing.T) {
	root := t.TempDir()
	seeded := seedTree(t, root, "a/one", "b/two")
	d := newGated(t, root)
	logs := &testlog.Buffer{}
	s, err := New(context.Background(), Options{Driver: d, RootDirectory: root,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(s.Handler())
	defer func() {
		if !d.opened.Load() {
			d.open() // a failed check must not leave requests hanging
		}
		hs.Close()
		s.Close()
	}()

	// Pulls and uploads, while the build is held.
	resp := do(t, "GET", hs.URL+"/v2/a/one/manifests/latest", map[string]string{"Accept": content.MediaTypeOCIManifest}, nil)
	body := expectStatus(t, resp, http.StatusOK)
	if got := digest.FromBytes(body); got != seeded["a/one"] {
		t.Fatalf("manifest during the build: %s, want %s", got, seeded["a/one"])
	}
	layer := []byte("layer of a/one")
	expectStatus(t, do(t, "HEAD", hs.URL+"/v2/a/one/blobs/"+digest.FromBytes(layer).String(), nil, nil), http.StatusOK)
	cfg, newLayer := []byte(`{"pushed":"during the build"}`), []byte("a layer pushed during the build")
	for _, b := range [][]byte{cfg, newLayer} {
		expectStatus(t, do(t, "POST", hs.URL+"/v2/a/one/blobs/uploads/?digest="+digest.FromBytes(b).String(), nil, bytes.NewReader(b)), http.StatusCreated)
	}
	// All of that while the build was still held.
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WaitIndex(expired); err != context.Canceled {
		t.Fatalf("WaitIndex during the held build = %v; want the build still running", err)
	}

	// A manifest push and the catalog wait for the build.
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		content.MediaTypeOCIManifest, digest.FromBytes(cfg), len(cfg), digest.FromBytes(newLayer), len(newLayer))
	type answer struct {
		status      int
		body        string
		afterOpened bool
	}
	ask := func(method, path, body string) <-chan answer {
		out := make(chan answer, 1)
		go func() {
			var r *http.Response
			var err error
			if body != "" {
				req, _ := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
				req.Header.Set("Content-Type", content.MediaTypeOCIManifest)
				r, err = http.DefaultClient.Do(req)
			} else {
				r, err = http.Get(hs.URL + path)
			}
			if err != nil {
				out <- answer{status: -1, body: err.Error()}
				return
			}
			var buf bytes.Buffer
			buf.ReadFrom(r.Body)
			r.Body.Close()
			out <- answer{r.StatusCode, buf.String(), d.opened.Load()}
		}()
		return out
	}
	push := ask("PUT", "/v2/a/one/manifests/v2", manifest)
	cat := ask("GET", "/v2/_catalog", "")
	// Both are waiting (each says so in the log) before the build may end.
	waitFor(t, "both requests to wait for the index", func() bool {
		return strings.Count(logs.String(), "waiting for the index build") == 2
	})
	d.open()
	if a := <-push; a.status != http.StatusCreated || !a.afterOpened {
		t.Fatalf("manifest push during the build: %d %s, answered after the build: %v", a.status, a.body, a.afterOpened)
	}
	if a := <-cat; a.status != http.StatusOK || a.body != `{"repositories":["a/one","b/two"]}` || !a.afterOpened {
		t.Fatalf("catalog during the build: %d %s, answered after the build: %v", a.status, a.body, a.afterOpened)
	}

	var tags struct {
		Tags []string `json:"tags"`
	}
	if code := getJSON(t, hs.URL+"/v2/a/one/tags/list", &tags); code != http.StatusOK || !slices.Equal(tags.Tags, []string{"latest", "v2"}) {
		t.Fatalf("tags after the build: %d %v", code, tags.Tags)
	}
	if !strings.Contains(logs.String(), "index built") {
		t.Errorf("no \"index built\" in the log:\n%s", logs)
	}
}

// Stopping the server during a build stops the build and leaves the index
// stale, so the next start builds it again; a server over an empty tree
// builds its (empty) index before New returns.
func TestCloseStopsTheIndexBuild(t *testing.T) {
	root := t.TempDir()
	seedTree(t, root, "a/one")
	s, err := New(context.Background(), Options{Driver: newGated(t, root), RootDirectory: root, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if s.build == nil {
		t.Fatal("no background build over a tree with content")
	}
	if err := s.Close(); err != nil { // the gate never opens: Close must not hang
		t.Fatalf("Close: %v", err)
	}
	if err := s.WaitIndex(context.Background()); !errors.Is(err, content.ErrBuildStopped) {
		t.Fatalf("WaitIndex after Close during the build: %v, want ErrBuildStopped", err)
	}
	idx, err := index.Open(filepath.Join(root, "berth", "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	stale := idx.Stale()
	idx.Close()
	if !stale {
		t.Fatal("an index whose build was stopped does not read as stale")
	}

	empty := t.TempDir()
	s, err = New(context.Background(), Options{RootDirectory: empty, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New over an empty tree: %v", err)
	}
	defer s.Close()
	if s.build != nil {
		t.Fatal("an empty tree's index was built in the background")
	}
	if err := s.WaitIndex(context.Background()); err != nil {
		t.Fatalf("WaitIndex with no build: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// failingTags fails every listing of a repository's tags.
type failingTags struct{ storage.Driver }

func (d failingTags) List(ctx context.Context, p string) ([]string, error) {
	if strings.HasSuffix(p, "/_manifests/tags") {
		return nil, errors.New("disk on fire")
	}
	return d.Driver.List(ctx, p)
}

// A build that fails stops the server with its error, as a failed build
// once kept it from starting: an index that does not match storage must
// not serve listings.
func TestFailedIndexBuildStopsTheServer(t *testing.T) {
	root := t.TempDir()
	seedTree(t, root, "a/one")
	fs, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), Options{Driver: failingTags{fs}, RootDirectory: root, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer s.Close()
	if err := s.WaitIndex(context.Background()); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("WaitIndex = %v; want the build's failure", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = s.ServeListener(context.Background(), ln)
	if err == nil || !strings.Contains(err.Error(), "build index") || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("ServeListener = %v; want the build's failure", err)
	}
}
