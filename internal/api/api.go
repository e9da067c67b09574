// Package api serves the OCI Distribution Spec 1.1 and Docker Registry HTTP
// API v2 over a content.Registry: routing, request parsing, headers, ranges
// and the spec's error bodies. It holds no registry state of its own.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/logctx"
)

// Handler is the /v2/ API.
type Handler struct {
	reg      *content.Registry
	auth     auth.Authorizer
	log      *slog.Logger
	urlBase  string // prepended to the URLs the API hands out
	redirect bool
	events   EventSink // nil: no notifications
}

// Options configure the API handler.
type Options struct {
	// Authorizer checks every request; nil allows everything.
	Authorizer auth.Authorizer
	// URLBase is prepended to Location and Link URLs: empty for relative
	// URLs ("/v2/..."), a path prefix ("/registry") when served under one,
	// or an absolute base ("https://registry.example.com/registry") from
	// http.host. Relative URLs are right behind any proxy; every client
	// resolves them against the request URL.
	URLBase string
	// RedirectBlobs sends blob downloads to the storage backend's own URL
	// (presigned S3, Swift temp URL) when the driver can make one, as
	// registry:2 does unless storage.redirect.disable is set.
	RedirectBlobs bool
	// Events, if set, is told of every push, pull, mount and delete
	// (notifications); nil costs the requests nothing.
	Events EventSink
	Logger *slog.Logger
}

// New returns the API handler for reg.
func New(reg *content.Registry, opts Options) *Handler {
	h := &Handler{reg: reg, auth: opts.Authorizer, log: opts.Logger, urlBase: strings.TrimSuffix(opts.URLBase, "/"), redirect: opts.RedirectBlobs, events: opts.Events}
	if h.auth == nil {
		h.auth = auth.AllowAll{}
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	return h
}

type routeKind int

const (
	routeNone routeKind = iota
	routeBase
	routeCatalog
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

// routeNames are registry:2's route names, which its metrics use as the
// "handler" label; referrers is berth's (registry:2 has no such endpoint).
var routeNames = [...]string{
	routeBase:        "base",
	routeCatalog:     "catalog",
	routeManifest:    "manifest",
	routeBlob:        "blob",
	routeUploadStart: "blob-upload",
	routeUpload:      "blob-upload-chunk",
	routeTags:        "tags",
	routeReferrers:   "referrers",
}

// RouteName names the API endpoint path p belongs to, with registry:2's
// route names ("base", "manifest", "blob-upload-chunk", ...), or "" if p is
// not an API path. The names are a small fixed set: fit for metrics labels,
// where a repository name or digest would not be.
func RouteName(p string) string {
	switch p {
	case "/v2", "/v2/":
		return routeNames[routeBase]
	case "/v2/_catalog":
		return routeNames[routeCatalog]
	}
	return routeNames[parseRoute(p).kind]
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
		if r, ok := h.authorize(w, r, nil); ok {
			h.dispatch(w, r, route{kind: routeBase})
		}
		return
	case "/v2/_catalog":
		if r, ok := h.authorize(w, r, []auth.Access{auth.Catalog}); ok {
			h.dispatch(w, r, route{kind: routeCatalog})
		}
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
	r, ok := h.authorize(w, r, accessFor(r, rt))
	if !ok {
		return
	}
	h.dispatch(w, r, rt)
}

// endpoint is a handler method as a method expression, so the tables below
// are built once rather than a closure per request.
type endpoint func(h *Handler, w http.ResponseWriter, r *http.Request, rt route)

var endpoints = map[routeKind]map[string]endpoint{
	routeBase:    {http.MethodGet: (*Handler).base, http.MethodHead: (*Handler).base},
	routeCatalog: {http.MethodGet: (*Handler).catalog},
	routeManifest: {
		http.MethodGet: (*Handler).getManifest, http.MethodHead: (*Handler).getManifest,
		http.MethodPut: (*Handler).putManifest, http.MethodDelete: (*Handler).deleteManifest,
	},
	routeBlob: {
		http.MethodGet: (*Handler).getBlob, http.MethodHead: (*Handler).getBlob,
		http.MethodDelete: (*Handler).deleteBlob,
	},
	routeUploadStart: {http.MethodPost: (*Handler).startUpload},
	routeUpload: {
		http.MethodGet: (*Handler).uploadStatus, http.MethodPatch: (*Handler).patchUpload,
		http.MethodPut: (*Handler).finishUpload, http.MethodDelete: (*Handler).cancelUpload,
	},
	routeTags:      {http.MethodGet: (*Handler).tags},
	routeReferrers: {http.MethodGet: (*Handler).referrers},
}

// dispatch calls the endpoint for the request's method, or answers 405
// with the methods the route has.
func (h *Handler) dispatch(w http.ResponseWriter, r *http.Request, rt route) {
	m := endpoints[rt.kind]
	if f, ok := m[r.Method]; ok {
		f(h, w, r, rt)
		return
	}
	allowed := make([]string, 0, len(m))
	for k := range m {
		allowed = append(allowed, k)
	}
	slices.Sort(allowed)
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeJSONError(w, http.StatusMethodNotAllowed, string(content.CodeUnsupported), "method "+r.Method+" not allowed here", nil)
}

func (h *Handler) base(w http.ResponseWriter, r *http.Request, _ route) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write([]byte("{}"))
	}
}

// accessFor is the access a request needs, in token-auth scope terms.
// Uploads need pull as well as push, as in distribution: an upload can
// reveal whether a blob exists.
func accessFor(r *http.Request, rt route) []auth.Access {
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		if rt.kind == routeUpload {
			return []auth.Access{auth.Repository(rt.name, auth.ActionPull, auth.ActionPush)}
		}
		return []auth.Access{auth.Repository(rt.name, auth.ActionPull)}
	case r.Method == http.MethodDelete && rt.kind != routeUpload:
		return []auth.Access{auth.Repository(rt.name, auth.ActionDelete)}
	}
	access := []auth.Access{auth.Repository(rt.name, auth.ActionPull, auth.ActionPush)}
	if from := r.URL.Query().Get("from"); rt.kind == routeUploadStart && from != "" && content.ValidateName(from) == nil {
		access = append(access, auth.Repository(from, auth.ActionPull))
	}
	return access
}

type identityKey struct{}

// authorize runs the Authorizer and answers the request itself when access
// is refused. The identity travels in the request context for listings.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, access []auth.Access) (*http.Request, bool) {
	id, err := h.auth.Authorize(r, access)
	if err != nil {
		var ae *auth.Error
		if !errors.As(err, &ae) {
			h.writeError(w, r, err)
			return r, false
		}
		for k, v := range ae.Header {
			w.Header()[k] = v
		}
		if ae.Challenge != "" {
			w.Header().Set("WWW-Authenticate", ae.Challenge)
		}
		var detail any
		if len(ae.Detail) > 0 {
			d := make([]map[string]string, len(ae.Detail))
			for i, a := range ae.Detail {
				d[i] = map[string]string{"Type": a.Type, "Name": a.Name, "Action": strings.Join(a.Actions, ",")}
			}
			detail = d
		}
		writeJSONError(w, ae.Status, ae.Code, ae.Message, detail)
		return r, false
	}
	if id != nil {
		logctx.SetAccount(r.Context(), id.Account()) // for the access log
	}
	return r.WithContext(context.WithValue(r.Context(), identityKey{}, id)), true
}

func identityOf(r *http.Request) auth.Identity {
	if id, ok := r.Context().Value(identityKey{}).(auth.Identity); ok {
		return id
	}
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
