package ui_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/auth/gate"
	"github.com/berth-registry/berth/internal/auth/token"
	"github.com/berth-registry/berth/internal/server"
)

// seeded is a registry holding an image, a multi-platform index and an
// SBOM artifact referring to the image.
type seeded struct {
	*env
	image, amd, arm, idx, sbom descriptor
	imageTotal                 int64
}

func seed(t *testing.T, e *env) *seeded {
	t.Helper()
	s := &seeded{env: e}
	s.image, s.imageTotal = e.image("library/app", "1.0", "amd64",
		map[string]string{"org.example.note": "<script>alert(1)</script>", "org.opencontainers.image.title": "app"},
		[]byte(strings.Repeat("a", 300)), []byte(strings.Repeat("b", 200)))
	s.amd, _ = e.image("library/app", "", "amd64", nil, []byte("amd64 layer"))
	s.arm, _ = e.image("library/app", "", "arm64", nil, []byte("arm64 layer"))
	s.amd.Platform = map[string]string{"os": "linux", "architecture": "amd64"}
	s.arm.Platform = map[string]string{"os": "linux", "architecture": "arm64", "variant": "v8"}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociIndex, "manifests": []descriptor{s.amd, s.arm}})
	s.idx = descriptor{MediaType: ociIndex, Digest: e.putManifest("library/app", "multi", ociIndex, idx), Size: int64(len(idx))}

	empty := e.pushBlob("library/app", []byte("{}"))
	empty.MediaType = ociEmpty
	sbom, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": ociManifest, "artifactType": "application/spdx+json",
		"config": empty, "layers": []descriptor{empty}, "subject": s.image,
		"annotations": map[string]string{"org.example.comment": "<b>generated</b>"},
	})
	s.sbom = descriptor{MediaType: ociManifest, Digest: digest.FromBytes(sbom), Size: int64(len(sbom))}
	e.putManifest("library/app", string(s.sbom.Digest), ociManifest, sbom)
	return s
}

func short(d digest.Digest) string { return "sha256:" + d.Encoded()[:12] }

func TestPages(t *testing.T) {
	e := start(t, nil, nil)
	s := seed(t, e)
	host := strings.TrimPrefix(e.srv.URL, "http://")

	r := e.do("GET", "/ui/", nil, "", "")
	for k, v := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; style-src 'self'",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := r.header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if r.status != 200 || !has(links(r.body), "/ui/r/library/app") {
		t.Fatalf("catalog: %d\n%s", r.status, r.body)
	}
	if strings.Contains(r.body, "Log in") {
		t.Error("an open registry offers a login")
	}
	// The stylesheet the page links to is served, and nothing else is
	// loaded: no scripts, no other origins.
	var css string
	for _, l := range links(r.body) {
		if strings.Contains(l, ".css") {
			css = l
		}
	}
	if c := e.do("GET", css, nil, "", ""); c.status != 200 || !strings.HasPrefix(c.header.Get("Content-Type"), "text/css") || !strings.Contains(c.body, "font") {
		t.Errorf("stylesheet %q: %d %q", css, c.status, c.header.Get("Content-Type"))
	}
	if strings.Contains(r.body, "<script") || strings.Contains(r.body, "://") {
		t.Error("the page loads something else")
	}

	tags := e.page("/ui/r/library/app")
	for _, want := range []string{
		`href="/ui/r/library/app/m/1.0"`, `href="/ui/r/library/app/m/multi"`,
		short(s.image.Digest), short(s.idx.Digest),
		">image<", ">index<", fmt.Sprintf("%d B", s.imageTotal), "multi-platform (2)",
		"docker pull " + host + "/library/app:1.0", "docker pull " + host + "/library/app:multi",
	} {
		if !strings.Contains(html.UnescapeString(tags), want) {
			t.Errorf("tag list lacks %q", want)
		}
	}

	img := e.page("/ui/r/library/app/m/1.0")
	for _, want := range []string{
		string(s.image.Digest), ociManifest, "linux/amd64", "2024-05-01 12:34 UTC",
		fmt.Sprintf("%d B", s.imageTotal), "300 B", "200 B",
		"org.example.note",
		"docker pull " + host + "/library/app:1.0", "docker pull " + host + "/library/app@" + string(s.image.Digest),
		"application/spdx+json", `href="/ui/r/library/app/m/` + string(s.sbom.Digest) + `"`,
	} {
		if !strings.Contains(html.UnescapeString(img), want) {
			t.Errorf("image page lacks %q", want)
		}
	}
	if !strings.Contains(img, "&lt;script&gt;alert(1)&lt;/script&gt;") || strings.Contains(img, "<script>") {
		t.Error("a label is not escaped")
	}

	idx := e.page("/ui/r/library/app/m/multi")
	for _, want := range []string{
		string(s.idx.Digest), ociIndex, ">index<", "linux/amd64", "linux/arm64/v8",
		`href="/ui/r/library/app/m/` + string(s.amd.Digest) + `"`, `href="/ui/r/library/app/m/` + string(s.arm.Digest) + `"`,
	} {
		if !strings.Contains(html.UnescapeString(idx), want) {
			t.Errorf("index page lacks %q", want)
		}
	}
	// Each platform's link leads to its image.
	if child := e.page("/ui/r/library/app/m/" + string(s.arm.Digest)); !strings.Contains(child, "linux/arm64") || !strings.Contains(child, ">image<") {
		t.Error("arm64 child page")
	}

	sbom := e.page("/ui/r/library/app/m/" + string(s.sbom.Digest))
	for _, want := range []string{
		">artifact<", "application/spdx+json", `href="/ui/r/library/app/m/` + string(s.image.Digest) + `"`,
		"docker pull " + host + "/library/app@" + string(s.sbom.Digest),
	} {
		if !strings.Contains(html.UnescapeString(sbom), want) {
			t.Errorf("artifact page lacks %q", want)
		}
	}
	if !strings.Contains(sbom, "&lt;b&gt;generated&lt;/b&gt;") || strings.Contains(sbom, "<b>") {
		t.Error("an annotation is not escaped")
	}
	if strings.Contains(sbom, ":"+string(s.sbom.Digest)) {
		t.Error("a digest reference shown as a tag")
	}
}

