// Package ui is berth's read-only web UI: server-rendered pages listing
// repositories, their tags and manifests. Each page asks the same
// auth.Authorizer the API uses for the access the equivalent API call
// needs, so a browser sees exactly what `docker pull` could fetch. It never
// changes anything.
package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/forwarded"
	"github.com/berth-registry/berth/internal/logctx"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS []byte

// cssVersion changes with the stylesheet, so its URL can be cached long.
var cssVersion = func() string {
	sum := sha256.Sum256(styleCSS)
	return hex.EncodeToString(sum[:6])
}()

var pages = map[string]*template.Template{}

func init() {
	funcs := template.FuncMap{"size": humanSize, "short": shortDigest}
	for _, name := range []string{"catalog", "repository", "manifest", "error"} {
		pages[name] = template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
}

// Options configure the UI.
type Options struct {
	Registry *content.Registry
	// Authorizer decides every page; nil allows everything.
	Authorizer auth.Authorizer
	// Base is the UI's path as clients see it (http.prefix + "/ui"); links
	// are built on it.
	Base string
	// Host is http.host, the registry's external URL; empty derives the
	// host of pull commands from the request.
	Host   string
	Logger *slog.Logger
}

// Handler serves the UI. It expects paths relative to the UI's root ("/",
// "/r/<name>", ...): the server strips Base before calling it.
type Handler struct {
	reg  *content.Registry
	auth auth.Authorizer
	base string
	host string
	log  *slog.Logger
	// basicRealm, if set, is the realm of the Basic challenge the UI sends
	// in place of the authorizer's Bearer challenge (see basicRealmer).
	basicRealm string
}

// basicRealmer is implemented by authorizers that accept Basic credentials
// even where they challenge for a Bearer token (berth's token service). A
// browser can answer only a Basic challenge, so the UI sends one instead:
// the credentials and the decision are the API's own.
type basicRealmer interface {
	BasicRealm() string
}

// New returns the UI handler.
func New(opts Options) *Handler {
	h := &Handler{reg: opts.Registry, auth: opts.Authorizer, base: strings.TrimSuffix(opts.Base, "/"), host: opts.Host, log: opts.Logger}
	if h.auth == nil {
		h.auth = auth.AllowAll{}
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if br, ok := h.auth.(basicRealmer); ok {
		h.basicRealm = br.BasicRealm()
	}
	return h
}

type routeKind int

const (
	routeNone routeKind = iota
	routeCatalog
	routeRepository
	routeManifest
	routeLogin
	routeStyle
)

type route struct {
	kind routeKind
	name string
	ref  string
}

// parseRoute maps a path below the UI's root to a page. Repository names
// contain "/", so the manifest page's "/m/<ref>" is recognised from the
// end, as the API does. A repository whose name has "m" as its last but
// one component ("a/m/b") would read as a manifest page; its tag list is
// reachable with a trailing slash ("/r/a/m/b/"), which always means the
// tag list (tagsPath builds such links).
func parseRoute(p string) route {
	switch p {
	case "/", "":
		return route{kind: routeCatalog}
	case "/login":
		return route{kind: routeLogin}
	case "/static/style.css":
		return route{kind: routeStyle}
	}
	rest, ok := strings.CutPrefix(p, "/r/")
	if !ok || rest == "" {
		return route{}
	}
	if name, ok := strings.CutSuffix(rest, "/"); ok {
		return route{kind: routeRepository, name: name}
	}
	seg := strings.Split(rest, "/")
	if n := len(seg); n >= 3 && seg[n-2] == "m" {
		return route{kind: routeManifest, name: strings.Join(seg[:n-2], "/"), ref: seg[n-1]}
	}
	return route{kind: routeRepository, name: rest}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		h.renderError(w, r, http.StatusMethodNotAllowed, "Method not allowed", "This is a read-only view of the registry.")
		return
	}
	if r.URL.RawPath != "" {
		// As in the API: escaped characters have no place in names or
		// references, and refusing them keeps one spelling per page.
		h.renderError(w, r, http.StatusBadRequest, "Bad request", "Escaped characters are not allowed in registry paths.")
		return
	}
	rt := parseRoute(r.URL.Path)
	switch rt.kind {
	case routeNone:
		h.renderError(w, r, http.StatusNotFound, "Not found", "There is no such page.")
	case routeStyle:
		hdr.Set("Content-Type", "text/css; charset=utf-8")
		hdr.Set("Cache-Control", "public, max-age=86400")
		w.Write(styleCSS)
	case routeLogin:
		h.login(w, r)
	case routeCatalog:
		h.catalog(w, r)
	default:
		if err := content.ValidateName(rt.name); err != nil {
			h.renderError(w, r, http.StatusBadRequest, "Bad repository name", err.Error())
			return
		}
		if rt.kind == routeRepository {
			h.repository(w, r, rt.name)
		} else {
			h.manifest(w, r, rt.name, rt.ref)
		}
	}
}

// authorize asks the authorizer for access and answers the request itself
// when it is refused, as the API would: same status, same challenge (a
// Basic one where the authorizer takes Basic credentials too).
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, access []auth.Access) (auth.Identity, bool) {
	id, err := h.auth.Authorize(r, access)
	if err == nil {
		if id != nil {
			logctx.SetAccount(r.Context(), id.Account()) // for the access log
		}
		return id, true
	}
	var ae *auth.Error
	if !errors.As(err, &ae) {
		h.fail(w, r, err)
		return nil, false
	}
	for k, v := range ae.Header {
		w.Header()[k] = v
	}
	title, msg := http.StatusText(ae.Status), ae.Message
	switch ae.Status {
	case http.StatusUnauthorized:
		title = "Login required"
		challenge := ae.Challenge
		switch {
		case h.basicRealm != "":
			challenge = `Basic realm="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(h.basicRealm) + `"`
			msg = "Log in with your registry user name and password (or a robot token) to see this page."
		case strings.HasPrefix(challenge, "Bearer"):
			// Tokens from an external issuer: a browser has no way to get
			// one. The challenge stays what the API sends.
			msg = "This registry accepts only tokens from its external token service (auth.token), which a web browser cannot log in to. Use docker, podman or another registry client; pages open to anonymous callers still show here."
		}
		if challenge != "" {
			w.Header().Set("WWW-Authenticate", challenge)
		}
	case http.StatusForbidden:
		title = "Access denied"
		msg = "Your account may not see this."
	}
	h.renderError(w, r, ae.Status, title, msg)
	return nil, false
}

