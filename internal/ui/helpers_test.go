package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/htpasswd"
	"github.com/berth-registry/berth/internal/auth/setup"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/server"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/inmemory"
)

const (
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
	ociIndex    = "application/vnd.oci.image.index.v1+json"
	ociConfig   = "application/vnd.oci.image.config.v1+json"
	ociLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	ociEmpty    = "application/vnd.oci.empty.v1+json"
)

// env is a running registry (API and UI) over an in-memory driver that
// records what the handlers do to storage.
type env struct {
	t      *testing.T
	srv    *httptest.Server
	driver *recordingDriver
	// user and pass authenticate pushes when the registry has auth.
	user, pass string
	prefix     string // http.prefix, for pushes
}

func start(t *testing.T, authz auth.Authorizer, mod func(*server.Options)) *env {
	t.Helper()
	d := &recordingDriver{Driver: inmemory.New()}
	opts := server.Options{Driver: d, Authorizer: authz, UI: true, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&opts)
	}
	s, err := server.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	return &env{t: t, srv: hs, driver: d, prefix: opts.Prefix}
}

// authFromConfig builds access control the way berth serve does.
func authFromConfig(t *testing.T, yml string) auth.Authorizer {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	for _, u := range []string{"admin", "teamuser"} {
		l, err := htpasswd.Line(u, u+"-pw", bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(l)
	}
	users := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(users, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(yml, "HTPASSWD", users)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := setup.FromConfig(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return res.Authorizer
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request with Basic credentials if user is set.
func (e *env) do(method, path string, body []byte, user, pass string, hdr ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	// Redirects are asserted on, not followed.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// page GETs a UI page anonymously and wants 200.
func (e *env) page(path string) string {
	e.t.Helper()
	return e.pageAs(path, "", "")
}

func (e *env) pageAs(path, user, pass string) string {
	e.t.Helper()
	r := e.do("GET", path, nil, user, pass)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET %s: %d\n%s", path, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		e.t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	return r.body
}

func (e *env) pushBlob(name string, data []byte) descriptor {
	e.t.Helper()
	d := digest.FromBytes(data)
	r := e.do("POST", e.prefix+"/v2/"+name+"/blobs/uploads/?digest="+string(d), data, e.user, e.pass)
	if r.status != http.StatusCreated {
		e.t.Fatalf("push blob to %s: %d %s", name, r.status, r.body)
	}
	return descriptor{Digest: d, Size: int64(len(data))}
}

func (e *env) putManifest(name, ref, mediaType string, body []byte) digest.Digest {
	e.t.Helper()
	r := e.do("PUT", e.prefix+"/v2/"+name+"/manifests/"+ref, body, e.user, e.pass, "Content-Type", mediaType)
	if r.status != http.StatusCreated {
		e.t.Fatalf("put manifest %s:%s: %d %s", name, ref, r.status, r.body)
	}
	return digest.Digest(r.header.Get("Docker-Content-Digest"))
}

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Platform     map[string]string `json:"platform,omitempty"`
}

// image pushes an image with the given layers into name, tagged ref
// (a digest reference leaves it untagged), and returns its descriptor and
// the size of config plus layers.
func (e *env) image(name, ref, arch string, labels map[string]string, layers ...[]byte) (descriptor, int64) {
	e.t.Helper()
	cfg, _ := json.Marshal(map[string]any{
		"architecture": arch, "os": "linux", "created": "2024-05-01T12:34:56Z",
		"config": map[string]any{"Labels": labels},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{}},
	})
	c := e.pushBlob(name, cfg)
	c.MediaType = ociConfig
	total := c.Size
	var ls []descriptor
	for _, l := range layers {
		d := e.pushBlob(name, l)
		d.MediaType = ociLayer
		ls = append(ls, d)
		total += d.Size
	}
	body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociManifest, "config": c, "layers": ls})
	if ref == "" {
		ref = string(digest.FromBytes(body))
	}
	d := e.putManifest(name, ref, ociManifest, body)
	return descriptor{MediaType: ociManifest, Digest: d, Size: int64(len(body))}, total
}

// links returns the href values of a page, unescaped.
func links(page string) []string {
	var out []string
	for _, m := range hrefRE.FindAllStringSubmatch(page, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

var (
	hrefRE = regexp.MustCompile(`href="([^"]*)"`)
	nextRE = regexp.MustCompile(`rel="next" href="([^"]*)"`)
)

func nextLink(page string) string {
	m := nextRE.FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// recordingDriver notes every storage operation, so tests can tell that a
// request touched nothing, or wrote nothing.
type recordingDriver struct {
	storage.Driver
	mu  sync.Mutex
	ops []string
}

func (d *recordingDriver) note(op, path string) {
	d.mu.Lock()
	d.ops = append(d.ops, op+" "+path)
	d.mu.Unlock()
}

// since returns the operations after the first n, and how many there are.
func (d *recordingDriver) since(n int) ([]string, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.ops[n:]...), len(d.ops)
}

func (d *recordingDriver) count() int { _, n := d.since(0); return n }

func (d *recordingDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	d.note("get", p)
	return d.Driver.GetContent(ctx, p)
}

func (d *recordingDriver) PutContent(ctx context.Context, p string, b []byte) error {
	d.note("put", p)
	return d.Driver.PutContent(ctx, p, b)
}

func (d *recordingDriver) Reader(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	d.note("read", p)
	return d.Driver.Reader(ctx, p, off)
}

func (d *recordingDriver) Writer(ctx context.Context, p string, resume bool) (storage.FileWriter, error) {
	d.note("write", p)
	return d.Driver.Writer(ctx, p, resume)
}

func (d *recordingDriver) Stat(ctx context.Context, p string) (storage.FileInfo, error) {
	d.note("stat", p)
	return d.Driver.Stat(ctx, p)
}

func (d *recordingDriver) List(ctx context.Context, p string) ([]string, error) {
	d.note("list", p)
	return d.Driver.List(ctx, p)
}

func (d *recordingDriver) Move(ctx context.Context, src, dst string) error {
	d.note("move", src+" "+dst)
	return d.Driver.Move(ctx, src, dst)
}

func (d *recordingDriver) Delete(ctx context.Context, p string) error {
	d.note("delete", p)
	return d.Driver.Delete(ctx, p)
}
