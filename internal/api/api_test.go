package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// ---------------------------------------------------------------- base, routing

func TestBase(t *testing.T) {
	r := newReg(t)
	for _, path := range []string{"/v2/", "/v2"} {
		rs := r.do("GET", path, nil).want(http.StatusOK)
		rs.wantHeader("Content-Type", "application/json")
		if string(rs.body) != "{}" {
			t.Errorf("GET %s body %q", path, rs.body)
		}
	}
	rs := r.do("HEAD", "/v2/", nil).want(http.StatusOK)
	if len(rs.body) != 0 {
		t.Errorf("HEAD /v2/ has a body")
	}
	// "/" is registry:2's liveness answer: 200, empty, never cached.
	rs = r.do("GET", "/", nil).want(http.StatusOK)
	rs.wantHeader("Cache-Control", "no-cache")
	if len(rs.body) != 0 {
		t.Errorf("GET / body %q", rs.body)
	}
}

func TestUnknownEndpointsAndMethods(t *testing.T) {
	r := newReg(t)
	d := digest.FromString("x")
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/index.html", 404, "NOT_FOUND"},
		{"GET", "/v3/", 404, "NOT_FOUND"},
		{"GET", "/v2/x", 404, "NOT_FOUND"},
		{"GET", "/v2/x/nothing/here", 404, "NOT_FOUND"},
		{"GET", "/v2/x/tags", 404, "NOT_FOUND"},
		{"GET", "/v2/x/manifests", 404, "NOT_FOUND"},
		{"PUT", "/v2/", 405, "UNSUPPORTED"},
		{"POST", "/v2/", 405, "UNSUPPORTED"},
		{"DELETE", "/v2/_catalog", 405, "UNSUPPORTED"},
		{"POST", "/v2/x/tags/list", 405, "UNSUPPORTED"},
		{"PATCH", "/v2/x/manifests/latest", 405, "UNSUPPORTED"},
		{"POST", "/v2/x/manifests/latest", 405, "UNSUPPORTED"},
		{"PUT", "/v2/x/blobs/" + d.String(), 405, "UNSUPPORTED"},
		{"PATCH", "/v2/x/blobs/" + d.String(), 405, "UNSUPPORTED"},
		{"GET", "/v2/x/blobs/uploads/", 405, "UNSUPPORTED"},
		{"PUT", "/v2/x/blobs/uploads/", 405, "UNSUPPORTED"},
		{"POST", "/v2/x/blobs/uploads/3f1d1d5c-0c53-4a4e-9e2a-4c4c2c1e0c11", 405, "UNSUPPORTED"},
		{"DELETE", "/v2/x/referrers/" + d.String(), 405, "UNSUPPORTED"},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			rs := r.do(tc.method, tc.path, []byte("body")).wantErr(tc.status, tc.code)
			if tc.status == 405 && rs.header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
		})
	}
	if got := r.files(""); !onlyIndex(got) {
		t.Errorf("storage written by rejected requests: %v", got)
	}
}