// fail answers an error from the registry: 404 for what does not exist,
// 400 for what cannot, 500 (logged, without detail) for anything else.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ce *content.Error
	if errors.As(err, &ce) {
		switch ce.Code {
		case content.CodeNameUnknown, content.CodeManifestUnknown, content.CodeBlobUnknown:
			h.renderError(w, r, http.StatusNotFound, "Not found", ce.Message)
			return
		case content.CodeNameInvalid, content.CodeTagInvalid, content.CodeDigestInvalid:
			h.renderError(w, r, http.StatusBadRequest, "Bad request", ce.Message)
			return
		}
	}
	if errors.Is(err, context.Canceled) {
		w.WriteHeader(499) // the client went away; only the access log sees this
		return
	}
	logctx.FromContextOr(r.Context(), h.log).Error("ui page failed", "path", r.URL.Path, "err", err)
	h.renderError(w, r, http.StatusInternalServerError, "Internal error", "The page could not be built; the server log says why.")
}

// login is the UI's "/v2/": it always asks an anonymous caller to log in
// (the authorizer challenges requests that need no access), so that a
// browser sends credentials from then on, and sends a logged-in one back to
// the repository list.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.authorize(w, r, nil); !ok {
		return
	}
	http.Redirect(w, r, h.base+"/", http.StatusSeeOther)
}

// layout is what every page shows around its own content.
type layout struct {
	Title   string
	Base    string
	CSS     string
	Account string
	Login   string // the login link, for anonymous callers who could log in
	Crumbs  []crumb
	Body    any
}

type crumb struct{ Text, Link string }

func (h *Handler) layout(id auth.Identity, title string, body any) layout {
	l := layout{Title: title, Base: h.base, CSS: h.base + "/static/style.css?v=" + cssVersion, Body: body}
	if id != nil {
		l.Account = id.Account()
	}
	if l.Account == "" && h.basicRealm != "" {
		l.Login = h.base + "/login"
	}
	return l
}

// render writes a page, built in full first so that a template failure is
// a clean 500 rather than half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page string, l layout) {
	var buf bytes.Buffer
	if err := pages[page].ExecuteTemplate(&buf, "layout", l); err != nil {
		logctx.FromContextOr(r.Context(), h.log).Error("ui template failed", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	// Pages may show what only this caller may see: keep them out of
	// shared caches and the browser's disk.
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type errorPage struct {
	Status  int
	Message string
}

func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	l := h.layout(nil, title, errorPage{Status: status, Message: msg})
	// The caller is unknown here: a 401 already makes the browser ask for
	// credentials, and a login link on a 403 would mislead.
	l.Login = ""
	h.render(w, r, status, "error", l)
}

// repoPath is the link to a repository's tag list; see parseRoute for the
// trailing slash.
func (h *Handler) repoPath(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 && strings.HasSuffix(name[:i], "/m") {
		return h.base + "/r/" + name + "/"
	}
	return h.base + "/r/" + name
}

func (h *Handler) manifestPath(name, ref string) string {
	return h.base + "/r/" + name + "/m/" + ref
}

// pullHost is the registry's host as clients name it in image references:
// http.host's, else the one the request came to (through any proxy).
func (h *Handler) pullHost(r *http.Request) string {
	u, err := url.Parse(forwarded.ExternalURL(r, h.host))
	if err != nil || u.Host == "" {
		return r.Host
	}
	return u.Host
}

// pageParams reads n and last as the API does; n is clamped to max and
// defaults to def.
func pageParams(r *http.Request, def, max int) (n int, last string, err error) {
	q := r.URL.Query()
	n = def
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return 0, "", errors.New("n must be a positive integer")
		}
		n = min(v, max)
	}
	return n, q.Get("last"), nil
}

// nextLink is the link to the page after last, keeping the other query
// parameters.
func nextLink(path string, r *http.Request, last string) string {
	q := url.Values{}
	for _, k := range []string{"n", "q"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	q.Set("last", last)
	return path + "?" + q.Encode()
}

// firstLink is the link to the first page, when this is not it.
func firstLink(path string, r *http.Request) string {
	if r.URL.Query().Get("last") == "" {
		return ""
	}
	q := url.Values{}
	for _, k := range []string{"n", "q"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
