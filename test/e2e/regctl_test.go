//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/test/harness"
)

// TestRegctlTagPagingAndCopy: a repository with 250 tags. `regctl tag ls`
// returns exactly those 250; paging through them with --limit 100 and
// --last takes three tags/list requests (100, 100, 50), in order, with no
// tag lost or repeated. `regctl image copy` copies an image to another
// repository with its digest unchanged.
func TestRegctlTagPagingAndCopy(t *testing.T) {
	t.Parallel()
	b := harness.Start(t, harness.Options{})
	rc := regctlEnv(t, b)

	const repo = "e2e/regctl/tags"
	img := newGoImage(t, "amd64", map[string][]byte{"tags.txt": []byte("250 tags\n")})
	var want []string
	for i := range 250 {
		want = append(want, fmt.Sprintf("t%03d", i))
	}
	pushGoImage(t, b, repo, img, want...)
	ref := b.Addr + "/" + repo

	all := lines(rc.run("regctl", "tag", "ls", ref))
	slices.Sort(all)
	if !slices.Equal(all, want) {
		t.Fatalf("regctl tag ls: %d tags, want the 250 pushed (first %v)", len(all), all[:min(5, len(all))])
	}

	mark := len(b.Requests(t))
	var paged []string
	var pages []int
	last := ""
	for len(pages) < 10 {
		args := []string{"tag", "ls", "--limit", "100"}
		if last != "" {
			args = append(args, "--last", last)
		}
		page := lines(rc.run("regctl", append(args, ref)...))
		if len(page) == 0 {
			break
		}
		if !slices.IsSorted(page) || (last != "" && page[0] <= last) {
			t.Fatalf("page after %q not sorted after it: %v", last, page)
		}
		pages = append(pages, len(page))
		paged = append(paged, page...)
		last = page[len(page)-1]
		if len(page) < 100 {
			break
		}
	}
	if !slices.Equal(paged, want) {
		t.Errorf("paged listing (pages %v) has %d tags, want the 250 in order", pages, len(paged))
	}
	if !slices.Equal(pages, []int{100, 100, 50}) {
		t.Errorf("page sizes %v, want [100 100 50]", pages)
	}
	var listings int
	for _, r := range b.RequestsSince(t, mark) {
		if r.Method == http.MethodGet && r.Path == "/v2/"+repo+"/tags/list" && r.Status == http.StatusOK {
			listings++
		}
	}
	if listings != len(pages) {
		t.Errorf("berth logged %d tags/list requests for %d regctl pages", listings, len(pages))
	}

	// Image copy between repositories.
	dst := b.Addr + "/e2e/regctl/copy:v1"
	rc.run("regctl", "image", "copy", ref+":t042", dst)
	src := strings.TrimSpace(rc.run("regctl", "image", "digest", ref+":t042"))
	cp := strings.TrimSpace(rc.run("regctl", "image", "digest", dst))
	if src != img.Digest || cp != img.Digest {
		t.Errorf("regctl image digest: source %s, copy %s, want %s", src, cp, img.Digest)
	}
	if got := getManifest(t, b, "e2e/regctl/copy", "v1").Digest; got != img.Digest {
		t.Errorf("berth serves the copy as %s, want %s", got, img.Digest)
	}
	for _, bl := range img.Blobs {
		if st := headBlobStatus(t, b, "e2e/regctl/copy", bl.Digest); st != http.StatusOK {
			t.Errorf("blob %s in the copy: HEAD %d", bl.Digest, st)
		}
	}
	if got := tagList(t, b, "e2e/regctl/copy"); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("tags of the copy: %v", got)
	}
}
