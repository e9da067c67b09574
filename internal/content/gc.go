package content

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"

	"github.com/opencontainers/go-digest"
)

// GCOptions configure GarbageCollect.
type GCOptions struct {
	// DryRun computes and reports what would be deleted, and deletes
	// nothing (registry:2's --dry-run).
	DryRun bool
	// DeleteUntagged also deletes the manifest revisions no tag of their
	// repository reaches (registry:2's --delete-untagged).
	DeleteUntagged bool
	// Out receives one line per marked and deleted item, in registry:2's
	// words; nil discards them.
	Out io.Writer
}

// GCResult is what a collection deleted, or on a dry run would delete.
type GCResult struct {
	Manifests    []RepoDigest    // revisions deleted, by repository
	Blobs        []digest.Digest // blobs deleted
	Bytes        int64           // their size
	BlobsMarked  int             // blobs kept because a kept manifest needs them
	Repositories int             // repositories in the rebuilt index (0 on a dry run)
}

// RepoDigest names a manifest revision of a repository.
type RepoDigest struct {
	Repo   string
	Digest digest.Digest
}

// GarbageCollect deletes what no kept manifest needs, in three phases:
//
//   - Mark, reading storage only: every manifest revision is kept, or with
//     DeleteUntagged every revision a tag reaches (tagged, a child of a
//     reached index, a referrer or the subject of a reached manifest), and
//     everything a kept manifest references is marked, recursively.
//   - Delete the revisions not kept (their links and tag history entries),
//     then the blobs not marked, then the repositories' links to those
//     blobs. Manifests go first, so a run stopped halfway leaves blobs
//     without manifests, never a manifest without its blobs.
//   - Rebuild the index from storage.
//
// It is offline, like registry:2's: nothing may write to the storage while
// it runs (a blob pushed meanwhile is unmarked and would be deleted), so
// the caller holds the index's lock. Before the first delete the index is
// made stale, so if the run stops early the next start rebuilds it.
// Uploads in progress (_uploads) are never touched.
func (r *Registry) GarbageCollect(ctx context.Context, opts GCOptions) (GCResult, error) {
	if err := r.checkWritable(); err != nil {
		return GCResult{}, fmt.Errorf("gc: %w", err)
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	g := newCollector(r, opts, out)

	var names []string
	if err := r.findRepositories(ctx, reposRoot(), true, &names); err != nil {
		return GCResult{}, fmt.Errorf("gc: list repositories: %w", err)
	}
	slices.Sort(names) // a stable report
	var res GCResult
	var doomed []repoRevisions // revisions to delete, with the tags to clean
	for _, name := range names {
		rr, err := g.markRepository(ctx, name)
		if err != nil {
			return GCResult{}, fmt.Errorf("gc: repository %s: %w", name, err)
		}
		if len(rr.revisions) > 0 {
			doomed = append(doomed, rr)
		}
		for _, d := range rr.revisions {
			res.Manifests = append(res.Manifests, RepoDigest{name, d})
		}
	}
	sizes, err := g.unmarkedBlobs(ctx)
	if err != nil {
		return GCResult{}, fmt.Errorf("gc: list blobs: %w", err)
	}
	for _, b := range sizes {
		res.Blobs = append(res.Blobs, b.digest)
		res.Bytes += b.size
	}
	res.BlobsMarked = len(g.marked)
	fmt.Fprintf(out, "\n%d blobs marked, %d blobs and %d manifests eligible for deletion\n",
		res.BlobsMarked, len(res.Blobs), len(res.Manifests))
	for _, d := range res.Blobs {
		fmt.Fprintf(out, "blob eligible for deletion: %s\n", d)
	}
	if opts.DryRun {
		return res, nil
	}

	if err := r.invalidateIndex(ctx); err != nil {
		return GCResult{}, fmt.Errorf("gc: %w", err)
	}
	for _, rr := range doomed {
		for _, d := range rr.revisions {
			if err := r.deleteRevision(ctx, rr.repo, rr.tags, d); err != nil {
				return GCResult{}, err
			}
		}
	}
	deleted := make(map[digest.Digest]bool, len(res.Blobs))
	for _, d := range res.Blobs {
		if err := r.driver.Delete(ctx, path.Dir(blobDataPath(d))); err != nil && !isNotFound(err) {
			return GCResult{}, fmt.Errorf("gc: delete blob %s: %w", d, err)
		}
		deleted[d] = true
	}
	for _, name := range names {
		if err := r.unlinkBlobs(ctx, name, deleted); err != nil {
			return GCResult{}, fmt.Errorf("gc: repository %s: %w", name, err)
		}
	}
	n, err := r.Rebuild(ctx)
	if err != nil {
		return GCResult{}, fmt.Errorf("gc: storage collected, but %w (the index stays stale and is rebuilt at the next start)", err)
	}
	res.Repositories = n
	return res, nil
}

// collector is one GarbageCollect's mark state.
type collector struct {
	r    *Registry
	opts GCOptions
	out  io.Writer
	refs map[digest.Digest]*manifestRefs // by manifest digest; nil: no content
	// marked holds the blobs to keep, manifest bodies included, each with
	// the first repository that needed it (backups name it in errors).
	marked map[digest.Digest]string
}

func newCollector(r *Registry, opts GCOptions, out io.Writer) *collector {
	return &collector{r: r, opts: opts, out: out,
		refs: make(map[digest.Digest]*manifestRefs), marked: make(map[digest.Digest]string)}
}

func (g *collector) mark(repo string, d digest.Digest) {
	if _, ok := g.marked[d]; !ok {
		g.marked[d] = repo
	}
}

// repoRevisions is a repository's revisions to delete and the tags whose
// history may name them.
type repoRevisions struct {
	repo      string
	tags      []string
	revisions []digest.Digest
}

// markRepository marks everything the repository's kept revisions need and
// returns those it does not keep.
func (g *collector) markRepository(ctx context.Context, name string) (repoRevisions, error) {
	rr := repoRevisions{repo: name}
	revs, corrupt, err := g.r.revisions(ctx, name)
	if err != nil {
		return rr, err
	}
	keep := make(map[digest.Digest]bool, len(revs))
	if g.opts.DeleteUntagged {
		var tagged []digest.Digest
		if rr.tags, tagged, err = g.r.tagTargets(ctx, name); err != nil {
			return rr, err
		}
		if keep, err = g.reachable(ctx, revs, tagged); err != nil {
			return rr, err
		}
	} else {
		for _, d := range revs {
			keep[d] = true
		}
	}
	marked := make(map[digest.Digest]bool) // in this repository, for its report
	for _, d := range corrupt {
		// Never deleted: a repaired link would make it whole again.
		fmt.Fprintf(g.out, "%s: keeping manifest %s: its revision link is corrupt\n", name, d)
		if err := g.markManifest(ctx, name, d, marked); err != nil {
			return rr, err
		}
	}
	for _, d := range revs {
		if !keep[d] {
			fmt.Fprintf(g.out, "%s: manifest eligible for deletion: %s\n", name, d)
			rr.revisions = append(rr.revisions, d)
			continue
		}
		if err := g.markManifest(ctx, name, d, marked); err != nil {
			return rr, err
		}
	}
	return rr, nil
}

// reachable is the set of revisions a tag reaches: the tagged ones, the
// children of a reached index, and the referrers and subject of a reached
// manifest. registry:2 2.8 keeps only tagged revisions, so it deletes the
// per-platform manifests of an untagged-by-platform multi-arch image and
// every signature or SBOM attached by referrers; this does not.
func (g *collector) reachable(ctx context.Context, revs, tagged []digest.Digest) (map[digest.Digest]bool, error) {
	isRev := make(map[digest.Digest]bool, len(revs))
	referrers := make(map[digest.Digest][]digest.Digest)
	for _, d := range revs {
		isRev[d] = true
		refs, err := g.references(ctx, d)
		if err != nil {
			return nil, err
		}
		if refs != nil && refs.subject != "" {
			referrers[refs.subject] = append(referrers[refs.subject], d)
		}
	}
	seen := make(map[digest.Digest]bool)
	queue := slices.Clone(tagged)
	for len(queue) > 0 {
		d := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if seen[d] || !isRev[d] {
			continue
		}
		seen[d] = true
		queue = append(queue, referrers[d]...)
		refs, err := g.references(ctx, d)
		if err != nil {
			return nil, err
		}
		if refs != nil {
			queue = append(queue, refs.children...)
			if refs.subject != "" {
				queue = append(queue, refs.subject)
			}
		}
	}
	return seen, nil
}

// markManifest marks a kept manifest's body and everything it references,
// children recursively (also when a child is not a revision of the
// repository: its blobs are kept rather than guessed about). done holds
// the manifests already marked for repo, so each is reported once.
func (g *collector) markManifest(ctx context.Context, repo string, d digest.Digest, done map[digest.Digest]bool) error {
	if done[d] {
		return nil
	}
	done[d] = true
	fmt.Fprintf(g.out, "%s: marking manifest %s\n", repo, d)
	g.mark(repo, d)
	refs, err := g.references(ctx, d)
	if err != nil || refs == nil {
		return err
	}
	for _, b := range refs.blobs {
		fmt.Fprintf(g.out, "%s: marking blob %s\n", repo, b)
		g.mark(repo, b)
	}
	for _, c := range refs.children {
		if err := g.markManifest(ctx, repo, c, done); err != nil {
			return err
		}
	}
	return nil
}

// manifestRefs is what a stored manifest references.
type manifestRefs struct {
	blobs    []digest.Digest // config, layers: kept with it
	children []digest.Digest // manifests of an index: kept with it
	subject  digest.Digest   // the manifest it refers to, if any
}

// references reads a manifest's references once per run. It returns nil
// when the manifest has no content (a revision link left without its
// blob): nothing to keep for it. A body that is not JSON stops the run,
// since what it needs cannot be known.
func (g *collector) references(ctx context.Context, d digest.Digest) (*manifestRefs, error) {
	if refs, ok := g.refs[d]; ok {
		return refs, nil
	}
	body, err := g.r.driver.GetContent(ctx, blobDataPath(d))
	if isNotFound(err) {
		g.refs[d] = nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", d, err)
	}
	refs, err := storedReferences(body)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	g.refs[d] = refs
	return refs, nil
}

// storedReferences lists every digest a stored manifest names. It reads
// the fields parseManifest validates, but keeps more than PutManifest
// checks for: non-distributable layers (pushed anyway by some clients),
// and the references of documents PutManifest would refuse today but
// registry:2 stored (schema1's fsLayers, descriptors without a media
// type), since deleting what they need would break images that pull today.
func storedReferences(body []byte) (*manifestRefs, error) {
	var doc struct {
		manifestDoc
		FSLayers []struct {
			BlobSum string `json:"blobSum"`
		} `json:"fsLayers"`
	}
	if p, err := parseManifest("", body); err == nil {
		doc.manifestDoc = p.doc
	} else if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("cannot tell what it references: %w", err)
	}
	refs := &manifestRefs{}
	add := func(list *[]digest.Digest, s string) {
		if d, err := ParseDigest(s); err == nil && !slices.Contains(*list, d) {
			*list = append(*list, d)
		}
	}
	if doc.Config != nil {
		add(&refs.blobs, doc.Config.Digest)
	}
	for _, l := range doc.Layers {
		add(&refs.blobs, l.Digest)
	}
	for _, l := range doc.FSLayers {
		add(&refs.blobs, l.BlobSum)
	}
	for _, m := range doc.Manifests {
		add(&refs.children, m.Digest)
	}
	if doc.Subject != nil {
		if d, err := ParseDigest(doc.Subject.Digest); err == nil {
			refs.subject = d
		}
	}
	return refs, nil
}