// The host of pull commands is http.host when set, else the host the
// client used, through proxies.
func TestPullHost(t *testing.T) {
	e := start(t, nil, nil)
	e.image("app", "v1", "amd64", nil, []byte("x"))
	if p := e.do("GET", "/ui/r/app", nil, "", "", "Host", "registry.internal:5000"); !strings.Contains(p.body, "docker pull registry.internal:5000/app:v1") {
		t.Errorf("Host: %s", p.body)
	}
	if p := e.do("GET", "/ui/r/app", nil, "", "", "X-Forwarded-Host", "registry.example.com", "X-Forwarded-Proto", "https"); !strings.Contains(p.body, "docker pull registry.example.com/app:v1") {
		t.Errorf("X-Forwarded-Host: %s", p.body)
	}

	e = start(t, nil, func(o *server.Options) { o.Host = "https://registry.example.org"; o.Prefix = "/reg" })
	e.image("app", "v1", "amd64", nil, []byte("x"))
	p := e.page("/reg/ui/r/app")
	if !strings.Contains(p, "docker pull registry.example.org/app:v1") || !strings.Contains(p, `href="/reg/ui/r/app/m/v1"`) {
		t.Errorf("http.host and prefix: %s", p)
	}
}

func TestPagination(t *testing.T) {
	e := start(t, nil, nil)
	var repos []string
	for _, name := range []string{"team/a", "team/b", "other/c", "team/d", "x/team-e"} {
		e.image(name, "latest", "amd64", nil, []byte(name))
		repos = append(repos, name)
	}
	for i := range 5 {
		e.image("many", fmt.Sprintf("t%d", i), "amd64", nil, []byte(fmt.Sprint(i)))
	}
	// walk follows Next links from path, collecting the link texts matching
	// prefix on each page.
	walk := func(path, prefix string) (got []string, pages int) {
		for path != "" {
			p := e.page(path)
			pages++
			for _, l := range links(p) {
				if rest, ok := strings.CutPrefix(l, prefix); ok && !strings.Contains(rest, "?") && rest != "" {
					got = append(got, rest)
				}
			}
			path = nextLink(p)
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
		}
		return got, pages
	}
	all := []string{"many", "other/c", "team/a", "team/b", "team/d", "x/team-e"}
	if got, pages := walk("/ui/?n=2", "/ui/r/"); fmt.Sprint(got) != fmt.Sprint(all) || pages != 3 {
		t.Errorf("catalog pages: %d %q", pages, got)
	}
	if got, pages := walk("/ui/?n=1&q=team", "/ui/r/"); fmt.Sprint(got) != "[team/a team/b team/d x/team-e]" || pages != 4 {
		t.Errorf("filtered catalog: %d %q", pages, got)
	}
	if got, pages := walk("/ui/r/many?n=2", "/ui/r/many/m/"); fmt.Sprint(got) != "[t0 t1 t2 t3 t4]" || pages != 3 {
		t.Errorf("tag pages: %d %q", pages, got)
	}
	// A later page links back to the first.
	if p := e.page("/ui/?n=2&last=many&q=t"); !has(links(p), "/ui/?n=2&q=t") {
		t.Errorf("no first-page link: %q", links(p))
	}
	if p := e.page("/ui/?q=%3Cscript%3E"); !strings.Contains(p, `value="&lt;script&gt;"`) || strings.Contains(p, "<script>") {
		t.Error("the filter is not escaped")
	}
}

