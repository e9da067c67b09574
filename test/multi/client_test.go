//go:build e2e

package multi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

// httpc never keeps connections alive: each request is a new connection,
// so nginx balances every request, and the only connections a berth
// instance has are requests in flight.
var httpc = &http.Client{
	Timeout:   2 * time.Minute,
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// image is an OCI image: a config, layers, and its manifest.
type image struct {
	repo, tag string
	config    []byte
	layers    [][]byte
	manifest  []byte
}

func (im image) digest() string { return digestOf(im.manifest) }

func (im image) blobs() [][]byte { return append([][]byte{im.config}, im.layers...) }

func newImage(repo, tag string, seed uint64, layerSizes ...int) image {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	im := image{repo: repo, tag: tag}
	im.config = []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":%d}`, seed))
	var layers []any
	for _, n := range layerSizes {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		im.layers = append(im.layers, b)
		layers = append(layers, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digestOf(b), "size": n})
	}
	im.manifest, _ = json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ociManifest,
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digestOf(im.config), "size": len(im.config)},
		"layers":        layers,
	})
	return im
}

// statusError is an answer other than the one expected.
type statusError struct {
	method, url string
	code        int
	body        string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.url, e.code, strings.TrimSpace(e.body))
}

func request(method, u, contentType string, hdr map[string]string, body io.Reader, want ...int) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, b, fmt.Errorf("%s %s: reading the answer: %w", method, u, err)
	}
	for _, w := range want {
		if resp.StatusCode == w {
			return resp, b, nil
		}
	}
	return resp, b, &statusError{method, u, resp.StatusCode, string(b)}
}

// absolute resolves a Location header against base.
func absolute(base, loc string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	l, err := b.Parse(loc)
	if err != nil {
		return "", err
	}
	return l.String(), nil
}

// withQuery adds digest=d to an upload URL.
func withDigest(u, d string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "digest=" + url.QueryEscape(d)
}

// pushBlobChunked uploads data in chunks: POST, one PATCH per chunk (with
// Content-Range), PUT with the digest. It returns the upload's id.
func pushBlobChunked(base, repo string, data []byte, chunk int) (string, error) {
	resp, _, err := request(http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil, nil, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	id := resp.Header.Get("Docker-Upload-UUID")
	loc, err := absolute(base, resp.Header.Get("Location"))
	if err != nil {
		return id, err
	}
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		hdr := map[string]string{
			"Content-Range":  fmt.Sprintf("%d-%d", off, end-1),
			"Content-Length": strconv.Itoa(end - off),
		}
		resp, _, err := request(http.MethodPatch, loc, "application/octet-stream", hdr, bytes.NewReader(data[off:end]), http.StatusAccepted)
		if err != nil {
			return id, err
		}
		if loc, err = absolute(base, resp.Header.Get("Location")); err != nil {
			return id, err
		}
	}
	_, _, err = request(http.MethodPut, withDigest(loc, digestOf(data)), "application/octet-stream", nil, nil, http.StatusCreated)
	return id, err
}

// pushImage pushes im through base with chunked uploads, retrying each
// blob from a new upload, and the manifest, as docker does (up to tries
// attempts each). It returns the upload ids of the successful uploads and
// the errors of the failed attempts.
func pushImage(base string, im image, chunk, tries int) (ids []string, failed []error, err error) {
	for _, b := range im.blobs() {
		for attempt := 1; ; attempt++ {
			id, err := pushBlobChunked(base, im.repo, b, chunk)
			if err == nil {
				ids = append(ids, id)
				break
			}
			failed = append(failed, err)
			if attempt == tries {
				return ids, failed, err
			}
		}
	}
	for attempt := 1; ; attempt++ {
		_, _, err := request(http.MethodPut, base+"/v2/"+im.repo+"/manifests/"+im.tag, ociManifest, nil, bytes.NewReader(im.manifest), http.StatusCreated)
		if err == nil {
			return ids, failed, nil
		}
		failed = append(failed, err)
		if attempt == tries {
			return ids, failed, err
		}
	}
}

// pull fetches im by tag from base and checks every byte.
func pull(base string, im image) error {
	resp, body, err := request(http.MethodGet, base+"/v2/"+im.repo+"/manifests/"+im.tag, "", map[string]string{"Accept": ociManifest}, nil, http.StatusOK)
	if err != nil {
		return err
	}
	if !bytes.Equal(body, im.manifest) || resp.Header.Get("Docker-Content-Digest") != im.digest() {
		return fmt.Errorf("%s %s:%s: manifest %s differs from the one pushed (%s)", base, im.repo, im.tag, resp.Header.Get("Docker-Content-Digest"), im.digest())
	}
	for _, b := range im.blobs() {
		_, got, err := request(http.MethodGet, base+"/v2/"+im.repo+"/blobs/"+digestOf(b), "", nil, nil, http.StatusOK)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, b) {
			return fmt.Errorf("%s: blob %s of %s differs (%d bytes, want %d)", base, digestOf(b), im.repo, len(got), len(b))
		}
	}
	return nil
}

// listing is what an instance says about the whole registry: the catalog
// and every repository's tags with their digests.
func listing(base string) (string, error) {
	var cat struct {
		Repositories []string `json:"repositories"`
	}
	_, body, err := request(http.MethodGet, base+"/v2/_catalog?n=1000", "", nil, nil, http.StatusOK)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(body, &cat); err != nil {
		return "", err
	}
	var out strings.Builder
	for _, repo := range cat.Repositories {
		var tl struct {
			Tags []string `json:"tags"`
		}
		_, body, err := request(http.MethodGet, base+"/v2/"+repo+"/tags/list", "", nil, nil, http.StatusOK)
		if err != nil {
			return "", err
		}
		if err := json.Unmarshal(body, &tl); err != nil {
			return "", err
		}
		fmt.Fprintf(&out, "%s:", repo)
		for _, tag := range tl.Tags {
			resp, _, err := request(http.MethodHead, base+"/v2/"+repo+"/manifests/"+tag, "", map[string]string{"Accept": ociManifest}, nil, http.StatusOK)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&out, " %s=%s", tag, resp.Header.Get("Docker-Content-Digest")[7:19])
		}
		out.WriteString("\n")
	}
	return out.String(), nil
}

// errorCode is the first code of a registry error body.
func errorCode(body []byte) string {
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

var errNoInstance = errors.New("no instance is handling the request")
