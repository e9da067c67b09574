package interop

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtOCIConfig      = "application/vnd.oci.image.config.v1+json"
	mtOCILayer       = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerConfig   = "application/vnd.docker.container.image.v1+json"
	mtDockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// acceptManifests is what a client accepting every manifest type sends.
var acceptManifests = strings.Join([]string{mtOCIManifest, mtOCIIndex, mtDockerManifest, mtDockerList}, ", ")

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// client is a minimal Docker Registry HTTP API v2 / OCI distribution client.
type client struct {
	t    *testing.T
	base *url.URL
	hc   *http.Client
}

func newClient(t *testing.T, baseURL string) *client {
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, base: u, hc: &http.Client{Timeout: 2 * time.Minute}}
}

// response is what the server answered, with the headers the tests compare.
type response struct {
	Status        int
	ContentType   string
	Digest        string // Docker-Content-Digest
	ContentLength string
	Body          []byte
	ErrorCode     string // first errors[].code of an error body
	Location      string
}

func (c *client) resolve(ref string) string {
	u, err := c.base.Parse(ref)
	if err != nil {
		c.t.Fatalf("bad URL %q: %v", ref, err)
	}
	return u.String()
}

func (c *client) do(method, ref string, header http.Header, body []byte) response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.resolve(ref), rd)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != nil {
		req.ContentLength = int64(len(body))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, ref, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading body: %v", method, ref, err)
	}
	r := response{
		Status:        resp.StatusCode,
		ContentType:   resp.Header.Get("Content-Type"),
		Digest:        resp.Header.Get("Docker-Content-Digest"),
		ContentLength: resp.Header.Get("Content-Length"),
		Body:          data,
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Errors []struct {
				Code string `json:"code"`
			} `json:"errors"`
		}
		if json.Unmarshal(data, &e) == nil && len(e.Errors) > 0 {
			r.ErrorCode = e.Errors[0].Code
		}
	}
	r.Location = resp.Header.Get("Location")
	return r
}

func (c *client) expect(r response, want int, what string) {
	c.t.Helper()
	if r.Status != want {
		c.t.Fatalf("%s: status %d, want %d; body: %s", what, r.Status, want, truncate(r.Body))
	}
}

// withQuery adds query parameters to a (possibly relative) upload Location,
// keeping the ones it already has (distribution keeps its state there).
func (c *client) withQuery(loc string, kv ...string) string {
	u, err := c.base.Parse(loc)
	if err != nil {
		c.t.Fatalf("bad Location %q: %v", loc, err)
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// startUpload opens an upload session and returns its Location.
func (c *client) startUpload(repo string) string {
	c.t.Helper()
	r := c.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
	c.expect(r, http.StatusAccepted, "POST upload to "+repo)
	if r.Location == "" {
		c.t.Fatalf("POST upload to %s: no Location", repo)
	}
	return r.Location
}

// pushBlobMonolithic uploads a blob with POST then one PUT carrying the body.
func (c *client) pushBlobMonolithic(repo string, data []byte) string {
	c.t.Helper()
	dgst := digestOf(data)
	loc := c.startUpload(repo)
	h := http.Header{"Content-Type": {"application/octet-stream"}}
	r := c.do(http.MethodPut, c.withQuery(loc, "digest", dgst), h, data)
	c.expect(r, http.StatusCreated, "PUT blob "+dgst+" to "+repo)
	return dgst
}

// pushBlobChunked uploads a blob with POST, one PATCH per chunk, then an
// empty PUT.
func (c *client) pushBlobChunked(repo string, data []byte, chunk int) string {
	c.t.Helper()
	dgst := digestOf(data)
	loc := c.startUpload(repo)
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		h := http.Header{
			"Content-Type":  {"application/octet-stream"},
			"Content-Range": {fmt.Sprintf("%d-%d", off, end-1)},
		}
		r := c.do(http.MethodPatch, loc, h, data[off:end])
		c.expect(r, http.StatusAccepted, fmt.Sprintf("PATCH %d-%d of %s to %s", off, end-1, dgst, repo))
		if r.Location == "" {
			c.t.Fatalf("PATCH to %s: no Location", repo)
		}
		loc = r.Location
	}
	r := c.do(http.MethodPut, c.withQuery(loc, "digest", dgst), nil, nil)
	c.expect(r, http.StatusCreated, "closing PUT of "+dgst+" to "+repo)
	return dgst
}

// mountBlob links a blob of repository from into repo.
func (c *client) mountBlob(repo, from, dgst string) {
	c.t.Helper()
	q := url.Values{"mount": {dgst}, "from": {from}}
	r := c.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?"+q.Encode(), nil, nil)
	c.expect(r, http.StatusCreated, "mount "+dgst+" from "+from+" into "+repo)
}

// pushManifest PUTs a manifest under ref (a tag or its digest) and checks the
// digest the server computed.
func (c *client) pushManifest(repo, ref, mediaType string, body []byte) string {
	c.t.Helper()
	dgst := digestOf(body)
	h := http.Header{"Content-Type": {mediaType}}
	r := c.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, h, body)
	c.expect(r, http.StatusCreated, "PUT manifest "+repo+":"+ref)
	if r.Digest != "" && r.Digest != dgst {
		c.t.Fatalf("PUT manifest %s:%s: server says digest %s, want %s", repo, ref, r.Digest, dgst)
	}
	return dgst
}