// A repository whose name reads like a manifest page ("a/m/b") is linked
// with a trailing slash, which always means the tag list.
func TestAmbiguousName(t *testing.T) {
	e := start(t, nil, nil)
	e.image("a/m/b", "v1", "amd64", nil, []byte("x"))
	e.image("a", "b", "amd64", nil, []byte("y"))
	if !has(links(e.page("/ui/")), "/ui/r/a/m/b/") {
		t.Error("catalog link")
	}
	if p := e.page("/ui/r/a/m/b/"); !strings.Contains(p, `href="/ui/r/a/m/b/m/v1"`) {
		t.Errorf("tag list of a/m/b: %s", p)
	}
	if p := e.page("/ui/r/a/m/b/m/v1"); !strings.Contains(p, ">image<") {
		t.Error("manifest page of a/m/b:v1")
	}
	if p := e.page("/ui/r/a/m/b"); !strings.Contains(p, "docker pull") || !strings.Contains(p, "/a:b") {
		t.Error("manifest b of repository a")
	}
}

// Bad input is refused before anything is read; the UI never writes.
func TestBadInputTouchesNothing(t *testing.T) {
	e := start(t, nil, nil)
	seed(t, e)
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/ui/r/../../etc", 400},
		{"/ui/r/library/../../../etc/passwd", 400},
		{"/ui/r/%2e%2e/%2e%2e/etc", 400},
		{"/ui/r/library%2fapp", 400},
		{"/ui/r/Library/App", 400},
		{"/ui/r/library//app", 400},
		{"/ui/r/_layers/x", 400},
		{"/ui/r/library/app/m/sha256:1234", 400},
		{"/ui/r/library/app/m/md5:d41d8cd98f00b204e9800998ecf8427e", 400},
		{"/ui/r/library/app/m/-tag", 400},
		{"/ui/r/library/app/m/..", 400},
		{"/ui/?n=x", 400},
		{"/ui/?n=-1", 400},
		{"/ui/nowhere", 404},
		{"/ui/r/", 404},
		{"/ui/static/other.css", 404},
	} {
		before := e.driver.count()
		r := e.do("GET", tc.path, nil, "", "")
		if r.status != tc.status || !strings.Contains(r.header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %q, want %d", tc.path, r.status, r.header.Get("Content-Type"), tc.status)
		}
		if ops, _ := e.driver.since(before); len(ops) > 0 {
			t.Errorf("%s touched storage: %q", tc.path, ops)
		}
	}

	// Unknown things are 404 pages; reading them writes nothing.
	before := e.driver.count()
	for _, p := range []string{"/ui/r/no/such", "/ui/r/library/app/m/nosuchtag", "/ui/r/library/app/m/sha256:" + strings.Repeat("0", 64)} {
		if r := e.do("GET", p, nil, "", ""); r.status != 404 || !strings.Contains(r.body, "Not found") {
			t.Errorf("%s: %d", p, r.status)
		}
	}
	for _, p := range []string{"/ui/", "/ui/r/library/app", "/ui/r/library/app/m/1.0", "/ui/r/library/app/m/multi"} {
		e.page(p)
	}
	ops, _ := e.driver.since(before)
	for _, op := range ops {
		if !strings.HasPrefix(op, "get ") && !strings.HasPrefix(op, "stat ") && !strings.HasPrefix(op, "read ") && !strings.HasPrefix(op, "list ") {
			t.Errorf("the UI wrote: %s", op)
		}
	}
}

