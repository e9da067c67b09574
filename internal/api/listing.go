package api

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/content"
)

// pageParams reads the n and last query parameters; n < 0 means "not given".
func pageParams(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	n = -1
	if s := q.Get("n"); s != "" {
		v, perr := strconv.Atoi(s)
		if perr != nil || v < 0 {
			// distribution's code for this; the OCI spec names none.
			return 0, "", errorf("PAGINATION_NUMBER_INVALID", "n must be a non-negative integer")
		}
		n = v
	}
	return n, q.Get("last"), nil
}

// setNextLink adds the RFC 5988 Link header the spec uses for pagination.
func setNextLink(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{}
	if n >= 0 {
		q.Set("n", strconv.Itoa(n))
	}
	q.Set("last", last)
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

func (h *Handler) tags(w http.ResponseWriter, r *http.Request, rt route) {
	n, last, err := pageParams(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	tags, more, err := h.reg.Tags(r.Context(), rt.name, last, n)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if more && len(tags) > 0 {
		setNextLink(w, h.urlBase+"/v2/"+rt.name+"/tags/list", n, tags[len(tags)-1])
	}
	writeJSON(w, http.StatusOK, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.name, tags})
}

func (h *Handler) catalog(w http.ResponseWriter, r *http.Request, _ route) {
	n, last, err := pageParams(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	repos, more, err := h.visibleRepositories(r, last, n)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if more && len(repos) > 0 {
		setNextLink(w, h.urlBase+"/v2/_catalog", n, repos[len(repos)-1])
	}
	writeJSON(w, http.StatusOK, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

// visibleRepositories pages through the catalog keeping only repositories
// the caller may pull, so a listing never reveals names it should not.
func (h *Handler) visibleRepositories(r *http.Request, last string, n int) ([]string, bool, error) {
	id := identityOf(r)
	return h.reg.VisibleRepositories(r.Context(), last, n, func(name string) bool {
		return id == nil || id.Can(name, auth.ActionPull)
	})
}

func (h *Handler) referrers(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := content.ParseDigest(rt.arg)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	artifactType := r.URL.Query().Get("artifactType")
	refs, err := h.reg.Referrers(r.Context(), rt.name, d, artifactType)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if artifactType != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	writeJSON(w, http.StatusOK, content.MediaTypeOCIIndex, struct {
		SchemaVersion int                `json:"schemaVersion"`
		MediaType     string             `json:"mediaType"`
		Manifests     []content.Referrer `json:"manifests"`
	}{2, content.MediaTypeOCIIndex, refs})
}
