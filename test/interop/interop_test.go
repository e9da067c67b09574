// Package interop proves that berth and distribution 2.8.2 (the
// `docker-registry` Debian package, i.e. registry:2) share one on-disk
// layout: each serves, byte for byte, the tree the other wrote.
//
// The tests run real processes on 127.0.0.1: docker-registry from $PATH
// (skipped when missing, failed when CI is set) and berth built from
// ./cmd/berth once per run (INTEROP_BERTH_BIN may point at a built one).
package interop

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
)

// TestDistributionTreeServedByBerth: distribution writes a tree, berth serves
// it unchanged, and distribution can still serve it after berth has run on it.
func TestDistributionTreeServedByBerth(t *testing.T) {
	dist := distributionBinary(t)
	berth := berthBinary(t)
	root := t.TempDir()

	src := startRegistry(t, "distribution", dist, root)
	c := newClient(t, src.URL())
	fx := pushFixtures(t, c)
	want := observe(t, "distribution (writer)", c, fx)
	src.Stop(t)

	dst := startRegistry(t, "berth", berth, root)
	got := observe(t, "berth (reader)", newClient(t, dst.URL()), fx)
	compare(t, "distribution (writer)", want, "berth (reader)", got)
	dst.Stop(t)

	back := startRegistry(t, "distribution-again", dist, root)
	again := observe(t, "distribution after berth", newClient(t, back.URL()), fx)
	compare(t, "distribution (writer)", want, "distribution after berth", again)
	back.Stop(t)
}

// TestBerthTreeServedByDistribution: berth writes a tree into a fresh
// directory, distribution serves it unchanged (a user can go back to
// registry:2).
func TestBerthTreeServedByDistribution(t *testing.T) {
	dist := distributionBinary(t)
	berth := berthBinary(t)
	root := t.TempDir()

	src := startRegistry(t, "berth", berth, root)
	c := newClient(t, src.URL())
	fx := pushFixtures(t, c)
	want := observe(t, "berth (writer)", c, fx)
	src.Stop(t)

	dst := startRegistry(t, "distribution", dist, root)
	got := observe(t, "distribution (reader)", newClient(t, dst.URL()), fx)
	compare(t, "berth (writer)", want, "distribution (reader)", got)
	dst.Stop(t)
}

// observation is every answer a registry gave, keyed by request, plus its
// catalog and tag lists.
type observation struct {
	answers map[string]response
	catalog []string
	tags    map[string][]string
}