func TestMethods(t *testing.T) {
	e := start(t, nil, nil)
	seed(t, e)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		for _, p := range []string{"/ui/", "/ui/r/library/app", "/ui/r/library/app/m/1.0", "/ui/login"} {
			before := e.driver.count()
			r := e.do(m, p, []byte("x"), "", "")
			if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q", m, p, r.status, r.header.Get("Allow"))
			}
			if ops, _ := e.driver.since(before); len(ops) > 0 {
				t.Errorf("%s %s touched storage: %q", m, p, ops)
			}
		}
	}
	if r := e.do("HEAD", "/ui/r/library/app", nil, "", ""); r.status != 200 || r.body != "" {
		t.Errorf("HEAD: %d %q", r.status, r.body)
	}
}

// The UI's root without its slash is sent to it, relative to the request
// so that a prefix is kept.
func TestRedirectToRoot(t *testing.T) {
	e := start(t, nil, func(o *server.Options) { o.Prefix = "/registry" })
	r := e.do("GET", "/registry/ui?q=x", nil, "", "")
	if r.status != http.StatusMovedPermanently || r.header.Get("Location") != "ui/?q=x" {
		t.Fatalf("%d %q", r.status, r.header.Get("Location"))
	}
	u, _ := url.Parse(e.srv.URL + "/registry/ui?q=x")
	if got := u.ResolveReference(&url.URL{Path: "ui/", RawQuery: "q=x"}).Path; got != "/registry/ui/" {
		t.Error(got)
	}
	e.page("/registry/ui/")
}

const basicPolicy = `
version: 0.1
storage:
  inmemory: {}
auth:
  htpasswd:
    realm: Test Realm
    path: HTPASSWD
berth:
  auth:
    ratelimit: {disabled: true}
    policy:
      - account: admin
        actions: ["*"]
      - account: teamuser
        repository: ["team/*"]
        actions: [pull]
`

// With Basic auth and no anonymous access, the UI asks browsers to log
// in, shows each user only what they may pull, and refuses what the API
// refuses, with the same status.
func TestBasicAuth(t *testing.T) {
	e := start(t, authFromConfig(t, basicPolicy), nil)
	e.user, e.pass = "admin", "admin-pw"
	for _, name := range []string{"team/app", "team/web", "other/app"} {
		e.image(name, "v1", "amd64", nil, []byte(name))
	}

	r := e.do("GET", "/ui/", nil, "", "")
	if r.status != 401 || r.header.Get("WWW-Authenticate") != `Basic realm="Test Realm"` || !strings.Contains(r.body, "Log in") {
		t.Fatalf("anonymous: %d %q\n%s", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}
	if r := e.do("GET", "/ui/", nil, "teamuser", "wrong"); r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("wrong password: %d", r.status)
	}

	p := e.pageAs("/ui/", "teamuser", "teamuser-pw")
	if l := links(p); !has(l, "/ui/r/team/app") || !has(l, "/ui/r/team/web") || has(l, "/ui/r/other/app") || strings.Contains(p, "other/app") {
		t.Errorf("teamuser's catalog: %q", l)
	}
	if !strings.Contains(p, "teamuser") {
		t.Error("the page does not say who is logged in")
	}
	if l := links(e.pageAs("/ui/", "admin", "admin-pw")); !has(l, "/ui/r/other/app") {
		t.Errorf("admin's catalog: %q", l)
	}

	// Each page gets what its API equivalent gets.
	for _, c := range []struct{ user, ui, api string }{
		{"", "/ui/", "/v2/_catalog"},
		{"", "/ui/r/team/app", "/v2/team/app/tags/list"},
		{"teamuser", "/ui/r/team/app", "/v2/team/app/tags/list"},
		{"teamuser", "/ui/r/other/app", "/v2/other/app/tags/list"},
		{"teamuser", "/ui/r/other/app/m/v1", "/v2/other/app/manifests/v1"},
		{"teamuser", "/ui/r/other/nothing", "/v2/other/nothing/tags/list"},
		{"teamuser", "/ui/r/team/app/m/v1", "/v2/team/app/manifests/v1"},
		{"teamuser", "/ui/r/team/nothing", "/v2/team/nothing/tags/list"},
	} {
		pass := c.user + "-pw"
		ui, api := e.do("GET", c.ui, nil, c.user, pass), e.do("GET", c.api, nil, c.user, pass)
		if ui.status != api.status || ui.header.Get("WWW-Authenticate") != api.header.Get("WWW-Authenticate") {
			t.Errorf("%s as %q: UI %d %q, API %d %q", c.ui, c.user, ui.status, ui.header.Get("WWW-Authenticate"), api.status, api.header.Get("WWW-Authenticate"))
		}
	}
	if r := e.do("GET", "/ui/r/other/app", nil, "teamuser", "teamuser-pw"); r.status != 403 || strings.Contains(r.body, "v1") {
		t.Errorf("refused page: %d\n%s", r.status, r.body)
	}
}