// revisions lists a repository's manifest revisions, sorted: those with a
// readable link, and apart those whose link is corrupt (registry:2 cannot
// use them either, but what they name may still be wanted). A revision
// without its link is not part of the repository; a link that cannot be
// read fails the listing rather than silently leaving the revision out.
func (r *Registry) revisions(ctx context.Context, name string) (revs, corrupt []digest.Digest, err error) {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		dirs, err := r.driver.List(ctx, path.Join(revisionsRoot(name), string(alg)))
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		slices.Sort(dirs)
		for _, dir := range dirs {
			d := digest.NewDigestFromEncoded(alg, path.Base(dir))
			if d.Validate() != nil {
				continue
			}
			_, err := r.readLink(ctx, revisionLinkPath(name, d))
			switch {
			case err == nil:
				revs = append(revs, d)
			case errors.Is(err, errCorruptLink):
				corrupt = append(corrupt, d)
			case !isNotFound(err):
				return nil, nil, err
			}
		}
	}
	return revs, corrupt, nil
}

// tagTargets lists a repository's tags and the manifests they point at.
// Every tag directory counts, even one whose name berth would refuse: a
// tag that protects a manifest is never second-guessed.
func (r *Registry) tagTargets(ctx context.Context, name string) (tags []string, targets []digest.Digest, err error) {
	dirs, err := r.driver.List(ctx, tagsRoot(name))
	if isNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, dir := range dirs {
		tag := path.Base(dir)
		tags = append(tags, tag)
		d, err := r.readLink(ctx, path.Join(dir, "current", "link"))
		if err != nil {
			if skip, err := r.unusableLink(err); !skip {
				return nil, nil, err
			}
			continue
		}
		targets = append(targets, d)
	}
	return tags, targets, nil
}

