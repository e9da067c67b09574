package api_test

import (
	"bufio"
	"bytes"
	"context"
	_ "crypto/sha512" // registers sha512 with go-digest
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/server"
)

const (
	apiVersion    = "registry/2.0"
	ociManifest   = "application/vnd.oci.image.manifest.v1+json"
	ociIndex      = "application/vnd.oci.image.index.v1+json"
	ociConfig     = "application/vnd.oci.image.config.v1+json"
	ociLayer      = "application/vnd.oci.image.layer.v1.tar+gzip"
	ociEmpty      = "application/vnd.oci.empty.v1+json"
	dockerV2      = "application/vnd.docker.distribution.manifest.v2+json"
	dockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	dockerConfig  = "application/vnd.docker.container.image.v1+json"
	dockerLayer   = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	blobsRootPath = "docker/registry/v2/blobs"
)

// reg is a berth server on filesystem storage in a temporary directory,
// served over real HTTP, with a tiny registry client on top.
type reg struct {
	t    *testing.T
	root string
	opts server.Options
	srv  *server.Server
	ts   *httptest.Server
}

func newReg(t *testing.T, mods ...func(*server.Options)) *reg {
	t.Helper()
	r := &reg{t: t, root: t.TempDir()}
	r.opts = server.Options{
		RootDirectory: r.root,
		DeleteEnabled: true,
		Logger:        slog.New(slog.DiscardHandler),
	}
	for _, m := range mods {
		m(&r.opts)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func deletesDisabled(o *server.Options) { o.DeleteEnabled = false }

func (r *reg) start() {
	r.t.Helper()
	srv, err := server.New(context.Background(), r.opts)
	if err != nil {
		r.t.Fatalf("server.New: %v", err)
	}
	r.srv = srv
	r.ts = httptest.NewServer(srv.Handler())
}

func (r *reg) stop() {
	if r.ts != nil {
		r.ts.Close()
		r.ts = nil
	}
	if r.srv != nil {
		if err := r.srv.Close(); err != nil {
			r.t.Errorf("server close: %v", err)
		}
		r.srv = nil
	}
}

// resp is a finished HTTP exchange.
type resp struct {
	t      *testing.T
	req    string
	status int
	header http.Header
	body   []byte
}

// do sends a request; hdr holds header name/value pairs. A nil body sends
// none; the body's length is always known (use send for streaming). Every
// response must carry the API version header.
func (r *reg) do(method, path string, body []byte, hdr ...string) *resp {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, r.url(path), rd)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return r.send(req)
}

// send performs req. It reports transport failures with Errorf (so it is
// usable from goroutines) and then returns a response with status 0.
func (r *reg) send(req *http.Request) *resp {
	r.t.Helper()
	rs := &resp{t: r.t, req: req.Method + " " + req.URL.RequestURI()}
	res, err := r.ts.Client().Do(req)
	if err != nil {
		r.t.Errorf("%s: %v", rs.req, err)
		return rs
	}
	defer res.Body.Close()
	rs.status, rs.header = res.StatusCode, res.Header
	if rs.body, err = io.ReadAll(res.Body); err != nil {
		r.t.Errorf("%s: reading body: %v", rs.req, err)
	}
	if got := res.Header.Get("Docker-Distribution-Api-Version"); got != apiVersion {
		r.t.Errorf("%s: Docker-Distribution-Api-Version = %q, want %q", rs.req, got, apiVersion)
	}
	return rs
}

func (r *reg) url(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return r.ts.URL + path
}

// want fails the test unless the response has the given status.
func (rs *resp) want(status int) *resp {
	rs.t.Helper()
	if rs.status != status {
		rs.t.Fatalf("%s: status %d, want %d; body %s", rs.req, rs.status, status, rs.body)
	}
	return rs
}

// wantErr fails the test unless the response is a spec error body with the
// given status and code.
func (rs *resp) wantErr(status int, code string) *resp {
	rs.t.Helper()
	rs.want(status)
	if rs.status == http.StatusRequestedRangeNotSatisfiable && len(rs.body) == 0 {
		return rs // HEAD
	}
	if got := rs.code(); got != code {
		rs.t.Fatalf("%s: error code %q, want %q; body %s", rs.req, got, code, rs.body)
	}
	if ct := rs.header.Get("Content-Type"); ct != "application/json" {
		rs.t.Errorf("%s: error Content-Type %q", rs.req, ct)
	}
	return rs
}

// code is the first error code of a spec error body ("" if none).
func (rs *resp) code() string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(rs.body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// wantHeader checks one response header exactly.
func (rs *resp) wantHeader(name, value string) *resp {
	rs.t.Helper()
	if got := rs.header.Get(name); got != value {
		rs.t.Errorf("%s: %s = %q, want %q", rs.req, name, got, value)
	}
	return rs
}

func (rs *resp) json(v any) {
	rs.t.Helper()
	if err := json.Unmarshal(rs.body, v); err != nil {
		rs.t.Fatalf("%s: decoding %s: %v", rs.req, rs.body, err)
	}
}

// pushBlob uploads data monolithically (POST ?digest=) into name.
func (r *reg) pushBlob(name string, data []byte) digest.Digest {
	r.t.Helper()
	d := digest.FromBytes(data)
	r.do("POST", "/v2/"+name+"/blobs/uploads/?digest="+d.String(), data).
		want(http.StatusCreated).
		wantHeader("Docker-Content-Digest", d.String()).
		wantHeader("Location", "/v2/"+name+"/blobs/"+d.String())
	return d
}

// startUpload opens an upload and returns its Location.
func (r *reg) startUpload(name string) string {
	r.t.Helper()
	rs := r.do("POST", "/v2/"+name+"/blobs/uploads/", nil).want(http.StatusAccepted)
	loc := rs.header.Get("Location")
	if !strings.HasPrefix(loc, "/v2/"+name+"/blobs/uploads/") {
		r.t.Fatalf("upload Location %q", loc)
	}
	return loc
}

// withQuery appends a query parameter to a Location.
func withQuery(loc, kv string) string {
	if strings.Contains(loc, "?") {
		return loc + "&" + kv
	}
	return loc + "?" + kv
}

func (r *reg) putManifest(name, ref, mediaType string, body []byte) *resp {
	r.t.Helper()
	return r.do("PUT", "/v2/"+name+"/manifests/"+ref, body, "Content-Type", mediaType)
}

// mustPutManifest stores a manifest and checks the success headers.
func (r *reg) mustPutManifest(name, ref, mediaType string, body []byte) digest.Digest {
	r.t.Helper()
	d := digest.FromBytes(body)
	if strings.Contains(ref, ":") {
		d = digest.Digest(ref)
	}
	r.putManifest(name, ref, mediaType, body).
		want(http.StatusCreated).
		wantHeader("Docker-Content-Digest", d.String()).
		wantHeader("Location", "/v2/"+name+"/manifests/"+d.String())
	return d
}

// tags lists a repository's tags (nil when the repository is unknown).
func (r *reg) tags(name string) []string {
	r.t.Helper()
	rs := r.do("GET", "/v2/"+name+"/tags/list", nil)
	if rs.status == http.StatusNotFound {
		rs.wantErr(http.StatusNotFound, "NAME_UNKNOWN")
		return nil
	}
	var l struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	rs.want(http.StatusOK).json(&l)
	if l.Name != name {
		r.t.Errorf("tags/list name %q, want %q", l.Name, name)
	}
	return l.Tags
}

func (r *reg) catalog() []string {
	r.t.Helper()
	var c struct {
		Repositories []string `json:"repositories"`
	}
	r.do("GET", "/v2/_catalog", nil).want(http.StatusOK).json(&c)
	return c.Repositories
}

// files lists the regular files below dir (relative to the storage root),
// relative to that directory, sorted; nil if the directory does not exist.
func (r *reg) files(dir string) []string {
	r.t.Helper()
	base := filepath.Join(r.root, filepath.FromSlash(dir))
	var out []string
	err := filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			rel, _ := filepath.Rel(base, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		r.t.Fatalf("walk %s: %v", dir, err)
	}
	slices.Sort(out)
	return out
}

// blobFiles lists every file in the shared blob store.
func (r *reg) blobFiles() []string { return r.files(blobsRootPath) }

// uploadFiles lists every file of every upload in progress in name.
func (r *reg) uploadFiles(name string) []string {
	return r.files("docker/registry/v2/repositories/" + name + "/_uploads")
}

// wantNoBlobFile fails if the blob store holds anything for d.
func (r *reg) wantNoBlobFile(d digest.Digest) {
	r.t.Helper()
	for _, f := range r.blobFiles() {
		if strings.Contains(f, d.Encoded()) {
			r.t.Errorf("blob store holds %s for rejected content %s", f, d)
		}
	}
}

// desc is an OCI descriptor.
type desc struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

func descOf(mediaType string, data []byte) desc {
	return desc{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// image pushes a config and a layer derived from seed into name and returns
// an image manifest of the given media type referencing them (not pushed).
func (r *reg) image(name, mediaType, seed string) []byte {
	r.t.Helper()
	cfgType, layerType := ociConfig, ociLayer
	if mediaType == dockerV2 {
		cfgType, layerType = dockerConfig, dockerLayer
	}
	cfg := []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`)
	layer := []byte("layer bytes of " + seed)
	r.pushBlob(name, cfg)
	r.pushBlob(name, layer)
	return mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaType,
		"config":        descOf(cfgType, cfg),
		"layers":        []desc{descOf(layerType, layer)},
	})
}

// index returns an index of the given media type listing children.
func index(mediaType string, children ...desc) []byte {
	return mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaType,
		"manifests":     children,
	})
}

// artifact pushes the empty config into name and returns an artifact
// manifest whose subject is subject (not pushed).
func (r *reg) artifact(name, artifactType string, subject desc, annotations map[string]string) []byte {
	r.t.Helper()
	empty := []byte("{}")
	r.pushBlob(name, empty)
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     ociManifest,
		"config":        descOf(ociEmpty, empty),
		"layers":        []desc{descOf(ociEmpty, empty)},
		"subject":       subject,
	}
	if artifactType != "" {
		m["artifactType"] = artifactType
	}
	if annotations != nil {
		m["annotations"] = annotations
	}
	return mustJSON(m)
}

// rawConn opens a TCP connection to the server and writes head (request
// line and headers, CRLF-separated, without the blank line) and body.
func (r *reg) rawConn(head string, body []byte) *net.TCPConn {
	r.t.Helper()
	c, err := net.Dial("tcp", r.ts.Listener.Addr().String())
	if err != nil {
		r.t.Fatalf("dial: %v", err)
	}
	msg := head + "\r\nHost: " + r.ts.Listener.Addr().String() + "\r\n\r\n"
	if _, err := c.Write(append([]byte(msg), body...)); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
	return c.(*net.TCPConn)
}

// readRawResponse reads one response from a raw connection.
func readRawResponse(t *testing.T, c net.Conn) *http.Response {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("raw response: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if got := res.Header.Get("Docker-Distribution-Api-Version"); got != apiVersion {
		t.Errorf("raw response: Docker-Distribution-Api-Version = %q", got)
	}
	return res
}

// eventually polls cond, without sleeping, until it holds or a deadline
// passes. Each call of cond is an HTTP round trip, which paces the loop.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// sub returns the client reporting to t, for use inside subtests.
func (r *reg) sub(t *testing.T) *reg {
	c := *r
	c.t = t
	return &c
}