func (c *client) deleteManifest(repo, dgst string) {
	c.t.Helper()
	r := c.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+dgst, nil, nil)
	c.expect(r, http.StatusAccepted, "DELETE manifest "+repo+"@"+dgst)
}

func (c *client) deleteBlob(repo, dgst string) {
	c.t.Helper()
	r := c.do(http.MethodDelete, "/v2/"+repo+"/blobs/"+dgst, nil, nil)
	c.expect(r, http.StatusAccepted, "DELETE blob "+repo+"@"+dgst)
}

func (c *client) getManifest(method, repo, ref string) response {
	c.t.Helper()
	return c.do(method, "/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {acceptManifests}}, nil)
}

func (c *client) getBlob(method, repo, dgst string) response {
	c.t.Helper()
	return c.do(method, "/v2/"+repo+"/blobs/"+dgst, nil, nil)
}

// catalog lists every repository, following Link pagination.
func (c *client) catalog() []string {
	c.t.Helper()
	return c.list("/v2/_catalog?n=2", "repositories")
}

// tags lists every tag of repo, following Link pagination.
func (c *client) tags(repo string) []string {
	c.t.Helper()
	return c.list("/v2/"+repo+"/tags/list?n=2", "tags")
}

func (c *client) list(ref, field string) []string {
	c.t.Helper()
	var all []string
	for page := 0; ref != ""; page++ {
		if page > 100 {
			c.t.Fatalf("GET %s: more than 100 pages", ref)
		}
		req, err := http.NewRequest(http.MethodGet, c.resolve(ref), nil)
		if err != nil {
			c.t.Fatal(err)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			c.t.Fatalf("GET %s: %v", ref, err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			c.t.Fatalf("GET %s: %v", ref, err)
		}
		if resp.StatusCode != http.StatusOK {
			c.t.Fatalf("GET %s: status %d: %s", ref, resp.StatusCode, truncate(data))
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			c.t.Fatalf("GET %s: %v: %s", ref, err, truncate(data))
		}
		var items []string
		if raw, ok := m[field]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &items); err != nil {
				c.t.Fatalf("GET %s: %s: %v", ref, field, err)
			}
		}
		all = append(all, items...)
		ref = nextLink(resp.Header.Get("Link"))
	}
	return all
}

// nextLink extracts the target of `<...>; rel="next"`.
func nextLink(h string) string {
	for _, part := range strings.Split(h, ",") {
		part = strings.TrimSpace(part)
		if !strings.Contains(part, `rel="next"`) {
			continue
		}
		if i, j := strings.Index(part, "<"), strings.Index(part, ">"); i >= 0 && j > i {
			return part[i+1 : j]
		}
	}
	return ""
}

func truncate(b []byte) string {
	const n = 300
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "..."
	}
	return strconv.Quote(string(b))
}
