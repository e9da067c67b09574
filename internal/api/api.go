// Package api serves the OCI Distribution Spec 1.1 and Docker Registry HTTP
// API v2 over a content.Registry: routing, request parsing, headers, ranges
// and the spec's error bodies. It holds no registry state of its own.
package api

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/internal/content"
)

// Handler is the /v2/ API.
type Handler struct {
	reg *content.Registry
	log *slog.Logger
}

// New returns the API handler for reg.
func New(reg *content.Registry, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{reg: reg, log: log}
}

type routeKind int

const (
	routeNone routeKind = iota
	routeManifest
	routeBlob
	routeUploadStart
	routeUpload
	routeTags
	routeReferrers
)

type route struct {
	kind routeKind
	name string
	arg  string // reference, digest or upload id
}

// parseRoute splits "/v2/<name>/<endpoint>" from the end, because names may
// contain "/" and even words like "blobs" or "manifests".
func parseRoute(p string) route {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return route{}
	}
	seg := strings.Split(rest, "/")
	n := len(seg)
	name := func(k int) string { return strings.Join(seg[:n-k], "/") }
	switch {
	case n >= 3 && seg[n-2] == "tags" && seg[n-1] == "list":
		return route{kind: routeTags, name: name(2)}
	case n >= 3 && seg[n-2] == "manifests":
		return route{kind: routeManifest, name: name(2), arg: seg[n-1]}
	case n >= 4 && seg[n-3] == "blobs" && seg[n-2] == "uploads":
		if seg[n-1] == "" {
			return route{kind: routeUploadStart, name: name(3)}
		}
		return route{kind: routeUpload, name: name(3), arg: seg[n-1]}
	case n >= 3 && seg[n-2] == "blobs" && seg[n-1] == "uploads":
		return route{kind: routeUploadStart, name: name(2)}
	case n >= 3 && seg[n-2] == "blobs":
		return route{kind: routeBlob, name: name(2), arg: seg[n-1]}
	case n >= 3 && seg[n-2] == "referrers":
		return route{kind: routeReferrers, name: name(2), arg: seg[n-1]}
	}
	return route{}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	if r.URL.RawPath != "" {
		// Escaped characters have no place in names, references or digests;
		// refusing them keeps one spelling per path.
		writeJSONError(w, http.StatusBadRequest, string(content.CodeNameInvalid), "escaped characters are not allowed in registry paths", nil)
		return
	}
	switch r.URL.Path {
	case "/v2", "/v2/":
		h.methods(w, r, map[string]http.HandlerFunc{http.MethodGet: h.base, http.MethodHead: h.base})
		return
	case "/v2/_catalog":
		h.methods(w, r, map[string]http.HandlerFunc{http.MethodGet: h.catalog})
		return
	}
	rt := parseRoute(r.URL.Path)
	if rt.kind == routeNone {
		writeJSONError(w, http.StatusNotFound, "NOT_FOUND", "no such API endpoint", nil)
		return
	}
	if err := content.ValidateName(rt.name); err != nil {
		h.writeError(w, r, err)
		return
	}
	var m map[string]http.HandlerFunc
	with := func(f func(http.ResponseWriter, *http.Request, route)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { f(w, r, rt) }
	}
	switch rt.kind {
	case routeManifest:
		m = map[string]http.HandlerFunc{
			http.MethodGet: with(h.getManifest), http.MethodHead: with(h.getManifest),
			http.MethodPut: with(h.putManifest), http.MethodDelete: with(h.deleteManifest),
		}
	case routeBlob:
		m = map[string]http.HandlerFunc{
			http.MethodGet: with(h.getBlob), http.MethodHead: with(h.getBlob),
			http.MethodDelete: with(h.deleteBlob),
		}
	case routeUploadStart:
		m = map[string]http.HandlerFunc{http.MethodPost: with(h.startUpload)}
	case routeUpload:
		m = map[string]http.HandlerFunc{
			http.MethodGet: with(h.uploadStatus), http.MethodPatch: with(h.patchUpload),
			http.MethodPut: with(h.finishUpload), http.MethodDelete: with(h.cancelUpload),
		}
	case routeTags:
		m = map[string]http.HandlerFunc{http.MethodGet: with(h.tags)}
	case routeReferrers:
		m = map[string]http.HandlerFunc{http.MethodGet: with(h.referrers)}
	}
	h.methods(w, r, m)
}

func (h *Handler) methods(w http.ResponseWriter, r *http.Request, m map[string]http.HandlerFunc) {
	if f, ok := m[r.Method]; ok {
		f(w, r)
		return
	}
	allowed := make([]string, 0, len(m))
	for k := range m {
		allowed = append(allowed, k)
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeJSONError(w, http.StatusMethodNotAllowed, string(content.CodeUnsupported), "method "+r.Method+" not allowed here", nil)
}

func (h *Handler) base(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write([]byte("{}"))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