// deleteRevision removes a manifest revision (its link and media type
// sidecar) and the entries of tag histories that name it, as registry:2
// does, so no tag can be rolled back to it.
func (r *Registry) deleteRevision(ctx context.Context, repo string, tags []string, d digest.Digest) error {
	for _, tag := range tags {
		p := path.Dir(tagIndexLinkPath(repo, tag, d))
		if err := r.driver.Delete(ctx, p); err != nil && !isNotFound(err) {
			return fmt.Errorf("gc: delete manifest %s@%s: tag %s history: %w", repo, d, tag, err)
		}
	}
	if err := r.driver.Delete(ctx, revisionDir(repo, d)); err != nil && !isNotFound(err) {
		return fmt.Errorf("gc: delete manifest %s@%s: %w", repo, d, err)
	}
	r.records.remove(recordKey{repo, d})
	return nil
}

// blobSize is a blob found in the blob store.
type blobSize struct {
	digest digest.Digest
	size   int64
}

// unmarkedBlobs walks the blob store (blobs/<alg>/<hh>/<hex>) and returns
// the blobs not marked, sorted. Entries that are not a blob of a known
// algorithm are left alone.
func (g *collector) unmarkedBlobs(ctx context.Context) ([]blobSize, error) {
	var out []blobSize
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		prefixes, err := g.r.driver.List(ctx, path.Join(rootPath, "blobs", string(alg)))
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, prefix := range prefixes {
			dirs, err := g.r.driver.List(ctx, prefix)
			if isNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			for _, dir := range dirs {
				d := digest.NewDigestFromEncoded(alg, path.Base(dir))
				if _, marked := g.marked[d]; marked || d.Validate() != nil || path.Dir(blobDataPath(d)) != dir {
					continue
				}
				// A directory left without data is collected too; it
				// frees nothing.
				var size int64
				fi, err := g.r.driver.Stat(ctx, blobDataPath(d))
				switch {
				case err == nil:
					size = fi.Size
				case !isNotFound(err):
					return nil, err
				}
				out = append(out, blobSize{d, size})
			}
		}
	}
	slices.SortFunc(out, func(a, b blobSize) int { return cmpDigest(a.digest, b.digest) })
	return out, nil
}

