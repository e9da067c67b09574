package content

import (
	"context"

	"github.com/opencontainers/go-digest"
)

// MaxPageSize caps n in tag and catalog listings so one request cannot ask
// for an unbounded response.
const MaxPageSize = 10000

func clampPage(n int) int {
	if n < 0 || n > MaxPageSize {
		return MaxPageSize
	}
	return n
}

// Tags lists a repository's tags in lexical order after last, at most n
// (n < 0: the server's maximum page). more reports whether tags remain.
func (r *Registry) Tags(ctx context.Context, repo, last string, n int) (tags []string, more bool, err error) {
	if err := ValidateName(repo); err != nil {
		return nil, false, err
	}
	if err := r.waitIndex(ctx); err != nil {
		return nil, false, err
	}
	ok, err := r.index.HasRepository(ctx, repo)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, newError(CodeNameUnknown, "repository %s not known to registry", repo)
	}
	n = clampPage(n)
	list, err := r.index.Tags(ctx, repo, last, n+1)
	if err != nil {
		return nil, false, err
	}
	if len(list) > n {
		list, more = list[:n], true
	}
	tags = make([]string, len(list))
	for i, t := range list {
		tags[i] = t.Name
	}
	return tags, more, nil
}

// Repositories lists repository names in lexical order after last, at most
// n (n < 0: the server's maximum page).
func (r *Registry) Repositories(ctx context.Context, last string, n int) (repos []string, more bool, err error) {
	if err := r.waitIndex(ctx); err != nil {
		return nil, false, err
	}
	n = clampPage(n)
	repos, err = r.index.Repositories(ctx, last, n+1)
	if err != nil {
		return nil, false, err
	}
	if len(repos) > n {
		repos, more = repos[:n], true
	}
	return repos, more, nil
}

// VisibleRepositories lists, like Repositories, the repositories after
// last for which visible reports true, at most n (n < 0: the server's
// maximum page). It pages through the catalog until the page is full, so a
// caller who may see only a few repositories still gets full pages, and a
// listing never reveals names it should not. more reports whether visible
// repositories remain.
func (r *Registry) VisibleRepositories(ctx context.Context, last string, n int, visible func(name string) bool) (repos []string, more bool, err error) {
	want := n
	if want < 0 {
		want = MaxPageSize
	}
	out := []string{}
	if want == 0 {
		return out, false, nil
	}
	// Collect one visible repository beyond the page: its presence is the
	// "more" answer. Each round asks only for what is still missing, so a
	// caller who sees everything is served in a single index query.
	for len(out) <= want {
		page, more, err := r.Repositories(ctx, last, want+1-len(out))
		if err != nil {
			return nil, false, err
		}
		for _, name := range page {
			if visible(name) {
				out = append(out, name)
			}
		}
		if !more || len(page) == 0 {
			break
		}
		last = page[len(page)-1]
	}
	if len(out) > want {
		return out[:want], true, nil
	}
	return out, false, nil
}

// Referrer describes a manifest that refers to another through its subject.
type Referrer struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// Referrers lists the manifests in repo whose subject is d, optionally only
// those of one artifact type. An unknown subject has no referrers; that is
// not an error.
func (r *Registry) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]Referrer, error) {
	if err := ValidateName(repo); err != nil {
		return nil, err
	}
	if err := r.waitIndex(ctx); err != nil {
		return nil, err
	}
	recs, err := r.index.Referrers(ctx, repo, d)
	if err != nil {
		return nil, err
	}
	out := make([]Referrer, 0, len(recs))
	for _, rec := range recs {
		if artifactType != "" && rec.ArtifactType != artifactType {
			continue
		}
		out = append(out, Referrer{
			MediaType:    rec.MediaType,
			Digest:       rec.Digest,
			Size:         rec.Size,
			ArtifactType: rec.ArtifactType,
			Annotations:  rec.Annotations,
		})
	}
	return out, nil
}