// onlyIndex reports whether the storage root holds nothing but berth's index.
func onlyIndex(files []string) bool {
	for _, f := range files {
		if !strings.HasPrefix(f, "berth/") {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------- names

func TestInvalidNames(t *testing.T) {
	r := newReg(t)
	blob := []byte("content")
	d := digest.FromBytes(blob)
	man := r.image("good", ociManifest, "n")
	for _, name := range []string{
		"../x", "a/../b", "x/..", "./x", "Foo", "foo/Bar", strings.Repeat("a", 256),
		strings.Repeat("ab/", 85) + "a", // 256 characters
		"", "a//b", "/a", "a/", "_a", "a_", "a..b", "a.-b", "-a", "a:b", "a@b",
		"%2e%2e", "%2E%2E/x", "a%2fb", "x/%2e%2e/y", "a%20b", "x/_uploads", "x/_manifests/y",
	} {
		t.Run(name, func(t *testing.T) {
			r := r.sub(t)
			for _, req := range []struct {
				method, path string
				body         []byte
				hdr          []string
			}{
				{"GET", "/v2/" + name + "/tags/list", nil, nil},
				{"POST", "/v2/" + name + "/blobs/uploads/", nil, nil},
				{"POST", "/v2/" + name + "/blobs/uploads/?digest=" + d.String(), blob, nil},
				{"POST", "/v2/" + name + "/blobs/uploads/?mount=" + d.String() + "&from=good", nil, nil},
				{"GET", "/v2/" + name + "/blobs/" + d.String(), nil, nil},
				{"PUT", "/v2/" + name + "/manifests/latest", man, []string{"Content-Type", ociManifest}},
				{"GET", "/v2/" + name + "/manifests/latest", nil, nil},
				{"GET", "/v2/" + name + "/referrers/" + d.String(), nil, nil},
			} {
				r.do(req.method, req.path, req.body, req.hdr...).wantErr(http.StatusBadRequest, "NAME_INVALID")
			}
			if name == "" || strings.Contains(name, "%") {
				// An empty from means no source; decoded in a query,
				// some escapes form valid names.
				return
			}
			// A valid repository cannot be given an invalid mount source.
			r.do("POST", "/v2/good/blobs/uploads/?mount="+d.String()+"&from="+name, nil).
				wantErr(http.StatusBadRequest, "NAME_INVALID")
		})
	}
	if got := r.catalog(); len(got) != 0 {
		t.Errorf("catalog after rejected names: %v", got)
	}
	if repos := r.files("docker/registry/v2/repositories"); len(repos) != 2 || !strings.HasPrefix(repos[0], "good/_layers/") {
		t.Errorf("storage after rejected names holds %v; want only repository good's two layer links", repos)
	}
	if got := len(r.blobFiles()); got != 2 {
		t.Errorf("blob store holds %d files, want the 2 blobs of repository good", got)
	}
}

func TestNameRules(t *testing.T) {
	r := newReg(t)
	// Boundary cases accepted by the spec's name grammar.
	for _, name := range []string{
		"a", "a0", "a.b", "a_b", "a__b", "a-b", "a---b", "0", "a/b/c/d/e",
		strings.Repeat("a", 255), strings.Repeat("ab/", 84) + "abc", // 255 characters
	} {
		r.do("POST", "/v2/"+name+"/blobs/uploads/", nil).want(http.StatusAccepted)
		r.do("GET", "/v2/"+name+"/tags/list", nil).wantErr(http.StatusNotFound, "NAME_UNKNOWN")
	}
}

// Names may contain the words the API uses for its endpoints.
func TestNestedAndKeywordNames(t *testing.T) {
	r := newReg(t)
	names := []string{
		"a/b/c", "x/blobs/y", "x/manifests/y", "x/uploads/y", "x/tags/y", "x/referrers/y",
		"blobs", "manifests", "uploads", "tags", "x/blobs", "x/manifests", "x/tags",
		"x/blobs/uploads", "a/tags/list", "v2/x",
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			r := r.sub(t)
			data := []byte("blob of " + name)
			d := digest.FromBytes(data)
			// Chunked upload through the Location the server hands out.
			loc := r.startUpload(name)
			rs := r.do("PATCH", loc, data, "Content-Range", fmt.Sprintf("0-%d", len(data)-1)).want(http.StatusAccepted)
			rs = r.do("GET", rs.header.Get("Location"), nil).want(http.StatusNoContent)
			r.do("PUT", withQuery(rs.header.Get("Location"), "digest="+d.String()), nil).want(http.StatusCreated)
			if got := r.do("GET", "/v2/"+name+"/blobs/"+d.String(), nil).want(http.StatusOK).body; !bytes.Equal(got, data) {
				t.Errorf("blob body %q", got)
			}

			man := r.image(name, ociManifest, name)
			md := r.mustPutManifest(name, "v1", ociManifest, man)
			if got := r.do("GET", "/v2/"+name+"/manifests/v1", nil).want(http.StatusOK).body; !bytes.Equal(got, man) {
				t.Errorf("manifest body differs")
			}
			if got := r.tags(name); !slices.Equal(got, []string{"v1"}) {
				t.Errorf("tags %v", got)
			}
			r.do("GET", "/v2/"+name+"/referrers/"+md.String(), nil).want(http.StatusOK)
		})
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if got := r.catalog(); !slices.Equal(got, want) {
		t.Errorf("catalog %v, want %v", got, want)
	}
}

// ---------------------------------------------------------------- uploads

func TestMonolithicUpload(t *testing.T) {
	r := newReg(t)
	data := []byte("monolithic blob")
	d := r.pushBlob("repo", data)
	rs := r.do("GET", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusOK)
	if !bytes.Equal(rs.body, data) {
		t.Errorf("body %q", rs.body)
	}
	rs.wantHeader("Docker-Content-Digest", d.String()).
		wantHeader("Content-Length", strconv.Itoa(len(data))).
		wantHeader("Content-Type", "application/octet-stream")
	// Pushing the same blob again is fine and stores it once.
	r.pushBlob("repo", data)
	if got := r.blobFiles(); len(got) != 1 {
		t.Errorf("blob files %v", got)
	}
	if got := r.uploadFiles("repo"); len(got) != 0 {
		t.Errorf("uploads left behind: %v", got)
	}

	// POST then a single PUT carrying the whole body.
	data2 := []byte("post then put")
	d2 := digest.FromBytes(data2)
	loc := r.startUpload("repo")
	r.do("PUT", withQuery(loc, "digest="+d2.String()), data2).
		want(http.StatusCreated).
		wantHeader("Location", "/v2/repo/blobs/"+d2.String()).
		wantHeader("Docker-Content-Digest", d2.String())
	if got := r.do("GET", "/v2/repo/blobs/"+d2.String(), nil).want(http.StatusOK).body; !bytes.Equal(got, data2) {
		t.Errorf("body %q", got)
	}
	r.do("GET", loc, nil).wantErr(http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")

	// An empty blob.
	empty := r.pushBlob("repo", []byte{})
	r.do("HEAD", "/v2/repo/blobs/"+empty.String(), nil).want(http.StatusOK).wantHeader("Content-Length", "0")
	if got := r.uploadFiles("repo"); len(got) != 0 {
		t.Errorf("uploads left behind: %v", got)
	}
}

func TestChunkedUpload(t *testing.T) {
	r := newReg(t)
	data := []byte("0123456789abcdefghij")
	d := digest.FromBytes(data)
	loc := r.startUpload("repo")
	r.do("GET", loc, nil).want(http.StatusNoContent).wantHeader("Range", "0-0")

	rs := r.do("PATCH", loc, data[:5], "Content-Range", "0-4", "Content-Type", "application/octet-stream").
		want(http.StatusAccepted).wantHeader("Range", "0-4")
	if rs.header.Get("Docker-Upload-UUID") == "" {
		t.Errorf("PATCH without Docker-Upload-UUID")
	}
	loc = rs.header.Get("Location")
	loc = r.do("PATCH", loc, data[5:10], "Content-Range", "5-9").
		want(http.StatusAccepted).wantHeader("Range", "0-9").header.Get("Location")

	// Every bad chunk is refused and leaves the upload as it was.
	for _, tc := range []struct {
		name   string
		cr     string
		body   []byte
		status int
		code   string
	}{
		{"gap", "15-19", data[15:20], 416, "BLOB_UPLOAD_INVALID"},
		{"overlap", "5-9", data[5:10], 416, "BLOB_UPLOAD_INVALID"},
		{"from zero again", "0-4", data[:5], 416, "BLOB_UPLOAD_INVALID"},
		{"garbage", "abc", data[10:15], 416, "BLOB_UPLOAD_INVALID"},
		{"reversed", "14-10", data[10:15], 416, "BLOB_UPLOAD_INVALID"},
		{"negative", "-10-14", data[10:15], 416, "BLOB_UPLOAD_INVALID"},
		{"http range syntax", "bytes=10-14", data[10:15], 416, "BLOB_UPLOAD_INVALID"},
		{"length mismatch", "10-20", data[10:15], 400, "SIZE_INVALID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := r.sub(t)
			rs := r.do("PATCH", loc, tc.body, "Content-Range", tc.cr).wantErr(tc.status, tc.code)
			if tc.status == 416 && tc.code != "" && rs.header.Get("Range") != "" {
				rs.wantHeader("Range", "0-9")
			}
			r.do("GET", loc, nil).want(http.StatusNoContent).wantHeader("Range", "0-9")
		})
	}
	// Out of order chunks answer where the upload ends so clients can resume.
	r.do("PATCH", loc, data[15:20], "Content-Range", "15-19").
		wantErr(416, "BLOB_UPLOAD_INVALID").wantHeader("Range", "0-9").wantHeader("Location", loc)

	// The long form "bytes a-b/total" is understood too.
	loc = r.do("PATCH", loc, data[10:15], "Content-Range", "bytes 10-14/20").
		want(http.StatusAccepted).wantHeader("Range", "0-14").header.Get("Location")
	// The last chunk travels with the PUT.
	r.do("PUT", withQuery(loc, "digest="+d.String()), data[15:], "Content-Range", "15-19").
		want(http.StatusCreated).wantHeader("Docker-Content-Digest", d.String())
	if got := r.do("GET", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusOK).body; !bytes.Equal(got, data) {
		t.Errorf("assembled blob %q", got)
	}
	if got := r.uploadFiles("repo"); len(got) != 0 {
		t.Errorf("uploads left behind: %v", got)
	}
}

func TestChunkedPutOutOfOrder(t *testing.T) {
	r := newReg(t)
	data := []byte("abcdefghij")
	d := digest.FromBytes(data)
	loc := r.startUpload("repo")
	loc = r.do("PATCH", loc, data[:5], "Content-Range", "0-4").want(http.StatusAccepted).header.Get("Location")
	r.do("PUT", withQuery(loc, "digest="+d.String()), data[6:], "Content-Range", "6-9").
		wantErr(416, "BLOB_UPLOAD_INVALID")
	r.do("HEAD", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusNotFound)
	r.do("GET", loc, nil).want(http.StatusNoContent).wantHeader("Range", "0-4")
	r.do("PUT", withQuery(loc, "digest="+d.String()), data[5:], "Content-Range", "5-9").want(http.StatusCreated)
}

func TestStreamedUpload(t *testing.T) {
	r := newReg(t)
	part1 := bytes.Repeat([]byte("a"), 3<<20) // larger than the copy buffer
	part2 := []byte("tail")
	data := append(slices.Clone(part1), part2...)
	d := digest.FromBytes(data)
	loc := r.startUpload("repo")
	for i, part := range [][]byte{part1, part2} {
		// A reader of unknown length makes the client stream the body chunked,
		// without Content-Length or Content-Range.
		req, _ := http.NewRequest("PATCH", r.url(loc), io.MultiReader(bytes.NewReader(part)))
		if req.ContentLength != 0 {
			t.Fatalf("request body has a known length")
		}
		rs := r.send(req).want(http.StatusAccepted)
		end := len(part1) - 1
		if i == 1 {
			end = len(data) - 1
		}
		rs.wantHeader("Range", fmt.Sprintf("0-%d", end))
		loc = rs.header.Get("Location")
	}
	r.do("PUT", withQuery(loc, "digest="+d.String()), nil).want(http.StatusCreated)
	rs := r.do("GET", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusOK)
	if !bytes.Equal(rs.body, data) {
		t.Errorf("streamed blob differs (%d bytes)", len(rs.body))
	}
}

func TestUploadStatusAndCancel(t *testing.T) {
	r := newReg(t)
	loc := r.startUpload("repo")
	id := loc[strings.LastIndex(loc, "/")+1:]
	r.do("PATCH", loc, []byte("abc"), "Content-Range", "0-2").want(http.StatusAccepted)
	r.do("GET", loc, nil).want(http.StatusNoContent).
		wantHeader("Range", "0-2").
		wantHeader("Location", loc).
		wantHeader("Docker-Upload-UUID", id)
	if len(r.uploadFiles("repo")) == 0 {
		t.Fatalf("upload holds no files")
	}

	// The upload belongs to its repository.
	r.do("GET", strings.Replace(loc, "/v2/repo/", "/v2/other/", 1), nil).wantErr(http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")

	r.do("DELETE", loc, nil).want(http.StatusNoContent)
	for _, m := range []string{"GET", "PATCH", "PUT", "DELETE"} {
		r.do(m, withQuery(loc, "digest="+digest.FromString("abc").String()), []byte("x")).
			wantErr(http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	}
	if got := r.uploadFiles("repo"); len(got) != 0 {
		t.Errorf("cancelled upload left %v", got)
	}
	if got := r.blobFiles(); len(got) != 0 {
		t.Errorf("blob store holds %v", got)
	}
}

func TestUnknownUpload(t *testing.T) {
	r := newReg(t)
	r.startUpload("repo") // the repository exists, the ids below do not
	d := digest.FromString("x")
	for _, id := range []string{
		"3f1d1d5c-0c53-4a4e-9e2a-4c4c2c1e0c11", // well formed, unknown
		"garbage",
		"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", // 36 characters, not a uuid
		"3F1D1D5C-0C53-4A4E-9E2A-4C4C2C1E0C11",
		"..",
		"_uploads",
	} {
		for _, m := range []string{"GET", "PATCH", "PUT", "DELETE"} {
			r.do(m, "/v2/repo/blobs/uploads/"+id+"?digest="+d.String(), []byte("x")).
				wantErr(http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		}
	}
	r.do("HEAD", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusNotFound)
	if got := r.blobFiles(); len(got) != 0 {
		t.Errorf("blob store holds %v", got)
	}
}

func TestFinishUploadDigestErrors(t *testing.T) {
	r := newReg(t)
	data := []byte("the real content")
	real := digest.FromBytes(data)
	wrong := digest.FromString("something else")

	t.Run("wrong digest", func(t *testing.T) {
		r := r.sub(t)
		loc := r.startUpload("repo")
		loc = r.do("PATCH", loc, data, "Content-Range", fmt.Sprintf("0-%d", len(data)-1)).want(http.StatusAccepted).header.Get("Location")
		r.do("PUT", withQuery(loc, "digest="+wrong.String()), nil).wantErr(http.StatusBadRequest, "DIGEST_INVALID")
		r.do("GET", loc, nil).wantErr(http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		for _, d := range []digest.Digest{real, wrong} {
			r.do("HEAD", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusNotFound)
			r.do("GET", "/v2/repo/blobs/"+d.String(), nil).wantErr(http.StatusNotFound, "BLOB_UNKNOWN")
		}
	})
	t.Run("wrong digest with body on PUT", func(t *testing.T) {
		r := r.sub(t)
		loc := r.startUpload("repo")
		r.do("PUT", withQuery(loc, "digest="+wrong.String()), data).wantErr(http.StatusBadRequest, "DIGEST_INVALID")
		r.do("GET", loc, nil).wantErr(http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	})
	t.Run("wrong digest monolithic", func(t *testing.T) {
		r := r.sub(t)
		r.do("POST", "/v2/repo/blobs/uploads/?digest="+wrong.String(), data).wantErr(http.StatusBadRequest, "DIGEST_INVALID")
		r.do("HEAD", "/v2/repo/blobs/"+wrong.String(), nil).want(http.StatusNotFound)
	})
	t.Run("sha512 digest of other content", func(t *testing.T) {
		r := r.sub(t)
		r.do("POST", "/v2/repo/blobs/uploads/?digest="+digest.SHA512.FromString("other").String(), data).
			wantErr(http.StatusBadRequest, "DIGEST_INVALID")
	})
	t.Run("no digest", func(t *testing.T) {
		r := r.sub(t)
		loc := r.startUpload("repo")
		r.do("PUT", loc, data).wantErr(http.StatusBadRequest, "DIGEST_INVALID")
		r.do("PUT", withQuery(loc, "digest="), data).wantErr(http.StatusBadRequest, "DIGEST_INVALID")
		r.do("DELETE", loc, nil).want(http.StatusNoContent)
	})
	if got := r.blobFiles(); len(got) != 0 {
		t.Errorf("rejected uploads left blob files %v", got)
	}
	if got := r.uploadFiles("repo"); len(got) != 0 {
		t.Errorf("rejected uploads left %v", got)
	}
}

var invalidDigests = []string{
	"sha256:xyz",
	"md5:d41d8cd98f00b204e9800998ecf8427e",
	"sha256:" + strings.Repeat("a", 63),
	"sha256:" + strings.Repeat("a", 65),
	"sha256:" + strings.Repeat("A", 64),
	"sha384:" + strings.Repeat("a", 96), // valid for go-digest, not supported by berth
	"sha512:" + strings.Repeat("a", 64),
	"sha256:",
	":" + strings.Repeat("a", 64),
	"sha256:" + strings.Repeat("a", 62) + "..",
}

func TestInvalidDigests(t *testing.T) {
	r := newReg(t)
	good := r.pushBlob("repo", []byte("good"))
	loc := r.startUpload("repo")
	for _, bad := range invalidDigests {
		t.Run(bad, func(t *testing.T) {
			r := r.sub(t)
			for _, req := range []struct {
				method, path string
				status       int
			}{
				{"POST", "/v2/repo/blobs/uploads/?digest=" + bad, 400},
				{"POST", "/v2/other/blobs/uploads/?mount=" + bad + "&from=repo", 400},
				{"PUT", withQuery(loc, "digest="+bad), 400},
				{"GET", "/v2/repo/blobs/" + bad, 400},
				{"DELETE", "/v2/repo/blobs/" + bad, 400},
				{"GET", "/v2/repo/referrers/" + bad, 400},
				{"GET", "/v2/repo/manifests/" + bad, 400},
				{"PUT", "/v2/repo/manifests/" + bad, 400},
			} {
				r.do(req.method, req.path, []byte("good"), "Content-Type", ociManifest).
					wantErr(req.status, "DIGEST_INVALID")
			}
			r.do("HEAD", "/v2/repo/blobs/"+bad, nil).want(400)
		})
	}
	// The open upload survived every rejected PUT, and nothing new is stored.
	r.do("GET", loc, nil).want(http.StatusNoContent).wantHeader("Range", "0-0")
	if got := r.blobFiles(); len(got) != 1 || !strings.Contains(got[0], good.Encoded()) {
		t.Errorf("blob files %v", got)
	}
	if got := r.catalog(); len(got) != 0 {
		t.Errorf("catalog %v", got)
	}
}

func TestSHA512(t *testing.T) {
	r := newReg(t)
	data := []byte("hashed with sha512")
	d := digest.SHA512.FromBytes(data)
	r.do("POST", "/v2/repo/blobs/uploads/?digest="+d.String(), data).
		want(http.StatusCreated).wantHeader("Docker-Content-Digest", d.String())
	r.do("GET", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusOK).wantHeader("Docker-Content-Digest", d.String())
	if got := r.blobFiles(); !slices.Equal(got, []string{"sha512/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"}) {
		t.Errorf("blob files %v", got)
	}

	// Chunked, with the sha512 verified on PUT.
	data2 := []byte("chunked sha512 content")
	d2 := digest.SHA512.FromBytes(data2)
	loc := r.startUpload("repo")
	loc = r.do("PATCH", loc, data2[:4], "Content-Range", "0-3").want(http.StatusAccepted).header.Get("Location")
	r.do("PUT", withQuery(loc, "digest="+d2.String()), data2[4:], "Content-Range", fmt.Sprintf("4-%d", len(data2)-1)).
		want(http.StatusCreated)
	if got := r.do("GET", "/v2/repo/blobs/"+d2.String(), nil).want(http.StatusOK).body; !bytes.Equal(got, data2) {
		t.Errorf("blob %q", got)
	}

	// A manifest referencing sha512 blobs, pushed by its sha512 digest.
	man := mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ociManifest,
		"config":        desc{MediaType: ociConfig, Digest: d, Size: int64(len(data))},
		"layers":        []desc{{MediaType: ociLayer, Digest: d2, Size: int64(len(data2))}},
	})
	md := digest.SHA512.FromBytes(man)
	r.mustPutManifest("repo", md.String(), ociManifest, man)
	rs := r.do("GET", "/v2/repo/manifests/"+md.String(), nil).want(http.StatusOK).
		wantHeader("Docker-Content-Digest", md.String()).wantHeader("Content-Type", ociManifest)
	if !bytes.Equal(rs.body, man) {
		t.Errorf("manifest body differs")
	}
	r.do("PUT", "/v2/repo/manifests/"+digest.SHA512.FromString("x").String(), man, "Content-Type", ociManifest).
		wantErr(http.StatusBadRequest, "DIGEST_INVALID")
	r.do("DELETE", "/v2/repo/manifests/"+md.String(), nil).want(http.StatusAccepted)
	r.do("GET", "/v2/repo/manifests/"+md.String(), nil).wantErr(http.StatusNotFound, "MANIFEST_UNKNOWN")
}

// A request body that ends before its Content-Length must not produce a blob
// nor leave its upload behind.
func TestShortBody(t *testing.T) {
	r := newReg(t)
	data := bytes.Repeat([]byte("x"), 100)
	d := digest.FromBytes(data)
	c := r.rawConn("POST /v2/repo/blobs/uploads/?digest="+d.String()+" HTTP/1.1\r\nContent-Length: 100", data[:50])
	// Half-close: the server sees the body end early and still answers.
	c.CloseWrite()
	res := readRawResponse(t, c)
	c.Close()
	if res.StatusCode < 400 || res.StatusCode >= 500 {
		t.Errorf("short monolithic body: status %d, want a client error", res.StatusCode)
	}
	r.do("HEAD", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusNotFound)
	r.do("GET", "/v2/repo/blobs/"+digest.FromBytes(data[:50]).String(), nil).wantErr(http.StatusNotFound, "BLOB_UNKNOWN")
	if got := r.blobFiles(); len(got) != 0 {
		t.Errorf("blob store holds %v", got)
	}
	if got := r.uploadFiles("repo"); len(got) != 0 {
		t.Errorf("short monolithic upload left %v behind", got)
	}

	// A short PUT ending a chunked upload: no blob; the upload stays open.
	loc := r.startUpload("repo")
	c = r.rawConn("PUT "+withQuery(loc, "digest="+d.String())+" HTTP/1.1\r\nContent-Length: 100", data[:50])
	c.CloseWrite()
	res = readRawResponse(t, c)
	c.Close()
	if res.StatusCode < 400 || res.StatusCode >= 500 {
		t.Errorf("short PUT body: status %d, want a client error", res.StatusCode)
	}
	r.do("HEAD", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusNotFound)
	if got := r.blobFiles(); len(got) != 0 {
		t.Errorf("blob store holds %v", got)
	}
}

// A PATCH cut midway keeps what arrived, and the client resumes from there.
func TestResumeAfterCut(t *testing.T) {
	r := newReg(t)
	data := make([]byte, 100)
	for i := range data {
		data[i] = byte(i)
	}
	d := digest.FromBytes(data)
	loc := r.startUpload("repo")
	loc = r.do("PATCH", loc, data[:10], "Content-Range", "0-9").want(http.StatusAccepted).header.Get("Location")

	c := r.rawConn("PATCH "+loc+" HTTP/1.1\r\nContent-Range: 10-99\r\nContent-Length: 90", data[10:60])
	c.Close()
	var status *resp
	eventually(t, "the cut PATCH's 50 bytes to be reported", func() bool {
		status = r.do("GET", loc, nil).want(http.StatusNoContent)
		return status.header.Get("Range") == "0-59"
	})
	r.do("HEAD", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusNotFound)

	loc = r.do("PATCH", status.header.Get("Location"), data[60:90], "Content-Range", "60-89").
		want(http.StatusAccepted).wantHeader("Range", "0-89").header.Get("Location")
	r.do("PUT", withQuery(loc, "digest="+d.String()), data[90:], "Content-Range", "90-99").
		want(http.StatusCreated).wantHeader("Docker-Content-Digest", d.String())
	if got := r.do("GET", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusOK).body; !bytes.Equal(got, data) {
		t.Errorf("resumed blob differs: %v", got)
	}
	if got := r.uploadFiles("repo"); len(got) != 0 {
		t.Errorf("finished upload left %v", got)
	}
}

// ---------------------------------------------------------------- blobs

func TestBlobRanges(t *testing.T) {
	r := newReg(t)
	data := []byte("0123456789")
	d := r.pushBlob("repo", data)
	path := "/v2/repo/blobs/" + d.String()
	for _, tc := range []struct {
		rng, body, contentRange string
	}{
		{"bytes=0-0", "0", "bytes 0-0/10"},
		{"bytes=5-", "56789", "bytes 5-9/10"},
		{"bytes=-3", "789", "bytes 7-9/10"},
		{"bytes=2-4", "234", "bytes 2-4/10"},
		{"bytes=0-9", "0123456789", "bytes 0-9/10"},
		{"bytes=8-100", "89", "bytes 8-9/10"},
		{"bytes=-100", "0123456789", "bytes 0-9/10"},
	} {
		rs := r.do("GET", path, nil, "Range", tc.rng).want(http.StatusPartialContent).
			wantHeader("Content-Range", tc.contentRange).
			wantHeader("Content-Length", strconv.Itoa(len(tc.body))).
			wantHeader("Docker-Content-Digest", d.String())
		if string(rs.body) != tc.body {
			t.Errorf("Range %s: body %q, want %q", tc.rng, rs.body, tc.body)
		}
	}
	for _, rng := range []string{"bytes=100-", "bytes=10-", "bytes=-0", "bytes=10-20"} {
		r.do("GET", path, nil, "Range", rng).want(http.StatusRequestedRangeNotSatisfiable).
			wantHeader("Content-Range", "bytes */10")
	}
	rs := r.do("GET", path, nil).want(http.StatusOK).wantHeader("Accept-Ranges", "bytes")
	if string(rs.body) != string(data) {
		t.Errorf("body %q", rs.body)
	}
}

func TestBlobHeadAndUnknown(t *testing.T) {
	r := newReg(t)
	data := []byte("head me")
	d := r.pushBlob("repo", data)
	rs := r.do("HEAD", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusOK).
		wantHeader("Content-Length", strconv.Itoa(len(data))).
		wantHeader("Docker-Content-Digest", d.String())
	if len(rs.body) != 0 {
		t.Errorf("HEAD has a body")
	}
	// Conditional GET on the digest ETag.
	etag := r.do("GET", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusOK).header.Get("ETag")
	r.do("GET", "/v2/repo/blobs/"+d.String(), nil, "If-None-Match", etag).want(http.StatusNotModified)

	unknown := digest.FromString("never pushed")
	r.do("GET", "/v2/repo/blobs/"+unknown.String(), nil).wantErr(http.StatusNotFound, "BLOB_UNKNOWN")
	r.do("GET", "/v2/nosuchrepo/blobs/"+d.String(), nil).wantErr(http.StatusNotFound, "BLOB_UNKNOWN")
	rs = r.do("HEAD", "/v2/repo/blobs/"+unknown.String(), nil).want(http.StatusNotFound)
	if len(rs.body) != 0 {
		t.Errorf("HEAD 404 has a body")
	}
	// A manifest is not a blob of the repository's layers.
	md := r.mustPutManifest("repo", "v1", ociManifest, r.image("repo", ociManifest, "h"))
	r.do("GET", "/v2/repo/blobs/"+md.String(), nil).wantErr(http.StatusNotFound, "BLOB_UNKNOWN")
}

func TestCrossRepoVisibilityAndMount(t *testing.T) {
	r := newReg(t)
	data := []byte("shared layer")
	d := r.pushBlob("a", data)
	r.do("GET", "/v2/b/blobs/"+d.String(), nil).wantErr(http.StatusNotFound, "BLOB_UNKNOWN")
	r.do("HEAD", "/v2/b/blobs/"+d.String(), nil).want(http.StatusNotFound)

	// Mount without from: no automatic discovery, an ordinary upload starts.
	rs := r.do("POST", "/v2/b/blobs/uploads/?mount="+d.String(), nil).want(http.StatusAccepted)
	if !strings.HasPrefix(rs.header.Get("Location"), "/v2/b/blobs/uploads/") {
		t.Errorf("Location %q", rs.header.Get("Location"))
	}
	r.do("DELETE", rs.header.Get("Location"), nil).want(http.StatusNoContent)
	r.do("HEAD", "/v2/b/blobs/"+d.String(), nil).want(http.StatusNotFound)

	// Mount from a repository that lacks the blob (or does not exist).
	r.pushBlob("c", []byte("c's own"))
	for _, from := range []string{"c", "nosuchrepo"} {
		rs = r.do("POST", "/v2/b/blobs/uploads/?mount="+d.String()+"&from="+from, nil).want(http.StatusAccepted)
		if !strings.HasPrefix(rs.header.Get("Location"), "/v2/b/blobs/uploads/") {
			t.Errorf("Location %q", rs.header.Get("Location"))
		}
		r.do("GET", rs.header.Get("Location"), nil).want(http.StatusNoContent).wantHeader("Range", "0-0")
		r.do("HEAD", "/v2/b/blobs/"+d.String(), nil).want(http.StatusNotFound)
	}

	// Mount from a repository that has it.
	r.do("POST", "/v2/b/blobs/uploads/?mount="+d.String()+"&from=a", nil).
		want(http.StatusCreated).
		wantHeader("Location", "/v2/b/blobs/"+d.String()).
		wantHeader("Docker-Content-Digest", d.String())
	if got := r.do("GET", "/v2/b/blobs/"+d.String(), nil).want(http.StatusOK).body; !bytes.Equal(got, data) {
		t.Errorf("mounted blob %q", got)
	}
	if n := len(r.blobFiles()); n != 2 {
		t.Errorf("mount copied bytes: %d blob files", n)
	}
	// Deleting it from b leaves a untouched.
	r.do("DELETE", "/v2/b/blobs/"+d.String(), nil).want(http.StatusAccepted)
	r.do("HEAD", "/v2/b/blobs/"+d.String(), nil).want(http.StatusNotFound)
	r.do("HEAD", "/v2/a/blobs/"+d.String(), nil).want(http.StatusOK)
}

func TestDeleteBlob(t *testing.T) {
	r := newReg(t)
	d := r.pushBlob("repo", []byte("doomed"))
	r.do("DELETE", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusAccepted)
	r.do("GET", "/v2/repo/blobs/"+d.String(), nil).wantErr(http.StatusNotFound, "BLOB_UNKNOWN")
	r.do("DELETE", "/v2/repo/blobs/"+d.String(), nil).wantErr(http.StatusNotFound, "BLOB_UNKNOWN")
	// A manifest can no longer reference it.
	man := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": ociManifest,
		"config": desc{MediaType: ociConfig, Digest: d, Size: 6}, "layers": []desc{}})
	r.putManifest("repo", "v1", ociManifest, man).wantErr(http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")

	r2 := newReg(t, deletesDisabled)
	d = r2.pushBlob("repo", []byte("kept"))
	r2.do("DELETE", "/v2/repo/blobs/"+d.String(), nil).wantErr(http.StatusMethodNotAllowed, "UNSUPPORTED")
	r2.do("GET", "/v2/repo/blobs/"+d.String(), nil).want(http.StatusOK)
}

// ---------------------------------------------------------------- manifests

func TestManifestKinds(t *testing.T) {
	r := newReg(t)
	const name = "repo"
	oci := r.image(name, ociManifest, "oci")
	ociD := r.mustPutManifest(name, "oci", ociManifest, oci)
	docker := r.image(name, dockerV2, "docker")
	dockerD := r.mustPutManifest(name, "docker", dockerV2, docker)
	// Children are pushed by digest first, as clients do.
	oci2 := r.image(name, ociManifest, "oci2")
	r.mustPutManifest(name, digest.FromBytes(oci2).String(), ociManifest, oci2)
	docker2 := r.image(name, dockerV2, "docker2")
	r.mustPutManifest(name, digest.FromBytes(docker2).String(), dockerV2, docker2)

	idx := index(ociIndex, descOf(ociManifest, oci), descOf(ociManifest, oci2))
	list := index(dockerList, descOf(dockerV2, docker), descOf(dockerV2, docker2))
	art := r.artifact(name, "application/vnd.example.sbom", descOf(ociManifest, oci), map[string]string{"k": "v"})
	// No mediaType in the body: the Content-Type decides, and is served back.
	bare := mustJSON(map[string]any{"schemaVersion": 2,
		"config": descOf(ociConfig, []byte(`{"architecture":"amd64","os":"linux","seed":"oci"}`)),
		"layers": []desc{}})

	cases := []struct {
		tag, mediaType string
		body           []byte
		subject        digest.Digest
	}{
		{"oci", ociManifest, oci, ""},
		{"oci2", ociManifest, oci2, ""},
		{"docker", dockerV2, docker, ""},
		{"docker2", dockerV2, docker2, ""},
		{"index", ociIndex, idx, ""},
		{"list", dockerList, list, ""},
		{"artifact", ociManifest, art, ociD},
		{"bare", ociManifest, bare, ""},
	}
	for _, tc := range cases {
		t.Run(tc.tag, func(t *testing.T) {
			r := r.sub(t)
			d := digest.FromBytes(tc.body)
			for _, ref := range []string{tc.tag, d.String()} {
				rs := r.putManifest(name, ref, tc.mediaType, tc.body).want(http.StatusCreated).
					wantHeader("Docker-Content-Digest", d.String()).
					wantHeader("Location", "/v2/"+name+"/manifests/"+d.String())
				rs.wantHeader("OCI-Subject", tc.subject.String())
			}
			for _, ref := range []string{tc.tag, d.String()} {
				for _, m := range []string{"GET", "HEAD"} {
					rs := r.do(m, "/v2/"+name+"/manifests/"+ref, nil, "Accept", ociManifest+", "+ociIndex+", "+dockerV2+", "+dockerList).
						want(http.StatusOK).
						wantHeader("Content-Type", tc.mediaType).
						wantHeader("Docker-Content-Digest", d.String()).
						wantHeader("Content-Length", strconv.Itoa(len(tc.body)))
					if m == "GET" && !bytes.Equal(rs.body, tc.body) {
						t.Errorf("GET %s: body differs", ref)
					}
					if m == "HEAD" && len(rs.body) != 0 {
						t.Errorf("HEAD %s has a body", ref)
					}
				}
			}
		})
	}
	want := []string{"artifact", "bare", "docker", "docker2", "index", "list", "oci", "oci2"}
	if got := r.tags(name); !slices.Equal(got, want) {
		t.Errorf("tags %v, want %v", got, want)
	}

	// Retagging moves the tag.
	r.mustPutManifest(name, "oci", dockerV2, docker)
	r.do("GET", "/v2/"+name+"/manifests/oci", nil).want(http.StatusOK).
		wantHeader("Docker-Content-Digest", dockerD.String()).wantHeader("Content-Type", dockerV2)
}

func TestManifestErrors(t *testing.T) {
	r := newReg(t)
	const name = "repo"
	good := r.image(name, ociManifest, "good")
	goodD := r.mustPutManifest(name, "latest", ociManifest, good)
	cfg := []byte(`{"architecture":"amd64","os":"linux","seed":"good"}`)
	layer := []byte("layer bytes of good")
	missing := []byte("never pushed")
	other := []byte("only in other repo")
	r.pushBlob("other", other)

	manifest := func(config desc, layers ...desc) []byte {
		return mustJSON(map[string]any{"schemaVersion": 2, "mediaType": ociManifest, "config": config, "layers": layers})
	}
	big := bytes.Repeat([]byte(" "), 4<<20)
	big = append(append([]byte(`{"schemaVersion":2,"mediaType":"`+ociManifest+`","config":`), mustJSON(descOf(ociConfig, cfg))...), big...)
	big = append(big, '}')

	cases := []struct {
		name, ref, contentType string
		body                   []byte
		chunked                bool
		status                 int
		code                   string
	}{
		{"missing layer", "t", ociManifest, manifest(descOf(ociConfig, cfg), descOf(ociLayer, missing)), false, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"missing config", "t", ociManifest, manifest(descOf(ociConfig, missing), descOf(ociLayer, layer)), false, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"layer of another repository", "t", ociManifest, manifest(descOf(ociConfig, cfg), descOf(ociLayer, other)), false, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"missing layer by digest", digest.FromBytes(manifest(descOf(ociConfig, cfg), descOf(ociLayer, missing))).String(), ociManifest, manifest(descOf(ociConfig, cfg), descOf(ociLayer, missing)), false, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"index missing child", "t", ociIndex, index(ociIndex, descOf(ociManifest, good), descOf(ociManifest, []byte(`{"other":1}`))), false, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"list missing child", "t", dockerList, index(dockerList, descOf(dockerV2, []byte(`{}`))), false, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"invalid json", "t", ociManifest, []byte(`{"schemaVersion":2,`), false, 400, "MANIFEST_INVALID"},
		{"not json", "t", ociManifest, []byte("hello"), false, 400, "MANIFEST_INVALID"},
		{"trailing data", "t", ociManifest, append(slices.Clone(good), []byte(`{}`)...), false, 400, "MANIFEST_INVALID"},
		{"empty body", "t", ociManifest, []byte{}, false, 400, "MANIFEST_INVALID"},
		{"schemaVersion 1", "t", ociManifest, edit(good, "schemaVersion", 1), false, 400, "MANIFEST_INVALID"},
		{"schemaVersion 3", "t", ociManifest, edit(good, "schemaVersion", 3), false, 400, "MANIFEST_INVALID"},
		{"schemaVersion string", "t", ociManifest, edit(good, "schemaVersion", "2"), false, 400, "MANIFEST_INVALID"},
		{"schemaVersion missing", "t", ociManifest, edit(good, "schemaVersion", nil), false, 400, "MANIFEST_INVALID"},
		{"index schemaVersion missing", "t", ociIndex, edit(index(ociIndex, descOf(ociManifest, good)), "schemaVersion", nil), false, 400, "MANIFEST_INVALID"},
		{"schema1", "t", "application/vnd.docker.distribution.manifest.v1+prettyjws", []byte(`{"schemaVersion":1,"name":"repo","tag":"t","fsLayers":[]}`), false, 400, "MANIFEST_INVALID"},
		{"mediaType disagrees with Content-Type", "t", dockerV2, good, false, 400, "MANIFEST_INVALID"},
		{"index body as image", "t", ociManifest, index(ociIndex, descOf(ociManifest, good)), false, 400, "MANIFEST_INVALID"},
		{"no config", "t", ociManifest, []byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `","layers":[]}`), false, 400, "MANIFEST_INVALID"},
		{"config without mediaType", "t", ociManifest, manifest(desc{Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}), false, 400, "MANIFEST_INVALID"},
		{"layer with bad digest", "t", ociManifest, manifest(descOf(ociConfig, cfg), desc{MediaType: ociLayer, Digest: "sha256:nope", Size: 1}), false, 400, "MANIFEST_INVALID"},
		{"negative size", "t", ociManifest, manifest(desc{MediaType: ociConfig, Digest: digest.FromBytes(cfg), Size: -1}), false, 400, "MANIFEST_INVALID"},
		{"subject with bad digest", "t", ociManifest, edit(good, "subject", desc{MediaType: ociManifest, Digest: "sha256:bad", Size: 1}), false, 400, "MANIFEST_INVALID"},
		{"body of another digest", digest.FromString("other").String(), ociManifest, good, false, 400, "DIGEST_INVALID"},
		{"oversized", "t", ociManifest, big, false, 413, "MANIFEST_INVALID"},
		{"oversized chunked", "t", ociManifest, big, true, 413, "MANIFEST_INVALID"},
		{"invalid tag", "-bad", ociManifest, good, false, 400, "TAG_INVALID"},
		{"invalid tag dot", ".bad", ociManifest, good, false, 400, "TAG_INVALID"},
		{"tag too long", strings.Repeat("t", 129), ociManifest, good, false, 400, "TAG_INVALID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := r.sub(t)
			path := "/v2/" + name + "/manifests/" + tc.ref
			var rs *resp
			if tc.chunked {
				req, _ := http.NewRequest("PUT", r.url(path), io.MultiReader(bytes.NewReader(tc.body)))
				req.Header.Set("Content-Type", tc.contentType)
				rs = r.send(req)
			} else {
				rs = r.putManifest(name, tc.ref, tc.contentType, tc.body)
			}
			rs.wantErr(tc.status, tc.code)
			if tc.status == 400 && tc.code == "MANIFEST_BLOB_UNKNOWN" && !strings.Contains(string(rs.body), `"detail"`) {
				t.Errorf("MANIFEST_BLOB_UNKNOWN without detail: %s", rs.body)
			}
			// Nothing of the rejected manifest is visible or stored.
			if got := r.tags(name); !slices.Equal(got, []string{"latest"}) {
				t.Errorf("tags after rejected PUT: %v", got)
			}
			r.do("GET", "/v2/"+name+"/manifests/latest", nil).want(http.StatusOK).wantHeader("Docker-Content-Digest", goodD.String())
			if !bytes.Equal(tc.body, good) {
				bd := digest.FromBytes(tc.body)
				r.do("GET", "/v2/"+name+"/manifests/"+bd.String(), nil).wantErr(http.StatusNotFound, "MANIFEST_UNKNOWN")
				r.wantNoBlobFile(bd)
			}
			if tc.ref != "-bad" && tc.ref != ".bad" && !strings.Contains(tc.ref, ":") && len(tc.ref) <= 128 {
				r.do("GET", path, nil).wantErr(http.StatusNotFound, "MANIFEST_UNKNOWN")
			}
		})
	}
	if got := r.catalog(); !slices.Equal(got, []string{name}) {
		t.Errorf("catalog %v", got)
	}
	if revs := r.files("docker/registry/v2/repositories/" + name + "/_manifests/revisions"); len(revs) != 1 {
		t.Errorf("revisions after rejected PUTs: %v", revs)
	}
	if tags := r.files("docker/registry/v2/repositories/" + name + "/_manifests/tags"); len(tags) != 2 {
		t.Errorf("tag files after rejected PUTs: %v", tags)
	}
}

// edit returns body with one top-level field set (deleted when value is nil).
func edit(body []byte, key string, value any) []byte {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		panic(err)
	}
	if value == nil {
		delete(m, key)
	} else {
		m[key] = value
	}
	return mustJSON(m)
}

func TestUnknownManifests(t *testing.T) {
	r := newReg(t)
	r.mustPutManifest("repo", "latest", ociManifest, r.image("repo", ociManifest, "u"))
	unknown := digest.FromString("nope")
	for _, path := range []string{
		"/v2/repo/manifests/nosuchtag",
		"/v2/repo/manifests/" + unknown.String(),
		"/v2/nosuchrepo/manifests/latest",
		"/v2/repo/manifests/-invalid-tag",
	} {
		r.do("GET", path, nil).wantErr(http.StatusNotFound, "MANIFEST_UNKNOWN")
		r.do("HEAD", path, nil).want(http.StatusNotFound)
		r.do("DELETE", path, nil).wantErr(http.StatusNotFound, "MANIFEST_UNKNOWN")
	}
}

func TestDeleteManifest(t *testing.T) {
	r := newReg(t)
	const name = "repo"
	a := r.image(name, ociManifest, "a")
	b := r.image(name, ociManifest, "b")
	aD := r.mustPutManifest(name, "a1", ociManifest, a)
	r.mustPutManifest(name, "a2", ociManifest, a)
	bD := r.mustPutManifest(name, "b1", ociManifest, b)
	r.mustPutManifest(name, "b2", ociManifest, b)

	// By digest: the manifest and every tag pointing at it disappear.
	r.do("DELETE", "/v2/"+name+"/manifests/"+aD.String(), nil).want(http.StatusAccepted)
	r.do("GET", "/v2/"+name+"/manifests/"+aD.String(), nil).wantErr(http.StatusNotFound, "MANIFEST_UNKNOWN")
	r.do("GET", "/v2/"+name+"/manifests/a1", nil).wantErr(http.StatusNotFound, "MANIFEST_UNKNOWN")
	if got := r.tags(name); !slices.Equal(got, []string{"b1", "b2"}) {
		t.Errorf("tags after deleting a: %v", got)
	}

	// By tag: only the tag goes.
	r.do("DELETE", "/v2/"+name+"/manifests/b1", nil).want(http.StatusAccepted)
	r.do("GET", "/v2/"+name+"/manifests/b1", nil).wantErr(http.StatusNotFound, "MANIFEST_UNKNOWN")
	r.do("GET", "/v2/"+name+"/manifests/"+bD.String(), nil).want(http.StatusOK)
	r.do("GET", "/v2/"+name+"/manifests/b2", nil).want(http.StatusOK)
	if got := r.tags(name); !slices.Equal(got, []string{"b2"}) {
		t.Errorf("tags after deleting b1: %v", got)
	}
	r.do("DELETE", "/v2/"+name+"/manifests/b1", nil).wantErr(http.StatusNotFound, "MANIFEST_UNKNOWN")

	r.do("DELETE", "/v2/"+name+"/manifests/"+bD.String(), nil).want(http.StatusAccepted)
	r.do("GET", "/v2/"+name+"/manifests/b2", nil).wantErr(http.StatusNotFound, "MANIFEST_UNKNOWN")
	r.do("GET", "/v2/"+name+"/manifests/"+bD.String(), nil).wantErr(http.StatusNotFound, "MANIFEST_UNKNOWN")

	// A deleted manifest can be pushed again.
	r.mustPutManifest(name, "a1", ociManifest, a)
	if got := r.tags(name); !slices.Equal(got, []string{"a1"}) {
		t.Errorf("tags after re-push: %v", got)
	}
}

// A repository whose last manifest is deleted holds no manifest, so it leaves
// the catalog (content.Index: "Repositories lists repositories holding at
// least one manifest"), exactly as a rebuilt index would have it.
// A repository whose manifests were all deleted stays listed, with an empty
// tag list (its directory stays in storage, and the OCI conformance suite
// expects its tags/list to answer 200), and the live index agrees with one
// rebuilt from storage.
func TestDeleteLastManifestKeepsRepositoryListed(t *testing.T) {
	r := newReg(t)
	r.mustPutManifest("kept", "v1", ociManifest, r.image("kept", ociManifest, "k"))
	d := r.mustPutManifest("emptied", "v1", ociManifest, r.image("emptied", ociManifest, "d"))
	r.do("DELETE", "/v2/emptied/manifests/"+d.String(), nil).want(http.StatusAccepted)

	check := func(when string) {
		t.Helper()
		if got := r.catalog(); !slices.Equal(got, []string{"emptied", "kept"}) {
			t.Errorf("%s: catalog %v, want [emptied kept]", when, got)
		}
		if got := r.tags("emptied"); got == nil || len(got) != 0 {
			t.Errorf("%s: tags of a repository without manifests: %v, want an empty list", when, got)
		}
		r.do("GET", "/v2/emptied/manifests/v1", nil).wantErr(http.StatusNotFound, "MANIFEST_UNKNOWN")
	}
	check("live index")
	r.stop()
	if err := os.Remove(filepath.Join(r.root, "berth", "index.db")); err != nil {
		t.Fatal(err)
	}
	r.start()
	check("rebuilt index")
}

func TestDeletesDisabled(t *testing.T) {
	r := newReg(t, deletesDisabled)
	d := r.mustPutManifest("repo", "latest", ociManifest, r.image("repo", ociManifest, "x"))
	for _, ref := range []string{"latest", d.String()} {
		r.do("DELETE", "/v2/repo/manifests/"+ref, nil).wantErr(http.StatusMethodNotAllowed, "UNSUPPORTED")
	}
	r.do("GET", "/v2/repo/manifests/latest", nil).want(http.StatusOK)
	r.do("GET", "/v2/repo/manifests/"+d.String(), nil).want(http.StatusOK)
	if got := r.tags("repo"); !slices.Equal(got, []string{"latest"}) {
		t.Errorf("tags %v", got)
	}
}

// Read-only mode (storage.maintenance.readonly) refuses every write and
// changes nothing; reads keep working.
func TestReadOnly(t *testing.T) {
	r := newReg(t)
	man := r.image("repo", ociManifest, "ro")
	md := r.mustPutManifest("repo", "latest", ociManifest, man)
	loc := r.startUpload("repo")
	layer := []byte("layer bytes of ro")
	r.stop()
	r.opts.ReadOnly = true
	r.start()
	before := r.files("docker")

	data := []byte("new")
	d := digest.FromBytes(data)
	for _, req := range []struct {
		method, path string
		body         []byte
	}{
		{"POST", "/v2/repo/blobs/uploads/", nil},
		{"POST", "/v2/repo/blobs/uploads/?digest=" + d.String(), data},
		{"POST", "/v2/other/blobs/uploads/?mount=" + digest.FromBytes(layer).String() + "&from=repo", nil},
		{"PATCH", loc, data},
		{"PUT", withQuery(loc, "digest="+d.String()), data},
		{"PUT", "/v2/repo/manifests/v2", man},
		{"DELETE", "/v2/repo/manifests/latest", nil},
		{"DELETE", "/v2/repo/blobs/" + digest.FromBytes(layer).String(), nil},
		{"DELETE", loc, nil},
	} {
		r.do(req.method, req.path, req.body, "Content-Type", ociManifest).wantErr(http.StatusMethodNotAllowed, "UNSUPPORTED")
	}
	if after := r.files("docker"); !slices.Equal(before, after) {
		t.Errorf("read-only registry changed storage:\nbefore %v\n after %v", before, after)
	}
	r.do("GET", "/v2/repo/manifests/latest", nil).want(http.StatusOK).wantHeader("Docker-Content-Digest", md.String())
	r.do("GET", "/v2/repo/blobs/"+digest.FromBytes(layer).String(), nil).want(http.StatusOK)
	r.do("GET", loc, nil).want(http.StatusNoContent)
	if got := r.tags("repo"); !slices.Equal(got, []string{"latest"}) {
		t.Errorf("tags %v", got)
	}
}

// ---------------------------------------------------------------- listings

var linkRE = regexp.MustCompile(`^<(/v2/[^>]+)>; rel="next"$`)

// pages follows Link headers from path and returns every page's entries.
func (r *reg) pages(path string, field string) [][]string {
	r.t.Helper()
	var out [][]string
	for i := 0; path != ""; i++ {
		if i > 100 {
			r.t.Fatalf("pagination does not end")
		}
		rs := r.do("GET", path, nil).want(http.StatusOK).wantHeader("Content-Type", "application/json")
		var page map[string]any
		rs.json(&page)
		var entries []string
		list, ok := page[field].([]any)
		if !ok {
			r.t.Fatalf("%s: %s is not a list: %s", path, field, rs.body)
		}
		for _, e := range list {
			entries = append(entries, e.(string))
		}
		out = append(out, entries)
		path = ""
		if link := rs.header.Get("Link"); link != "" {
			m := linkRE.FindStringSubmatch(link)
			if m == nil {
				r.t.Fatalf("malformed Link %q", link)
			}
			path = m[1]
		}
	}
	return out
}

func TestTagsList(t *testing.T) {
	r := newReg(t)
	const name = "a/repo"
	man := r.image(name, ociManifest, "t")
	pushed := []string{"v2", "latest", "v10", "a", "Z", "1.0", "_x", "v1.0-rc_1"}
	for _, tag := range pushed {
		r.mustPutManifest(name, tag, ociManifest, man)
	}
	sorted := slices.Clone(pushed)
	slices.Sort(sorted)
	if got := r.tags(name); !slices.Equal(got, sorted) {
		t.Fatalf("tags %v, want %v", got, sorted)
	}
	for _, n := range []int{1, 2, 3, 7, 8, 9, 100} {
		pages := r.pages(fmt.Sprintf("/v2/%s/tags/list?n=%d", name, n), "tags")
		var all []string
		for i, p := range pages {
			if len(p) > n || (i < len(pages)-1 && len(p) != n) {
				t.Errorf("n=%d: page %d has %d entries", n, i, len(p))
			}
			all = append(all, p...)
		}
		if !slices.Equal(all, sorted) {
			t.Errorf("n=%d: paged tags %v", n, all)
		}
		if wantPages := (len(sorted) + n - 1) / n; len(pages) != wantPages {
			t.Errorf("n=%d: %d pages", n, len(pages))
		}
	}
	rs := r.do("GET", "/v2/"+name+"/tags/list?n=2", nil).want(http.StatusOK)
	rs.wantHeader("Link", `</v2/a/repo/tags/list?last=Z&n=2>; rel="next"`)

	rs = r.do("GET", "/v2/"+name+"/tags/list?last=v10", nil).want(http.StatusOK)
	if rs.header.Get("Link") != "" {
		t.Errorf("Link on the last page")
	}
	var l struct{ Tags []string }
	rs.json(&l)
	if !slices.Equal(l.Tags, []string{"v2"}) {
		t.Errorf("last=v10: %v", l.Tags)
	}
	r.do("GET", "/v2/"+name+"/tags/list?last=zzz", nil).want(http.StatusOK).json(&l)
	if len(l.Tags) != 0 {
		t.Errorf("last=zzz: %v", l.Tags)
	}
	rs = r.do("GET", "/v2/"+name+"/tags/list?n=0", nil).want(http.StatusOK)
	if rs.header.Get("Link") != "" {
		t.Errorf("n=0 with Link %q", rs.header.Get("Link"))
	}
	if !strings.Contains(string(rs.body), `"tags":[]`) {
		t.Errorf("n=0: %s", rs.body)
	}
	for _, n := range []string{"-1", "abc", "1.5", "99999999999999999999"} {
		r.do("GET", "/v2/"+name+"/tags/list?n="+n, nil).wantErr(http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
	}
	r.do("GET", "/v2/nosuchrepo/tags/list", nil).wantErr(http.StatusNotFound, "NAME_UNKNOWN")
	r.pushBlob("blobsonly", []byte("x"))
	r.do("GET", "/v2/blobsonly/tags/list", nil).wantErr(http.StatusNotFound, "NAME_UNKNOWN")
	// A repository with manifests but no tags lists an empty array.
	untagged := r.image("untagged", ociManifest, "u")
	r.mustPutManifest("untagged", digest.FromBytes(untagged).String(), ociManifest, untagged)
	rs = r.do("GET", "/v2/untagged/tags/list", nil).want(http.StatusOK)
	if !strings.Contains(string(rs.body), `"tags":[]`) {
		t.Errorf("untagged repository: %s", rs.body)
	}
}

func TestCatalog(t *testing.T) {
	r := newReg(t)
	if got := r.catalog(); got == nil || len(got) != 0 {
		t.Errorf("empty catalog %v", got)
	}
	repos := []string{"z/y/x", "b", "a", "b/c", "a-b", "m/n"}
	for _, repo := range repos {
		r.mustPutManifest(repo, "latest", ociManifest, r.image(repo, ociManifest, repo))
	}
	r.pushBlob("blobsonly", []byte("not a repository until it has a manifest"))
	sorted := slices.Clone(repos)
	slices.Sort(sorted)
	if got := r.catalog(); !slices.Equal(got, sorted) {
		t.Fatalf("catalog %v, want %v", got, sorted)
	}
	for _, n := range []int{1, 2, 4, 6, 10} {
		var all []string
		for _, p := range r.pages(fmt.Sprintf("/v2/_catalog?n=%d", n), "repositories") {
			if len(p) > n {
				t.Errorf("n=%d: page of %d", n, len(p))
			}
			all = append(all, p...)
		}
		if !slices.Equal(all, sorted) {
			t.Errorf("n=%d: paged catalog %v", n, all)
		}
	}
	r.do("GET", "/v2/_catalog?n=2", nil).want(http.StatusOK).
		wantHeader("Link", `</v2/_catalog?last=a-b&n=2>; rel="next"`)
	rs := r.do("GET", "/v2/_catalog?n=2&last=b", nil).want(http.StatusOK).
		wantHeader("Link", `</v2/_catalog?last=m%2Fn&n=2>; rel="next"`)
	var c struct{ Repositories []string }
	rs.json(&c)
	if !slices.Equal(c.Repositories, []string{"b/c", "m/n"}) {
		t.Errorf("after b: %v", c.Repositories)
	}
	rs = r.do("GET", "/v2/_catalog?n=0", nil).want(http.StatusOK)
	if !strings.Contains(string(rs.body), `"repositories":[]`) || rs.header.Get("Link") != "" {
		t.Errorf("n=0: %s Link %q", rs.body, rs.header.Get("Link"))
	}
	for _, n := range []string{"-1", "x"} {
		r.do("GET", "/v2/_catalog?n="+n, nil).wantErr(http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
	}
}

type referrersIndex struct {
	SchemaVersion int    `json:"schemaVersion"`
	MediaType     string `json:"mediaType"`
	Manifests     []desc `json:"manifests"`
}

func (r *reg) referrers(name string, subject digest.Digest, query string) (referrersIndex, *resp) {
	r.t.Helper()
	rs := r.do("GET", "/v2/"+name+"/referrers/"+subject.String()+query, nil).want(http.StatusOK).
		wantHeader("Content-Type", ociIndex)
	var idx referrersIndex
	rs.json(&idx)
	if idx.SchemaVersion != 2 || idx.MediaType != ociIndex || idx.Manifests == nil {
		r.t.Errorf("referrers response %s", rs.body)
	}
	slices.SortFunc(idx.Manifests, func(a, b desc) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return idx, rs
}

func TestReferrers(t *testing.T) {
	r := newReg(t)
	const name = "repo"
	subject := r.image(name, ociManifest, "subject")
	subjectD := r.mustPutManifest(name, "latest", ociManifest, subject)
	subjectDesc := descOf(ociManifest, subject)

	sbom := r.artifact(name, "application/vnd.example.sbom", subjectDesc, map[string]string{"org.example.kind": "sbom"})
	sbomD := digest.FromBytes(sbom)
	r.putManifest(name, sbomD.String(), ociManifest, sbom).want(http.StatusCreated).wantHeader("OCI-Subject", subjectD.String())

	// An image manifest without artifactType: its config media type is used.
	sigCfg := []byte(`{"sig":true}`)
	r.pushBlob(name, sigCfg)
	sig := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": ociManifest,
		"config": descOf("application/vnd.example.sig.config+json", sigCfg), "layers": []desc{},
		"subject": subjectDesc, "annotations": map[string]string{"org.example.signed": "yes"}})
	sigD := r.mustPutManifest(name, "sig", ociManifest, sig)

	// An index can be a referrer too.
	idx := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": ociIndex, "artifactType": "application/vnd.example.bundle",
		"manifests": []desc{subjectDesc}, "subject": subjectDesc})
	idxD := r.mustPutManifest(name, digest.FromBytes(idx).String(), ociIndex, idx)

	// A referrer in another repository is not listed here.
	r.mustPutManifest("other", "x", ociManifest, r.artifact("other", "application/vnd.example.sbom", subjectDesc, nil))

	want := []desc{
		{MediaType: ociManifest, Digest: sbomD, Size: int64(len(sbom)), ArtifactType: "application/vnd.example.sbom", Annotations: map[string]string{"org.example.kind": "sbom"}},
		{MediaType: ociManifest, Digest: sigD, Size: int64(len(sig)), ArtifactType: "application/vnd.example.sig.config+json", Annotations: map[string]string{"org.example.signed": "yes"}},
		{MediaType: ociIndex, Digest: idxD, Size: int64(len(idx)), ArtifactType: "application/vnd.example.bundle"},
	}
	slices.SortFunc(want, func(a, b desc) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	got, rs := r.referrers(name, subjectD, "")
	if !reflect.DeepEqual(got.Manifests, want) {
		t.Errorf("referrers\n got %+v\nwant %+v", got.Manifests, want)
	}
	if rs.header.Get("OCI-Filters-Applied") != "" {
		t.Errorf("OCI-Filters-Applied without a filter")
	}

	got, rs = r.referrers(name, subjectD, "?artifactType=application/vnd.example.sbom")
	rs.wantHeader("OCI-Filters-Applied", "artifactType")
	if len(got.Manifests) != 1 || got.Manifests[0].Digest != sbomD {
		t.Errorf("filtered referrers %+v", got.Manifests)
	}
	// Media types contain '+', which a query must escape.
	got, rs = r.referrers(name, subjectD, "?artifactType="+url.QueryEscape("application/vnd.example.sig.config+json"))
	rs.wantHeader("OCI-Filters-Applied", "artifactType")
	if len(got.Manifests) != 1 || got.Manifests[0].Digest != sigD {
		t.Errorf("referrers filtered on the config media type: %+v", got.Manifests)
	}
	got, rs = r.referrers(name, subjectD, "?artifactType=application/vnd.example.none")
	rs.wantHeader("OCI-Filters-Applied", "artifactType")
	if len(got.Manifests) != 0 {
		t.Errorf("filter matching nothing: %+v", got.Manifests)
	}

	// Unknown subjects and repositories have no referrers.
	for _, repo := range []string{name, "nosuchrepo"} {
		got, rs = r.referrers(repo, digest.FromString("unknown"), "")
		if len(got.Manifests) != 0 || !strings.Contains(string(rs.body), `"manifests":[]`) {
			t.Errorf("unknown subject: %s", rs.body)
		}
	}
	r.do("GET", "/v2/"+name+"/referrers/not-a-digest", nil).wantErr(http.StatusBadRequest, "DIGEST_INVALID")
	r.do("GET", "/v2/"+name+"/referrers/latest", nil).wantErr(http.StatusBadRequest, "DIGEST_INVALID")

	// Deleting a referrer removes it from the list.
	r.do("DELETE", "/v2/"+name+"/manifests/"+sbomD.String(), nil).want(http.StatusAccepted)
	got, _ = r.referrers(name, subjectD, "")
	if len(got.Manifests) != 2 || slices.ContainsFunc(got.Manifests, func(d desc) bool { return d.Digest == sbomD }) {
		t.Errorf("after deleting the sbom: %+v", got.Manifests)
	}
	// Deleting a referrer's tag keeps it listed.
	r.do("DELETE", "/v2/"+name+"/manifests/sig", nil).want(http.StatusAccepted)
	if got, _ = r.referrers(name, subjectD, ""); len(got.Manifests) != 2 {
		t.Errorf("after untagging the signature: %+v", got.Manifests)
	}

	// A subject need not exist when its referrer is pushed.
	ghost := desc{MediaType: ociManifest, Digest: digest.FromString("ghost"), Size: 5}
	early := r.artifact(name, "application/vnd.example.early", ghost, nil)
	r.putManifest(name, "early", ociManifest, early).want(http.StatusCreated).wantHeader("OCI-Subject", ghost.Digest.String())
	if got, _ = r.referrers(name, ghost.Digest, ""); len(got.Manifests) != 1 || got.Manifests[0].ArtifactType != "application/vnd.example.early" {
		t.Errorf("referrers of a missing subject: %+v", got.Manifests)
	}
}

// ---------------------------------------------------------------- concurrency

func TestConcurrentPush(t *testing.T) {
	r := newReg(t)
	const name, workers = "repo", 8
	layer := bytes.Repeat([]byte("concurrent layer "), 64<<10) // ~1 MiB
	layerD := digest.FromBytes(layer)
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	r.pushBlob(name, cfg)
	man := mustJSON(map[string]any{"schemaVersion": 2, "mediaType": ociManifest,
		"config": descOf(ociConfig, cfg), "layers": []desc{descOf(ociLayer, layer)}})
	manD := digest.FromBytes(man)

	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			check := func(rs *resp, status int) bool {
				if rs.status != status {
					t.Errorf("worker %d: %s: status %d, want %d: %s", i, rs.req, rs.status, status, rs.body)
					return false
				}
				return true
			}
			rs := r.do("POST", "/v2/"+name+"/blobs/uploads/", nil)
			if !check(rs, http.StatusAccepted) {
				return
			}
			half := len(layer) / 2
			rs = r.do("PATCH", rs.header.Get("Location"), layer[:half], "Content-Range", fmt.Sprintf("0-%d", half-1))
			if !check(rs, http.StatusAccepted) {
				return
			}
			rs = r.do("PUT", withQuery(rs.header.Get("Location"), "digest="+layerD.String()), layer[half:],
				"Content-Range", fmt.Sprintf("%d-%d", half, len(layer)-1))
			if !check(rs, http.StatusCreated) {
				return
			}
			rs = r.do("PUT", "/v2/"+name+"/manifests/latest", man, "Content-Type", ociManifest)
			if check(rs, http.StatusCreated) && rs.header.Get("Docker-Content-Digest") != manD.String() {
				t.Errorf("worker %d: digest %s", i, rs.header.Get("Docker-Content-Digest"))
			}
		}()
	}
	close(start)
	wg.Wait()

	var layerFiles []string
	for _, f := range r.blobFiles() {
		if strings.Contains(f, layerD.Encoded()) {
			layerFiles = append(layerFiles, f)
		}
	}
	if len(layerFiles) != 1 {
		t.Errorf("files for the layer: %v", layerFiles)
	}
	if got := r.blobFiles(); len(got) != 3 {
		t.Errorf("blob store: %v (want config, layer, manifest)", got)
	}
	if got := r.uploadFiles(name); len(got) != 0 {
		t.Errorf("uploads left behind: %v", got)
	}
	if got := r.do("GET", "/v2/"+name+"/blobs/"+layerD.String(), nil).want(http.StatusOK).body; !bytes.Equal(got, layer) {
		t.Errorf("layer corrupted")
	}
	r.do("GET", "/v2/"+name+"/manifests/latest", nil).want(http.StatusOK).wantHeader("Docker-Content-Digest", manD.String())
	if got := r.tags(name); !slices.Equal(got, []string{"latest"}) {
		t.Errorf("tags %v", got)
	}
}

