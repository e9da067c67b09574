package ui

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/logctx"
)

// Page sizes. A tag row costs a manifest read (usually cached), so tag
// pages are smaller than catalog pages.
const (
	catalogPageSize    = 100
	maxCatalogPageSize = 1000
	tagsPageSize       = 50
	maxTagsPageSize    = 200
	// maxQuery bounds the catalog's name filter: no name is longer.
	maxQuery = content.MaxNameLength
)

type catalogPage struct {
	Query       string
	Repos       []repoRow
	Next, First string
}

type repoRow struct{ Name, Link string }

// catalog lists the repositories the caller may pull, as /v2/_catalog
// does, optionally only those whose name contains q.
func (h *Handler) catalog(w http.ResponseWriter, r *http.Request) {
	id, ok := h.authorize(w, r, []auth.Access{auth.Catalog})
	if !ok {
		return
	}
	n, last, err := pageParams(r, catalogPageSize, maxCatalogPageSize)
	if err != nil {
		h.renderError(w, r, http.StatusBadRequest, "Bad request", err.Error())
		return
	}
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	if len(q) > maxQuery {
		h.renderError(w, r, http.StatusBadRequest, "Bad request", "the filter is longer than any repository name")
		return
	}
	repos, more, err := h.reg.VisibleRepositories(r.Context(), last, n, func(name string) bool {
		return strings.Contains(name, q) && (id == nil || id.Can(name, auth.ActionPull))
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := catalogPage{Query: q, First: firstLink(h.base+"/", r)}
	for _, name := range repos {
		p.Repos = append(p.Repos, repoRow{Name: name, Link: h.repoPath(name)})
	}
	if more && len(repos) > 0 {
		p.Next = nextLink(h.base+"/", r, repos[len(repos)-1])
	}
	h.render(w, r, http.StatusOK, "catalog", h.layout(id, "Repositories", p))
}

type repositoryPage struct {
	Name        string
	Tags        []tagRow
	Next, First string
}

type tagRow struct {
	Tag, Link       string
	Digest          string
	Kind, MediaType string
	Size            string
	Pull            string
}

// repository lists a repository's tags, as /v2/<name>/tags/list does, each
// with what its manifest is.
func (h *Handler) repository(w http.ResponseWriter, r *http.Request, name string) {
	id, ok := h.authorize(w, r, []auth.Access{auth.Repository(name, auth.ActionPull)})
	if !ok {
		return
	}
	n, last, err := pageParams(r, tagsPageSize, maxTagsPageSize)
	if err != nil {
		h.renderError(w, r, http.StatusBadRequest, "Bad request", err.Error())
		return
	}
	tags, more, err := h.reg.Tags(r.Context(), name, last, n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	host := h.pullHost(r)
	p := repositoryPage{Name: name, First: firstLink(h.repoPath(name), r)}
	for _, tag := range tags {
		m, err := h.reg.GetManifest(r.Context(), name, tag)
		if err != nil {
			var ce *content.Error
			if errors.As(err, &ce) && ce.Code == content.CodeManifestUnknown {
				continue // deleted since the listing
			}
			h.fail(w, r, err)
			return
		}
		doc := decodeManifest(m.Body)
		row := tagRow{
			Tag: tag, Link: h.manifestPath(name, tag),
			Digest: string(m.Digest), MediaType: m.MediaType, Kind: kindOf(m.MediaType, doc),
			Pull: "docker pull " + host + "/" + name + ":" + tag,
		}
		switch size, ok := totalSize(row.Kind, doc); {
		case ok:
			row.Size = humanSize(size)
		case row.Kind == kindIndex && doc != nil:
			row.Size = "multi-platform (" + strconv.Itoa(len(doc.Manifests)) + ")"
		}
		p.Tags = append(p.Tags, row)
	}
	if more && len(tags) > 0 {
		p.Next = nextLink(h.repoPath(name), r, tags[len(tags)-1])
	}
	l := h.layout(id, name, p)
	l.Crumbs = []crumb{{Text: name}}
	h.render(w, r, http.StatusOK, "repository", l)
}

type manifestPage struct {
	Name, Ref, RepoLink string
	RefLabel            string
	Digest              string
	MediaType, Kind     string
	ArtifactType        string
	ManifestSize        string
	TotalSize           string
	Pull                []string
	Subject             *childRow
	Config              *configView
	ConfigNote          string
	Layers              []childRow
	Platforms           []childRow
	Referrers           []childRow
	Annotations         []keyValue
}

// childRow is a descriptor the page lists: a layer, an index's manifest,
// a referrer, the subject.
type childRow struct {
	Digest    string
	Link      string // manifests only
	MediaType string
	Type      string // artifactType of referrers
	Platform  string
	Note      string
	Size      string
}

type configView struct {
	Digest, MediaType, Size string
	Platform, Created       string
	Labels                  []keyValue
}

// manifest shows one manifest, as GET /v2/<name>/manifests/<ref> would
// fetch it, with its config, layers or platforms and its referrers.
func (h *Handler) manifest(w http.ResponseWriter, r *http.Request, name, ref string) {
	var err error
	if content.IsDigestReference(ref) {
		_, err = content.ParseDigest(ref)
	} else {
		err = content.ValidateTag(ref)
	}
	if err != nil {
		h.renderError(w, r, http.StatusBadRequest, "Bad reference", err.Error())
		return
	}
	id, ok := h.authorize(w, r, []auth.Access{auth.Repository(name, auth.ActionPull)})
	if !ok {
		return
	}
	ctx := r.Context()
	m, err := h.reg.GetManifest(ctx, name, ref)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	doc := decodeManifest(m.Body)
	host := h.pullHost(r)
	p := manifestPage{
		Name: name, Ref: ref, RepoLink: h.repoPath(name), RefLabel: displayRef(ref),
		Digest: string(m.Digest), MediaType: m.MediaType, Kind: kindOf(m.MediaType, doc),
		ManifestSize: humanSize(m.Size),
	}
	if !content.IsDigestReference(ref) {
		p.Pull = append(p.Pull, "docker pull "+host+"/"+name+":"+ref)
	}
	p.Pull = append(p.Pull, "docker pull "+host+"/"+name+"@"+string(m.Digest))
	if size, ok := totalSize(p.Kind, doc); ok {
		p.TotalSize = humanSize(size)
	}
	if doc != nil {
		p.ArtifactType = doc.ArtifactType
		p.Annotations = sortedPairs(doc.Annotations)
		if s := doc.Subject; s != nil {
			p.Subject = &childRow{Digest: s.Digest, Link: h.digestLink(name, s.Digest), MediaType: s.MediaType, Size: humanSize(s.Size)}
		}
		if c := doc.Config; c != nil {
			p.Config = &configView{Digest: c.Digest, MediaType: c.MediaType, Size: humanSize(c.Size)}
			cfg, err := readConfig(ctx, h.reg, name, c)
			switch {
			case err != nil:
				// The rest of the page is still worth showing.
				logctx.FromContextOr(ctx, h.log).Warn("ui: cannot read image config", "repository", name, "digest", c.Digest, "err", err)
				p.ConfigNote = "The config could not be read."
			case cfg != nil:
				pl := platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
				p.Config.Platform = pl.String()
				p.Config.Created = formatCreated(cfg.Created)
				p.Config.Labels = sortedPairs(cfg.Config.Labels)
			}
		}
		for _, l := range doc.Layers {
			p.Layers = append(p.Layers, childRow{Digest: l.Digest, MediaType: l.MediaType, Size: humanSize(l.Size)})
		}
		for _, c := range doc.Manifests {
			p.Platforms = append(p.Platforms, childRow{
				Digest: c.Digest, Link: h.digestLink(name, c.Digest), MediaType: c.MediaType,
				Platform: c.Platform.String(), Size: humanSize(c.Size),
				// Build attestations sit in indexes as "unknown/unknown".
				Note: c.Annotations["vnd.docker.reference.type"],
			})
		}
	}
	refs, err := h.reg.Referrers(ctx, name, m.Digest, "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, rf := range refs {
		p.Referrers = append(p.Referrers, childRow{
			Digest: string(rf.Digest), Link: h.manifestPath(name, string(rf.Digest)),
			MediaType: rf.MediaType, Type: rf.ArtifactType, Size: humanSize(rf.Size),
		})
	}
	l := h.layout(id, name+displayRef(ref), p)
	l.Crumbs = []crumb{{Text: name, Link: h.repoPath(name)}, {Text: displayRef(ref)}}
	h.render(w, r, http.StatusOK, "manifest", l)
}

// digestLink links a digest from a manifest body to its page, if it is a
// digest berth could serve.
func (h *Handler) digestLink(name, d string) string {
	if _, err := content.ParseDigest(d); err != nil {
		return ""
	}
	return h.manifestPath(name, d)
}

func displayRef(ref string) string {
	if content.IsDigestReference(ref) {
		return "@" + shortDigest(ref)
	}
	return ":" + ref
}
