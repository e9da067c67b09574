package index_test

// Benchmarks of the bbolt index alone: the lookups behind every manifest
// HEAD/GET by tag, listing pages, and the writes every manifest push makes.

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index"
)

const benchRepos = 10000

func benchRepo(i int) string { return fmt.Sprintf("org%03d/app%05d", i/100, i) }

// benchIndex is an index of benchRepos repositories with one tag each, plus
// "big/tags" with benchRepos tags.
func benchIndex(b *testing.B) *index.Bolt {
	b.Helper()
	idx, err := index.Open(filepath.Join(b.TempDir(), "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { idx.Close() })
	snaps := make([]content.RepositorySnapshot, 0, benchRepos+1)
	rec := func(s string) content.ManifestRecord {
		return content.ManifestRecord{Digest: digest.FromString(s), MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 500}
	}
	for i := range benchRepos {
		m := rec(benchRepo(i))
		snaps = append(snaps, content.RepositorySnapshot{Name: benchRepo(i),
			Manifests: []content.ManifestRecord{m}, Tags: []content.Tag{{Name: "latest", Digest: m.Digest}}})
	}
	big := content.RepositorySnapshot{Name: "big/tags"}
	for i := range benchRepos {
		m := rec(fmt.Sprint("tag", i))
		big.Manifests = append(big.Manifests, m)
		big.Tags = append(big.Tags, content.Tag{Name: fmt.Sprintf("v%05d", i), Digest: m.Digest})
	}
	if err := idx.Replace(context.Background(), content.Snapshots(append(snaps, big))); err != nil {
		b.Fatal(err)
	}
	return idx
}

// BenchmarkResolveTag is the index's part of a manifest HEAD by tag: the
// tag's digest, then the manifest record.
func BenchmarkResolveTag(b *testing.B) {
	idx := benchIndex(b)
	ctx := context.Background()
	repo := benchRepo(benchRepos / 2)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d, ok, err := idx.Tag(ctx, repo, "latest")
			if err != nil || !ok {
				b.Fatal(ok, err)
			}
			if _, ok, err := idx.Manifest(ctx, repo, d); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
}

func BenchmarkListPage(b *testing.B) {
	idx := benchIndex(b)
	ctx := context.Background()
	for _, n := range []int{100, benchRepos} {
		b.Run(fmt.Sprintf("repositories/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := idx.Repositories(ctx, "", n); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("tags/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := idx.Tags(ctx, "big/tags", "", n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPutManifestTag is the index's part of a manifest push by tag:
// two write transactions, each committed (and fsynced) by bbolt.
func BenchmarkPutManifestTag(b *testing.B) {
	idx := benchIndex(b)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		repo := fmt.Sprintf("push/r%d", i)
		rec := content.ManifestRecord{Digest: digest.FromString(repo), MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 500}
		if err := idx.PutManifest(ctx, repo, rec); err != nil {
			b.Fatal(err)
		}
		if err := idx.PutTag(ctx, repo, "latest", rec.Digest); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