func cmpDigest(a, b digest.Digest) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// unlinkBlobs removes a repository's links to deleted blobs, so that
// asking the repository for one is a plain "unknown", not a link to
// nothing.
func (r *Registry) unlinkBlobs(ctx context.Context, name string, deleted map[digest.Digest]bool) error {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		dirs, err := r.driver.List(ctx, path.Join(repoPath(name), "_layers", string(alg)))
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		for _, dir := range dirs {
			d := digest.NewDigestFromEncoded(alg, path.Base(dir))
			if !deleted[d] {
				continue
			}
			if err := r.driver.Delete(ctx, layerLinkDir(name, d)); err != nil && !isNotFound(err) {
				return fmt.Errorf("delete link to blob %s: %w", d, err)
			}
		}
	}
	return nil
}

// errCollecting is what the index is told to make it stale.
var errCollecting = errors.New("garbage collection in progress")

// invalidateIndex makes the index stale before storage changes under it:
// an Index whose Replace failed reads as stale until a Replace succeeds,
// so if the collection stops halfway the next start rebuilds the index
// rather than trusting one that names deleted manifests.
func (r *Registry) invalidateIndex(ctx context.Context) error {
	err := r.index.Replace(ctx, func(yield func(RepositorySnapshot, error) bool) {
		yield(RepositorySnapshot{}, errCollecting)
	})
	if errors.Is(err, errCollecting) {
		return nil
	}
	if err == nil {
		err = errors.New("the index accepted an aborted Replace")
	}
	return fmt.Errorf("make the index stale before deleting: %w", err)
}
