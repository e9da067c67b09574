// Package indextest is the behavioural suite for content.Index
// implementations. Every index runs it from its own tests:
//
//	func TestIndex(t *testing.T) {
//		indextest.Run(t, func(t *testing.T) content.Index { return open(t) })
//	}
//
// Each subtest gets a fresh, empty index from newIndex (closing it is the
// caller's business, in t.Cleanup).
//
// The suite pins down what the registry relies on: byte-wise ordering and
// pagination of tags and repositories (whatever a database's locale), a
// repository staying listed (with no tags) after its last manifest is
// deleted, as its directory stays in storage, deleting a manifest taking its
// tags and referrer entries along, Replace swapping everything at once
// (repositories without manifests included), and concurrent writers in one
// repository not losing each other's work.
package indextest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
)

// Run runs the whole suite against indexes made by newIndex.
func Run(t *testing.T, newIndex func(t *testing.T) content.Index) {
	tests := []struct {
		name string
		fn   func(*testing.T, content.Index)
	}{
		{"Empty", testEmpty},
		{"ManifestRoundTrip", testManifestRoundTrip},
		{"ManifestOverwrite", testManifestOverwrite},
		{"Tags", testTags},
		{"TagsOrderAndPages", testTagsOrderAndPages},
		{"RepositoriesOrderAndPages", testRepositoriesOrderAndPages},
		{"RepositoriesAreSeparate", testRepositoriesAreSeparate},
		{"DeleteManifestTakesTags", testDeleteManifestTakesTags},
		{"DeleteLastManifestKeepsRepository", testDeleteLastManifest},
		{"DeleteUnknown", testDeleteUnknown},
		{"Referrers", testReferrers},
		{"Replace", testReplace},
		{"ReplaceEmpty", testReplaceEmpty},
		{"ConcurrentRepositories", testConcurrentRepositories},
		{"ConcurrentPutDeleteOneRepository", testConcurrentPutDelete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newIndex(t))
		})
	}
}

// Digest returns a distinct, valid digest for s.
func Digest(s string) digest.Digest { return digest.FromString(s) }