// ---------------------------------------------------------------- index rebuild

// observation is everything the index answers for a registry.
type observation struct {
	Catalog   []string
	Tags      map[string][]string
	Manifests map[string]string // repo@ref -> Content-Type, digest, size
	Referrers map[string][]desc
}

func (r *reg) observe(refs map[string][]string, subjects map[string][]digest.Digest) observation {
	r.t.Helper()
	o := observation{Catalog: r.catalog(), Tags: map[string][]string{}, Manifests: map[string]string{}, Referrers: map[string][]desc{}}
	for _, repo := range o.Catalog {
		o.Tags[repo] = r.tags(repo)
	}
	for repo, list := range refs {
		for _, ref := range list {
			rs := r.do("GET", "/v2/"+repo+"/manifests/"+ref, nil).want(http.StatusOK)
			o.Manifests[repo+"@"+ref] = rs.header.Get("Content-Type") + " " + rs.header.Get("Docker-Content-Digest") + " " + strconv.Itoa(len(rs.body))
		}
	}
	for repo, list := range subjects {
		for _, s := range list {
			idx, _ := r.referrers(repo, s, "")
			o.Referrers[repo+"@"+s.String()] = idx.Manifests
		}
	}
	return o
}

func TestIndexRebuild(t *testing.T) {
	r := newReg(t)
	refs := map[string][]string{}
	subjects := map[string][]digest.Digest{}
	put := func(repo, ref, mediaType string, body []byte) digest.Digest {
		d := r.mustPutManifest(repo, ref, mediaType, body)
		refs[repo] = append(refs[repo], ref, d.String())
		return d
	}
	oci := r.image("app", ociManifest, "1")
	ociD := put("app", "v1", ociManifest, oci)
	put("app", "latest", ociManifest, oci)
	docker := r.image("app", dockerV2, "2")
	put("app", "v2", dockerV2, docker)
	put("app", "multi", ociIndex, index(ociIndex, descOf(ociManifest, oci), descOf(dockerV2, docker)))
	put("app", "list", dockerList, index(dockerList, descOf(dockerV2, docker)))
	// Bodies without mediaType: only the Content-Type tells their kind.
	cfg := []byte(`{"architecture":"amd64","os":"linux","seed":"1"}`)
	put("app", "bare", ociManifest, mustJSON(map[string]any{"schemaVersion": 2, "config": descOf(ociConfig, cfg), "layers": []desc{}}))
	put("app", "bare-index", ociIndex, mustJSON(map[string]any{"schemaVersion": 2, "manifests": []desc{descOf(ociManifest, oci)}}))
	put("app", "sbom", ociManifest, r.artifact("app", "application/vnd.example.sbom", descOf(ociManifest, oci), map[string]string{"a": "b"}))
	put("app", "other", ociManifest, r.artifact("app", "", descOf(ociManifest, oci), nil))
	subjects["app"] = []digest.Digest{ociD, digest.FromString("none")}
	put("team/tool", "1.0", ociManifest, r.image("team/tool", ociManifest, "t"))
	put("team", "base", ociManifest, r.image("team", ociManifest, "base")) // a repository inside another's path
	long := r.image("team", ociManifest, "sha512")
	put("team", digest.SHA512.FromBytes(long).String(), ociManifest, long)
	put("x/blobs/y", "edge", dockerV2, r.image("x/blobs/y", dockerV2, "e"))
	// Deleted things stay deleted.
	gone := r.image("app", ociManifest, "gone")
	goneD := r.mustPutManifest("app", "gone", ociManifest, gone)
	r.do("DELETE", "/v2/app/manifests/"+goneD.String(), nil).want(http.StatusAccepted)
	r.mustPutManifest("app", "untag", ociManifest, oci)
	r.do("DELETE", "/v2/app/manifests/untag", nil).want(http.StatusAccepted)

	before := r.observe(refs, subjects)
	if len(before.Catalog) != 4 || len(before.Referrers["app@"+ociD.String()]) != 2 {
		t.Fatalf("unexpected starting state: %+v", before)
	}

	r.stop()
	if err := os.Remove(filepath.Join(r.root, "berth", "index.db")); err != nil {
		t.Fatal(err)
	}
	r.start()
	after := r.observe(refs, subjects)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("rebuilt index differs\nbefore %+v\n after %+v", before, after)
	}
	for _, ref := range []string{"gone", "untag", goneD.String()} {
		r.do("GET", "/v2/app/manifests/"+ref, nil).wantErr(http.StatusNotFound, "MANIFEST_UNKNOWN")
	}

	// A clean restart keeps the index as it is.
	r.stop()
	r.start()
	if again := r.observe(refs, subjects); !reflect.DeepEqual(before, again) {
		t.Errorf("index after clean restart differs\nbefore %+v\n after %+v", before, again)
	}
}
