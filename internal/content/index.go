package content

import (
	"context"
	"iter"

	"github.com/opencontainers/go-digest"
)

// Index answers the questions that distribution answers by walking storage:
// which repositories exist, which tags a repository has, which manifests
// refer to a subject. Storage stays the source of truth; the index is derived
// from it and can be rebuilt from it at any time (Registry.Rebuild).
type Index interface {
	PutManifest(ctx context.Context, repo string, rec ManifestRecord) error
	// DeleteManifest forgets a manifest and every tag pointing at it.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	Manifest(ctx context.Context, repo string, d digest.Digest) (ManifestRecord, bool, error)

	PutTag(ctx context.Context, repo, tag string, d digest.Digest) error
	DeleteTag(ctx context.Context, repo, tag string) error
	Tag(ctx context.Context, repo, tag string) (digest.Digest, bool, error)
	// Tags lists tags sorted by name, starting after last, at most n (n < 0:
	// all).
	Tags(ctx context.Context, repo, last string, n int) ([]Tag, error)

	// Repositories lists repositories, sorted, starting after last, at most
	// n (n < 0: all). A repository is known once a manifest was pushed to it
	// and stays known, with no tags, after its manifests are deleted, as its
	// directory stays in storage.
	Repositories(ctx context.Context, last string, n int) ([]string, error)
	HasRepository(ctx context.Context, repo string) (bool, error)

	// Referrers lists the manifests of repo whose subject is d.
	Referrers(ctx context.Context, repo string, d digest.Digest) ([]ManifestRecord, error)

	// Replace swaps the whole index for the repositories repos yields,
	// one at a time (so a rebuild need not hold the whole registry in
	// memory); the first error it yields aborts the Replace with that
	// error. An index whose Replace failed midway must read as stale
	// (needing a rebuild) until a later Replace succeeds.
	Replace(ctx context.Context, repos iter.Seq2[RepositorySnapshot, error]) error
}

// ManifestRecord is what the index keeps about one manifest revision.
type ManifestRecord struct {
	Digest       digest.Digest     `json:"digest"`
	MediaType    string            `json:"mediaType"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Subject      digest.Digest     `json:"subject,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// Tag is a tag name and the manifest it points at.
type Tag struct {
	Name   string
	Digest digest.Digest
}

// RepositorySnapshot is one repository's index content, used to rebuild.
type RepositorySnapshot struct {
	Name      string
	Manifests []ManifestRecord
	Tags      []Tag
}

// Snapshots yields the elements of s, for Index.Replace.
func Snapshots(s []RepositorySnapshot) iter.Seq2[RepositorySnapshot, error] {
	return func(yield func(RepositorySnapshot, error) bool) {
		for _, r := range s {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// TagLocker is implemented by an Index that several berth processes share
// (PostgreSQL). In-process locks cannot keep two processes from interleaving
// the storage write of a tag change with the index write that mirrors it, so
// the registry also holds LockTag around both.
//
// A process can die between the two writes, or the index write can fail,
// leaving storage and index disagreeing about the tag. The index notes each
// change from LockTag until unlock(true); unlock(false) (the change failed)
// releases the lock but keeps the note. LockTag reports unfinished when it
// finds a note left that way or by a holder that died, and the registry then
// re-reads the tag from storage before changing it. UnfinishedTags lists the
// notes, for a sweep at start-up (Registry.RepairTags).
type TagLocker interface {
	LockTag(ctx context.Context, repo, tag string) (unlock func(finished bool), unfinished bool, err error)
	UnfinishedTags(ctx context.Context) ([]RepoTag, error)
}

// RepoTag names a tag of a repository.
type RepoTag struct {
	Repo string
	Tag  string
}