// Record is a plain image manifest record for s.
func Record(s string) content.ManifestRecord {
	return content.ManifestRecord{
		Digest:    Digest(s),
		MediaType: content.MediaTypeOCIManifest,
		Size:      int64(100 + len(s)),
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tagNames(t *testing.T, idx content.Index, repo, last string, n int) []string {
	t.Helper()
	tags, err := idx.Tags(context.Background(), repo, last, n)
	must(t, err)
	out := []string{}
	for _, tg := range tags {
		out = append(out, tg.Name)
	}
	return out
}

func repoNames(t *testing.T, idx content.Index, last string, n int) []string {
	t.Helper()
	repos, err := idx.Repositories(context.Background(), last, n)
	must(t, err)
	return append([]string{}, repos...)
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %#v\nwant %#v", what, got, want)
	}
}

func testEmpty(t *testing.T, idx content.Index) {
	ctx := context.Background()
	equal(t, "repositories", repoNames(t, idx, "", -1), []string{})
	ok, err := idx.HasRepository(ctx, "a")
	must(t, err)
	equal(t, "HasRepository", ok, false)
	_, ok, err = idx.Tag(ctx, "a", "latest")
	must(t, err)
	equal(t, "Tag found", ok, false)
	_, ok, err = idx.Manifest(ctx, "a", Digest("x"))
	must(t, err)
	equal(t, "Manifest found", ok, false)
	equal(t, "tags", tagNames(t, idx, "a", "", -1), []string{})
	refs, err := idx.Referrers(ctx, "a", Digest("x"))
	must(t, err)
	equal(t, "referrers", len(refs), 0)
}

func testManifestRoundTrip(t *testing.T, idx content.Index) {
	ctx := context.Background()
	full := content.ManifestRecord{
		Digest:       Digest("full"),
		MediaType:    content.MediaTypeOCIManifest,
		Size:         1234,
		ArtifactType: "application/vnd.example.sbom",
		Subject:      Digest("subject"),
		Annotations:  map[string]string{"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "k": "v \"quoted\" ü"},
	}
	plain := Record("plain")
	must(t, idx.PutManifest(ctx, "team/app", full))
	must(t, idx.PutManifest(ctx, "team/app", plain))
	got, ok, err := idx.Manifest(ctx, "team/app", full.Digest)
	must(t, err)
	equal(t, "found", ok, true)
	equal(t, "full record", got, full)
	got, ok, err = idx.Manifest(ctx, "team/app", plain.Digest)
	must(t, err)
	equal(t, "found", ok, true)
	equal(t, "plain record", got, plain)
	ok, err = idx.HasRepository(ctx, "team/app")
	must(t, err)
	equal(t, "HasRepository", ok, true)
	equal(t, "repositories", repoNames(t, idx, "", -1), []string{"team/app"})
	// Repositories are not prefixes of each other.
	ok, err = idx.HasRepository(ctx, "team")
	must(t, err)
	equal(t, "HasRepository(team)", ok, false)
}

func testManifestOverwrite(t *testing.T, idx content.Index) {
	// A digest names one body, so a second put of it carries the same
	// record (a rebuild, a read-through, a retried push): idempotent.
	ctx := context.Background()
	rec := Record("m")
	rec.Subject = Digest("s")
	rec.Annotations = map[string]string{"a": "b"}
	must(t, idx.PutManifest(ctx, "r", rec))
	must(t, idx.PutManifest(ctx, "r", rec))
	got, _, err := idx.Manifest(ctx, "r", rec.Digest)
	must(t, err)
	equal(t, "record", got, rec)
	refs, err := idx.Referrers(ctx, "r", Digest("s"))
	must(t, err)
	equal(t, "referrers", refs, []content.ManifestRecord{rec})
	equal(t, "repositories", repoNames(t, idx, "", -1), []string{"r"})
}

func testTags(t *testing.T, idx content.Index) {
	ctx := context.Background()
	m1, m2 := Record("1"), Record("2")
	must(t, idx.PutManifest(ctx, "r", m1))
	must(t, idx.PutManifest(ctx, "r", m2))
	must(t, idx.PutTag(ctx, "r", "latest", m1.Digest))
	must(t, idx.PutTag(ctx, "r", "v1", m1.Digest))
	d, ok, err := idx.Tag(ctx, "r", "latest")
	must(t, err)
	equal(t, "latest", []any{d, ok}, []any{m1.Digest, true})
	// Moving a tag.
	must(t, idx.PutTag(ctx, "r", "latest", m2.Digest))
	d, _, err = idx.Tag(ctx, "r", "latest")
	must(t, err)
	equal(t, "latest after move", d, m2.Digest)
	tags, err := idx.Tags(ctx, "r", "", -1)
	must(t, err)
	equal(t, "tags", tags, []content.Tag{{Name: "latest", Digest: m2.Digest}, {Name: "v1", Digest: m1.Digest}})
	// Tags are per repository.
	_, ok, err = idx.Tag(ctx, "other", "latest")
	must(t, err)
	equal(t, "tag of another repository", ok, false)
	must(t, idx.DeleteTag(ctx, "r", "latest"))
	_, ok, err = idx.Tag(ctx, "r", "latest")
	must(t, err)
	equal(t, "deleted tag found", ok, false)
	equal(t, "tags after delete", tagNames(t, idx, "r", "", -1), []string{"v1"})
	// Deleting a tag keeps its manifest and the repository.
	_, ok, err = idx.Manifest(ctx, "r", m2.Digest)
	must(t, err)
	equal(t, "manifest after tag delete", ok, true)
	equal(t, "repositories", repoNames(t, idx, "", -1), []string{"r"})
}

// tagSet holds every character class a tag may contain; byte order puts
// '-' < '.' < digits < upper case < '_' < lower case, which a locale-aware
// collation would not.
var tagSet = []string{"latest", "Latest", "_x", "1.0", "1.0-rc1", "1.0.1", "10", "2", "a-b", "a.b", "a_b", "aB", "ab", "Z"}

func testTagsOrderAndPages(t *testing.T, idx content.Index) {
	ctx := context.Background()
	m := Record("m")
	must(t, idx.PutManifest(ctx, "r", m))
	for _, tg := range tagSet {
		must(t, idx.PutTag(ctx, "r", tg, m.Digest))
	}
	want := slices.Clone(tagSet)
	slices.Sort(want) // Go compares strings byte-wise
	equal(t, "all tags", tagNames(t, idx, "r", "", -1), want)
	equal(t, "n=0", tagNames(t, idx, "r", "", 0), []string{})
	equal(t, "first page", tagNames(t, idx, "r", "", 3), want[:3])
	equal(t, "next page", tagNames(t, idx, "r", want[2], 3), want[3:6])
	equal(t, "last not a tag", tagNames(t, idx, "r", "1.0-", 2), []string{"1.0-rc1", "1.0.1"})
	equal(t, "after the end", tagNames(t, idx, "r", want[len(want)-1], 5), []string{})
	equal(t, "past everything", tagNames(t, idx, "r", "zzz", -1), []string{})
	// Walking page by page visits each tag once.
	var walked []string
	for last := ""; ; {
		page := tagNames(t, idx, "r", last, 4)
		if len(page) == 0 {
			break
		}
		walked = append(walked, page...)
		last = page[len(page)-1]
	}
	equal(t, "walked", walked, want)
}

func testRepositoriesOrderAndPages(t *testing.T, idx content.Index) {
	ctx := context.Background()
	names := []string{"b", "a", "a/b", "a-b", "a.b", "a_b", "a/b/c", "ab", "a0", "z/z", "library/alpine"}
	for _, n := range names {
		must(t, idx.PutManifest(ctx, n, Record(n)))
	}
	want := slices.Clone(names)
	slices.Sort(want)
	equal(t, "all", repoNames(t, idx, "", -1), want)
	equal(t, "n=0", repoNames(t, idx, "", 0), []string{})
	equal(t, "first page", repoNames(t, idx, "", 4), want[:4])
	equal(t, "next page", repoNames(t, idx, want[3], 4), want[4:8])
	equal(t, "last is no repository", repoNames(t, idx, "a/", 2), []string{"a/b", "a/b/c"})
	equal(t, "past the end", repoNames(t, idx, "zz", -1), []string{})
}

func testRepositoriesAreSeparate(t *testing.T, idx content.Index) {
	ctx := context.Background()
	m := Record("shared")
	must(t, idx.PutManifest(ctx, "one", m))
	must(t, idx.PutManifest(ctx, "two", m))
	must(t, idx.PutTag(ctx, "one", "t", m.Digest))
	must(t, idx.DeleteManifest(ctx, "two", m.Digest))
	_, ok, err := idx.Manifest(ctx, "one", m.Digest)
	must(t, err)
	equal(t, "manifest in the other repository", ok, true)
	d, ok, err := idx.Tag(ctx, "one", "t")
	must(t, err)
	equal(t, "tag in the other repository", []any{d, ok}, []any{m.Digest, true})
	_, ok, err = idx.Manifest(ctx, "two", m.Digest)
	must(t, err)
	equal(t, "deleted manifest", ok, false)
}

func testDeleteManifestTakesTags(t *testing.T, idx content.Index) {
	ctx := context.Background()
	m1, m2 := Record("1"), Record("2")
	must(t, idx.PutManifest(ctx, "r", m1))
	must(t, idx.PutManifest(ctx, "r", m2))
	for _, tg := range []string{"a", "b", "c"} {
		must(t, idx.PutTag(ctx, "r", tg, m1.Digest))
	}
	must(t, idx.PutTag(ctx, "r", "keep", m2.Digest))
	// Looked up once before the delete, as a cache in the index would be
	// filled.
	_, ok, err := idx.Tag(ctx, "r", "a")
	must(t, err)
	equal(t, "tag a before the delete", ok, true)
	must(t, idx.DeleteManifest(ctx, "r", m1.Digest))
	_, ok, err = idx.Manifest(ctx, "r", m1.Digest)
	must(t, err)
	equal(t, "deleted manifest found", ok, false)
	equal(t, "tags", tagNames(t, idx, "r", "", -1), []string{"keep"})
	_, ok, err = idx.Tag(ctx, "r", "a")
	must(t, err)
	equal(t, "tag a of the deleted manifest found", ok, false)
	d, ok, err := idx.Tag(ctx, "r", "keep")
	must(t, err)
	equal(t, "tag keep", []any{d, ok}, []any{m2.Digest, true})
	ok, err = idx.HasRepository(ctx, "r")
	must(t, err)
	equal(t, "repository", ok, true)
}

func testDeleteLastManifest(t *testing.T, idx content.Index) {
	ctx := context.Background()
	m := Record("only")
	must(t, idx.PutManifest(ctx, "gone", m))
	must(t, idx.PutTag(ctx, "gone", "latest", m.Digest))
	must(t, idx.PutManifest(ctx, "stays", m))
	must(t, idx.DeleteManifest(ctx, "gone", m.Digest))
	// Its directory stays in storage, and its tag list answers (empty), as
	// the OCI conformance suite expects.
	ok, err := idx.HasRepository(ctx, "gone")
	must(t, err)
	equal(t, "HasRepository", ok, true)
	equal(t, "repositories", repoNames(t, idx, "", -1), []string{"gone", "stays"})
	equal(t, "tags", tagNames(t, idx, "gone", "", -1), []string{})
	_, ok, err = idx.Manifest(ctx, "gone", m.Digest)
	must(t, err)
	equal(t, "deleted manifest", ok, false)
	// A new manifest there does not bring old tags back.
	must(t, idx.PutManifest(ctx, "gone", m))
	equal(t, "repositories", repoNames(t, idx, "", -1), []string{"gone", "stays"})
	equal(t, "tags", tagNames(t, idx, "gone", "", -1), []string{})
}

func testDeleteUnknown(t *testing.T, idx content.Index) {
	ctx := context.Background()
	must(t, idx.DeleteManifest(ctx, "nowhere", Digest("x")))
	must(t, idx.DeleteTag(ctx, "nowhere", "x"))
	m := Record("m")
	must(t, idx.PutManifest(ctx, "r", m))
	must(t, idx.DeleteManifest(ctx, "r", Digest("other")))
	must(t, idx.DeleteTag(ctx, "r", "none"))
	equal(t, "repositories", repoNames(t, idx, "", -1), []string{"r"})
}

func testReferrers(t *testing.T, idx content.Index) {
	ctx := context.Background()
	subject := Record("subject")
	must(t, idx.PutManifest(ctx, "r", subject))
	var want []content.ManifestRecord
	for i := range 5 {
		rec := Record(fmt.Sprintf("sig%d", i))
		rec.Subject = subject.Digest
		rec.ArtifactType = "application/vnd.example.sig"
		if i%2 == 0 {
			rec.Annotations = map[string]string{"n": fmt.Sprint(i)}
		}
		must(t, idx.PutManifest(ctx, "r", rec))
		want = append(want, rec)
	}
	// Same subject in another repository, another subject here.
	other := Record("elsewhere")
	other.Subject = subject.Digest
	must(t, idx.PutManifest(ctx, "other", other))
	unrelated := Record("unrelated")
	unrelated.Subject = Digest("another subject")
	must(t, idx.PutManifest(ctx, "r", unrelated))

	slices.SortFunc(want, func(a, b content.ManifestRecord) int {
		return cmpString(string(a.Digest), string(b.Digest))
	})
	got, err := idx.Referrers(ctx, "r", subject.Digest)
	must(t, err)
	equal(t, "referrers (by digest)", got, want)

	must(t, idx.DeleteManifest(ctx, "r", want[0].Digest))
	got, err = idx.Referrers(ctx, "r", subject.Digest)
	must(t, err)
	equal(t, "referrers after a delete", got, want[1:])
	// Referrers do not need their subject in the index.
	must(t, idx.DeleteManifest(ctx, "r", subject.Digest))
	got, err = idx.Referrers(ctx, "r", subject.Digest)
	must(t, err)
	equal(t, "referrers of a deleted subject", got, want[1:])
	got, err = idx.Referrers(ctx, "r", Digest("nothing"))
	must(t, err)
	equal(t, "referrers of an unknown subject", len(got), 0)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func testReplace(t *testing.T, idx content.Index) {
	ctx := context.Background()
	old := Record("old")
	must(t, idx.PutManifest(ctx, "old/repo", old))
	must(t, idx.PutTag(ctx, "old/repo", "latest", old.Digest))
	must(t, idx.PutManifest(ctx, "kept", old))
	must(t, idx.PutTag(ctx, "kept", "stale", old.Digest))
	for _, ref := range [][2]string{{"old/repo", "latest"}, {"kept", "stale"}} {
		_, ok, err := idx.Tag(ctx, ref[0], ref[1])
		must(t, err)
		equal(t, "tag before Replace", ok, true)
	}

	a1, a2 := Record("a1"), Record("a2")
	ref := Record("ref")
	ref.Subject = a1.Digest
	ref.ArtifactType = "application/vnd.example"
	ref.Annotations = map[string]string{"x": "y"}
	snap := []content.RepositorySnapshot{
		{Name: "kept", Manifests: []content.ManifestRecord{a1, a2, ref}, Tags: []content.Tag{{Name: "v2", Digest: a2.Digest}, {Name: "v1", Digest: a1.Digest}}},
		{Name: "new/one", Manifests: []content.ManifestRecord{a1}, Tags: []content.Tag{{Name: "latest", Digest: a1.Digest}}},
		{Name: "empty"}, // every manifest deleted: still a repository
	}
	must(t, idx.Replace(ctx, content.Snapshots(snap)))

	equal(t, "repositories", repoNames(t, idx, "", -1), []string{"empty", "kept", "new/one"})
	ok, err := idx.HasRepository(ctx, "empty")
	must(t, err)
	equal(t, "HasRepository(empty)", ok, true)
	ok, err = idx.HasRepository(ctx, "old/repo")
	must(t, err)
	equal(t, "old repository", ok, false)
	_, ok, err = idx.Manifest(ctx, "kept", old.Digest)
	must(t, err)
	equal(t, "old manifest", ok, false)
	tags, err := idx.Tags(ctx, "kept", "", -1)
	must(t, err)
	equal(t, "tags", tags, []content.Tag{{Name: "v1", Digest: a1.Digest}, {Name: "v2", Digest: a2.Digest}})
	got, _, err := idx.Manifest(ctx, "kept", ref.Digest)
	must(t, err)
	equal(t, "record", got, ref)
	refs, err := idx.Referrers(ctx, "kept", a1.Digest)
	must(t, err)
	equal(t, "referrers", refs, []content.ManifestRecord{ref})
	d, ok, err := idx.Tag(ctx, "new/one", "latest")
	must(t, err)
	equal(t, "tag", []any{d, ok}, []any{a1.Digest, true})
	for _, ref := range [][2]string{{"old/repo", "latest"}, {"kept", "stale"}} {
		_, ok, err := idx.Tag(ctx, ref[0], ref[1])
		must(t, err)
		equal(t, "tag "+ref[0]+":"+ref[1]+" after Replace", ok, false)
	}

	// The index keeps working normally afterwards.
	must(t, idx.PutManifest(ctx, "after", a2))
	equal(t, "repositories", repoNames(t, idx, "", -1), []string{"after", "empty", "kept", "new/one"})
}

func testReplaceEmpty(t *testing.T, idx content.Index) {
	ctx := context.Background()
	must(t, idx.PutManifest(ctx, "r", Record("m")))
	must(t, idx.Replace(ctx, content.Snapshots(nil)))
	equal(t, "repositories", repoNames(t, idx, "", -1), []string{})
	must(t, idx.Replace(ctx, content.Snapshots(nil)))
}

func testConcurrentRepositories(t *testing.T, idx content.Index) {
	ctx := context.Background()
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				repo := fmt.Sprintf("w%d/r%02d", w, i)
				m := Record(repo)
				if err := idx.PutManifest(ctx, repo, m); err != nil {
					errs <- err
					return
				}
				if err := idx.PutTag(ctx, repo, "latest", m.Digest); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	repos := repoNames(t, idx, "", -1)
	if len(repos) != workers*each {
		t.Fatalf("%d repositories, want %d", len(repos), workers*each)
	}
	for _, r := range repos {
		d, ok, err := idx.Tag(ctx, r, "latest")
		must(t, err)
		if !ok || d != Record(r).Digest {
			t.Errorf("%s:latest = %s, %v", r, d, ok)
		}
	}
}

// testConcurrentPutDelete races deleting a repository's last manifest
// against putting a new one: whatever the interleaving, a manifest whose
// put returned is there afterwards, and its repository is listed.
func testConcurrentPutDelete(t *testing.T, idx content.Index) {
	ctx := context.Background()
	const rounds = 40
	must(t, idx.PutManifest(ctx, "r", Record("0")))
	for i := 1; i <= rounds; i++ {
		prev, next := Record(fmt.Sprint(i-1)), Record(fmt.Sprint(i))
		var wg sync.WaitGroup
		var putErr, tagErr, delErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			if putErr = idx.PutManifest(ctx, "r", next); putErr == nil {
				tagErr = idx.PutTag(ctx, "r", "latest", next.Digest)
			}
		}()
		go func() {
			defer wg.Done()
			delErr = idx.DeleteManifest(ctx, "r", prev.Digest)
		}()
		wg.Wait()
		must(t, putErr)
		must(t, tagErr)
		must(t, delErr)
		_, ok, err := idx.Manifest(ctx, "r", next.Digest)
		must(t, err)
		if !ok {
			t.Fatalf("round %d: the manifest put concurrently with a delete is gone", i)
		}
		d, ok, err := idx.Tag(ctx, "r", "latest")
		must(t, err)
		if !ok || d != next.Digest {
			t.Fatalf("round %d: latest = %s, %v", i, d, ok)
		}
		equal(t, fmt.Sprintf("round %d repositories", i), repoNames(t, idx, "", -1), []string{"r"})
	}
}