const anonymousPull = `
version: 0.1
storage:
  inmemory: {}
berth:
  auth:
    htpasswd:
      - path: HTPASSWD
    ratelimit: {disabled: true}
    policy:
      - account: admin
        actions: ["*"]
      - anonymous: true
        repository: ["public/*"]
        actions: [pull]
`

// With anonymous pulls (berth's token service), pages open to anonymous
// callers render without credentials, and the rest ask for a Basic login,
// which the token service accepts: a browser cannot answer a Bearer
// challenge.
func TestAnonymousPull(t *testing.T) {
	e := start(t, authFromConfig(t, anonymousPull), nil)
	e.user, e.pass = "admin", "admin-pw"
	e.image("public/app", "v1", "amd64", nil, []byte("pub"))
	e.image("private/app", "v1", "amd64", nil, []byte("priv"))

	p := e.page("/ui/")
	if l := links(p); !has(l, "/ui/r/public/app") || has(l, "/ui/r/private/app") || !has(l, "/ui/login") {
		t.Errorf("anonymous catalog: %q", l)
	}
	e.page("/ui/r/public/app")
	e.page("/ui/r/public/app/m/v1")

	api := e.do("GET", "/v2/private/app/tags/list", nil, "", "")
	r := e.do("GET", "/ui/r/private/app", nil, "", "")
	if api.status != 401 || !strings.HasPrefix(api.header.Get("WWW-Authenticate"), "Bearer ") {
		t.Fatalf("API: %d %q", api.status, api.header.Get("WWW-Authenticate"))
	}
	if r.status != 401 || r.header.Get("WWW-Authenticate") != `Basic realm="`+gate.DefaultBasicRealm+`"` {
		t.Errorf("UI: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}

	// The login page always asks, then sends a logged-in browser back.
	if r := e.do("GET", "/ui/login", nil, "", ""); r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("login: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	if r := e.do("GET", "/ui/login", nil, "admin", "admin-pw"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/" {
		t.Errorf("login with credentials: %d %q", r.status, r.header.Get("Location"))
	}
	p = e.pageAs("/ui/", "admin", "admin-pw")
	if l := links(p); !has(l, "/ui/r/private/app") || has(l, "/ui/login") {
		t.Errorf("admin's catalog: %q", l)
	}
	e.pageAs("/ui/r/private/app/m/v1", "admin", "admin-pw")
}

// With tokens from an external issuer a browser cannot log in: the page
// says so, with the API's own challenge.
func TestExternalTokens(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := token.NewSigner(key, "issuer")
	ver, err := token.NewVerifier(token.VerifierOptions{Issuer: "issuer", Service: "registry",
		Keys: map[string]crypto.PublicKey{signer.KeyID(): signer.PublicKey()}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Options{Mode: gate.External, Verifier: ver, Service: "registry", Realm: "https://auth.example.com/token"})
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, g, nil)
	r := e.do("GET", "/ui/", nil, "", "")
	api := e.do("GET", "/v2/_catalog", nil, "", "")
	if r.status != 401 || r.header.Get("WWW-Authenticate") != api.header.Get("WWW-Authenticate") ||
		!strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer realm="https://auth.example.com/token"`) {
		t.Errorf("%d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	if !strings.Contains(r.body, "cannot log in") || strings.Contains(r.body, `href="/ui/login"`) {
		t.Errorf("page:\n%s", r.body)
	}
}