// observe pulls everything in fx from c, checks it against what was pushed,
// and returns the answers for comparison with another registry's.
func observe(t *testing.T, who string, c *client, fx *fixture) *observation {
	t.Helper()
	obs := &observation{answers: map[string]response{}, tags: map[string][]string{}}
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: %s", who, fmt.Sprintf(format, args...))
	}
	record := func(method, path string, r response) response {
		obs.answers[method+" "+path] = r
		return r
	}

	checkManifest := func(m manifestRef, ref string) {
		t.Helper()
		path := "/v2/" + m.Repo + "/manifests/" + ref
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			r := record(method, path, c.getManifest(method, m.Repo, ref))
			if r.Status != http.StatusOK {
				errorf("%s %s: status %d, want 200 (error %q)", method, path, r.Status, r.ErrorCode)
				continue
			}
			if r.ContentType != m.MediaType {
				errorf("%s %s: Content-Type %q, want %q", method, path, r.ContentType, m.MediaType)
			}
			if r.Digest != m.Digest {
				errorf("%s %s: Docker-Content-Digest %q, want %q", method, path, r.Digest, m.Digest)
			}
			if r.ContentLength != strconv.Itoa(len(m.Body)) {
				errorf("%s %s: Content-Length %q, want %d", method, path, r.ContentLength, len(m.Body))
			}
			if method == http.MethodGet && !bytes.Equal(r.Body, m.Body) {
				errorf("GET %s: body (%d bytes, %s) differs from the pushed manifest (%d bytes, %s)",
					path, len(r.Body), digestOf(r.Body), len(m.Body), m.Digest)
			}
		}
	}
	for _, m := range fx.manifests {
		checkManifest(m, m.Digest)
	}
	for _, repo := range fx.repos() {
		for _, tag := range fx.tagList(repo) {
			checkManifest(fx.manifest(repo, fx.tags[repo][tag]), tag)
		}
	}

	for _, b := range fx.blobs {
		path := "/v2/" + b.Repo + "/blobs/" + b.Digest
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			r := record(method, path, c.getBlob(method, b.Repo, b.Digest))
			if r.Status != http.StatusOK {
				errorf("%s %s: status %d, want 200 (error %q)", method, path, r.Status, r.ErrorCode)
				continue
			}
			if r.Digest != b.Digest {
				errorf("%s %s: Docker-Content-Digest %q, want %q", method, path, r.Digest, b.Digest)
			}
			if r.ContentLength != strconv.Itoa(len(b.Data)) {
				errorf("%s %s: Content-Length %q, want %d", method, path, r.ContentLength, len(b.Data))
			}
			if method == http.MethodGet && !bytes.Equal(r.Body, b.Data) {
				errorf("GET %s: body (%d bytes, %s) differs from the pushed blob (%d bytes)",
					path, len(r.Body), digestOf(r.Body), len(b.Data))
			}
		}
	}

	expectGone := func(path string, r response, method string) {
		t.Helper()
		record(method, path, r)
		if r.Status != http.StatusNotFound {
			errorf("%s %s: status %d, want 404", method, path, r.Status)
		}
	}
	for _, m := range fx.goneManifests {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			expectGone("/v2/"+m.Repo+"/manifests/"+m.Digest, c.getManifest(method, m.Repo, m.Digest), method)
		}
	}
	for repo, tags := range fx.goneTags {
		for _, tag := range tags {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				expectGone("/v2/"+repo+"/manifests/"+tag, c.getManifest(method, repo, tag), method)
			}
		}
	}
	for _, b := range fx.goneBlobs {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			expectGone("/v2/"+b.Repo+"/blobs/"+b.Digest, c.getBlob(method, b.Repo, b.Digest), method)
		}
	}

	obs.catalog = c.catalog()
	if want := fx.repos(); !slices.Equal(sortedCopy(obs.catalog), want) {
		errorf("/v2/_catalog lists %q, want exactly %q", obs.catalog, want)
	}
	for _, repo := range fx.repos() {
		obs.tags[repo] = c.tags(repo)
		if want := fx.tagList(repo); !slices.Equal(sortedCopy(obs.tags[repo]), want) {
			errorf("/v2/%s/tags/list lists %q, want exactly %q", repo, obs.tags[repo], want)
		}
	}
	return obs
}

// compare checks that the reader answered every request as the writer did:
// status, Content-Type, Docker-Content-Digest, Content-Length, body and
// error code.
func compare(t *testing.T, wantWho string, want *observation, gotWho string, got *observation) {
	t.Helper()
	keys := make([]string, 0, len(want.answers))
	for k := range want.answers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		w := want.answers[k]
		g, ok := got.answers[k]
		if !ok {
			t.Errorf("%s: %s was not asked", gotWho, k)
			continue
		}
		diff := func(field, wv, gv string) {
			t.Helper()
			if wv != gv {
				t.Errorf("%s: %s answers %s %q, %s answered %q", k, gotWho, field, gv, wantWho, wv)
			}
		}
		diff("status", strconv.Itoa(w.Status), strconv.Itoa(g.Status))
		if w.Status != g.Status {
			continue
		}
		if w.Status == http.StatusOK {
			diff("Content-Type", w.ContentType, g.ContentType)
			diff("Docker-Content-Digest", w.Digest, g.Digest)
			diff("Content-Length", w.ContentLength, g.ContentLength)
		}
		diff("error code", w.ErrorCode, g.ErrorCode)
		if !bytes.Equal(w.Body, g.Body) && w.Status == http.StatusOK {
			t.Errorf("%s: %s answers a body of %d bytes (%s), %s answered %d bytes (%s)",
				k, gotWho, len(g.Body), digestOf(g.Body), wantWho, len(w.Body), digestOf(w.Body))
		}
	}
	// Lists are compared as sets: distribution 2.8.2 returns tags in
	// directory order, not the lexical order the spec asks for.
	if !slices.Equal(sortedCopy(want.catalog), sortedCopy(got.catalog)) {
		t.Errorf("/v2/_catalog: %s lists %q, %s listed %q", gotWho, got.catalog, wantWho, want.catalog)
	}
	for repo, tags := range want.tags {
		if !slices.Equal(sortedCopy(tags), sortedCopy(got.tags[repo])) {
			t.Errorf("/v2/%s/tags/list: %s lists %q, %s listed %q", repo, gotWho, got.tags[repo], wantWho, tags)
		}
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
