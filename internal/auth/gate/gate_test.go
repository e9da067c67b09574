package gate

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/testlog"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/htpasswd"
	"github.com/berth-registry/berth/internal/auth/policy"
	"github.com/berth-registry/berth/internal/auth/ratelimit"
	"github.com/berth-registry/berth/internal/auth/robot"
	"github.com/berth-registry/berth/internal/auth/token"
)

type fixture struct {
	t      *testing.T
	dir    string
	gate   *Gate
	signer *token.Signer
	logs   *testlog.Buffer
	files  map[string]string
	robots *robot.Store
}

func writeHtpasswd(t *testing.T, path string, users map[string]string) {
	t.Helper()
	var b strings.Builder
	for u, p := range users {
		l, err := htpasswd.Line(u, p, bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(l)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// newFixture builds a gate over htpasswd groups "customers" and "admins"
// plus a robot store.
func newFixture(t *testing.T, mode Mode, rules []policy.Rule, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), logs: &testlog.Buffer{}, files: map[string]string{}}
	f.files["customers"] = filepath.Join(f.dir, "customers.htpasswd")
	f.files["admins"] = filepath.Join(f.dir, "admins.htpasswd")
	writeHtpasswd(t, f.files["customers"], map[string]string{"foobar": "abc123", "alice": "alicepw"})
	writeHtpasswd(t, f.files["admins"], map[string]string{"owner": "ownerpw"})
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	set, err := htpasswd.New([]htpasswd.FileSpec{{Path: f.files["customers"], Group: "customers"}, {Path: f.files["admins"], Group: "admins"}},
		htpasswd.Options{ReloadInterval: time.Nanosecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	f.robots, err = robot.Open(filepath.Join(f.dir, "tokens.json"), robot.Options{ReloadInterval: time.Nanosecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var pol *policy.Policy
	if rules != nil {
		pol, err = policy.New(rules)
		if err != nil {
			t.Fatal(err)
		}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.signer, _ = token.NewSigner(key, "berth-test")
	ver, err := token.NewVerifier(token.VerifierOptions{Issuer: "berth-test", Service: "registry.test",
		Keys: map[string]crypto.PublicKey{f.signer.KeyID(): f.signer.PublicKey()}})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Mode:     mode,
		Sources:  auth.Chain{f.robots, set},
		Policy:   pol,
		Service:  "registry.test",
		Signer:   f.signer,
		Verifier: ver,
		Limiter:  ratelimit.New(ratelimit.Options{Delay: -1, MaxFailures: 5, AccountMaxFailures: 5}),
		Logger:   log,
	}
	if mode == Basic {
		o.Realm = "Registry Realm"
	}
	if mod != nil {
		mod(&o)
	}
	f.gate, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, secret := range []string{"abc123", "alicepw", "ownerpw", "berth_", "eyJ"} {
			if strings.Contains(f.logs.String(), secret) {
				t.Errorf("the log contains %q:\n%s", secret, f.logs.String())
			}
		}
	})
	return f
}

type req struct {
	user, pass string
	bearer     string
	header     string // raw Authorization
	remote     string
}

func (f *fixture) request(method, target string, q req) *http.Request {
	r := httptest.NewRequest(method, "http://registry.test:5000"+target, nil)
	switch {
	case q.header != "":
		r.Header.Set("Authorization", q.header)
	case q.bearer != "":
		r.Header.Set("Authorization", "Bearer "+q.bearer)
	case q.user != "":
		r.SetBasicAuth(q.user, q.pass)
	}
	if q.remote != "" {
		r.RemoteAddr = q.remote
	}
	return r
}

// authorize returns the HTTP status the API would answer with (200 when
// allowed), and the refusal.
func (f *fixture) authorize(q req, access ...auth.Access) (int, *auth.Error) {
	id, err := f.gate.Authorize(f.request("GET", "/v2/", q), access)
	if err == nil {
		if id == nil {
			f.t.Fatal("nil identity without error")
		}
		return 200, nil
	}
	var ae *auth.Error
	if !errors.As(err, &ae) {
		f.t.Fatalf("not an auth.Error: %v", err)
	}
	return ae.Status, ae
}

// getToken calls the token endpoint with GET.
func (f *fixture) getToken(q req, params url.Values) (int, tokenResponse, http.Header) {
	r := f.request("GET", "/auth/token?"+params.Encode(), q)
	w := httptest.NewRecorder()
	f.gate.TokenHandler().ServeHTTP(w, r)
	var tr tokenResponse
	json.Unmarshal(w.Body.Bytes(), &tr)
	return w.Code, tr, w.Header()
}

func (f *fixture) postToken(form url.Values) (int, tokenResponse) {
	r := httptest.NewRequest("POST", "http://registry.test:5000/auth/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	f.gate.TokenHandler().ServeHTTP(w, r)
	var tr tokenResponse
	json.Unmarshal(w.Body.Bytes(), &tr)
	return w.Code, tr
}

var (
	pull     = auth.Repository("example/faktory", auth.ActionPull)
	pullPush = auth.Repository("example/faktory", auth.ActionPull, auth.ActionPush)
	del      = auth.Repository("example/faktory", auth.ActionDelete)
)

// registry:2's auth.htpasswd: any valid user may do anything.
func TestBasicCompat(t *testing.T) {
	f := newFixture(t, Basic, nil, nil)
	tests := []struct {
		name   string
		q      req
		access []auth.Access
		status int
	}{
		{"base, anonymous", req{}, nil, 401},
		{"base, valid", req{user: "foobar", pass: "abc123"}, nil, 200},
		{"base, wrong password", req{user: "foobar", pass: "nope"}, nil, 401},
		{"pull, anonymous", req{}, []auth.Access{pull}, 401},
		{"pull, valid", req{user: "alice", pass: "alicepw"}, []auth.Access{pull}, 200},
		{"push, valid", req{user: "alice", pass: "alicepw"}, []auth.Access{pullPush}, 200},
		{"delete, valid", req{user: "owner", pass: "ownerpw"}, []auth.Access{del}, 200},
		{"catalog, valid", req{user: "owner", pass: "ownerpw"}, []auth.Access{auth.Catalog}, 200},
		{"catalog, anonymous", req{}, []auth.Access{auth.Catalog}, 401},
		{"unknown user", req{user: "mallory", pass: "abc123"}, []auth.Access{pull}, 401},
		{"bearer refused", req{bearer: "abc"}, []auth.Access{pull}, 401},
		{"other scheme", req{header: "Digest x"}, []auth.Access{pull}, 401},
		{"malformed basic", req{header: "Basic !!!"}, []auth.Access{pull}, 401},
	}
	for _, tc := range tests {
		status, ae := f.authorize(tc.q, tc.access...)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d (%v)", tc.name, status, tc.status, ae)
			continue
		}
		if status == 401 {
			if ae.Code != "UNAUTHORIZED" || ae.Challenge != `Basic realm="Registry Realm"` {
				t.Errorf("%s: %+v", tc.name, ae)
			}
		}
	}
}

// Seed 000: customers in two files pull, the owner pushes.
func TestBasicCustomers(t *testing.T) {
	f := newFixture(t, Basic, []policy.Rule{
		{Group: []string{"admins"}, Actions: []string{"*"}},
		{Group: []string{"customers"}, Actions: []string{"pull"}},
	}, nil)
	foobar := req{user: "foobar", pass: "abc123"}
	if s, ae := f.authorize(foobar, pull); s != 200 {
		t.Fatalf("customer pull: %d %v", s, ae)
	}
	s, ae := f.authorize(foobar, pullPush)
	if s != 403 || ae.Code != "DENIED" || ae.Challenge != "" || len(ae.Detail) != 1 {
		t.Fatalf("customer push: %d %+v", s, ae)
	}
	if s, ae := f.authorize(req{user: "owner", pass: "ownerpw"}, pullPush); s != 200 {
		t.Fatalf("owner push: %d %v", s, ae)
	}
	// The customer stops paying: removed from the file, refused at once
	// (the fixture re-stats on every use).
	writeHtpasswd(t, f.files["customers"], map[string]string{"alice": "alicepw", "padding-user": "x"})
	if s, _ := f.authorize(foobar, pull); s != 401 {
		t.Fatalf("removed customer: %d", s)
	}
	if s, _ := f.authorize(req{user: "alice", pass: "alicepw"}, pull); s != 200 {
		t.Fatalf("remaining customer: %d", s)
	}
}

// Seed 002 with berth's token service: anonymous pull, admins push.
func TestTokenAnonymousPull(t *testing.T) {
	f := newFixture(t, Token, []policy.Rule{
		{Group: []string{"admins"}, Actions: []string{"*"}},
		{Anonymous: true, Actions: []string{"pull"}},
		{Account: []string{"*"}, Actions: []string{"pull"}},
	}, nil)

	// The base endpoint challenges callers without a token.
	s, ae := f.authorize(req{})
	if s != 401 || ae.Challenge != `Bearer realm="http://registry.test:5000/auth/token",service="registry.test"` {
		t.Fatalf("base: %d %+v", s, ae)
	}
	// Anonymous pull needs no token at all (curl, skopeo without login).
	if s, ae := f.authorize(req{}, pull); s != 200 {
		t.Fatalf("anonymous pull without token: %d %v", s, ae)
	}
	s, ae = f.authorize(req{}, pullPush)
	if s != 401 || ae.Challenge != `Bearer realm="http://registry.test:5000/auth/token",service="registry.test",scope="repository:example/faktory:pull,push"` {
		t.Fatalf("anonymous push: %d %+v", s, ae)
	}

	// An anonymous token for pull,push carries pull only.
	code, tr, _ := f.getToken(req{}, url.Values{"service": {"registry.test"}, "scope": {"repository:example/faktory:pull,push"}})
	if code != 200 || tr.Token == "" || tr.Token != tr.AccessToken || tr.ExpiresIn != 300 || tr.RefreshToken != "" {
		t.Fatalf("anonymous token: %d %+v", code, tr)
	}
	if s, ae := f.authorize(req{bearer: tr.Token}); s != 200 {
		t.Fatalf("base with anonymous token: %d %v", s, ae)
	}
	if s, ae := f.authorize(req{bearer: tr.Token}, pull); s != 200 {
		t.Fatalf("pull with anonymous token: %d %v", s, ae)
	}
	s, ae = f.authorize(req{bearer: tr.Token}, pullPush)
	if s != 401 || !strings.Contains(ae.Challenge, `error="insufficient_scope"`) {
		t.Fatalf("push with anonymous token: %d %+v", s, ae)
	}

	// docker login: GET with Basic and offline_token=true gives a refresh
	// token; an admin's token carries push.
	code, tr, _ = f.getToken(req{user: "owner", pass: "ownerpw"}, url.Values{"service": {"registry.test"}, "scope": {"repository:example/faktory:pull,push"}, "offline_token": {"true"}, "client_id": {"docker"}})
	if code != 200 || tr.RefreshToken == "" {
		t.Fatalf("admin token: %d %+v", code, tr)
	}
	if s, ae := f.authorize(req{bearer: tr.Token}, pullPush); s != 200 {
		t.Fatalf("admin push: %d %v", s, ae)
	}
	// The token is limited to its scope: deleting needs a new token...
	if s, ae := f.authorize(req{bearer: tr.Token}, del); s != 401 || !strings.Contains(ae.Challenge, "insufficient_scope") {
		t.Fatalf("admin delete with a push token: %d %+v", s, ae)
	}
	// ... which the refresh token (docker's identity token) gets.
	code, tr2 := f.postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "service": {"registry.test"}, "client_id": {"docker"}, "scope": {"repository:example/faktory:delete"}})
	if code != 200 || tr2.AccessToken == "" || tr2.Scope != "repository:example/faktory:delete" || tr2.RefreshToken != tr.RefreshToken {
		t.Fatalf("refresh grant: %d %+v", code, tr2)
	}
	if s, ae := f.authorize(req{bearer: tr2.AccessToken}, del); s != 200 {
		t.Fatalf("delete with refreshed token: %d %v", s, ae)
	}
	// A refresh token is not an access token, and vice versa.
	if s, _ := f.authorize(req{bearer: tr.RefreshToken}, pull); s != 401 {
		t.Fatalf("refresh token used as access token: %d", s)
	}
	if code, _ := f.postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.Token}}); code != 401 {
		t.Fatalf("access token used as refresh token: %d", code)
	}

	// A known user without the right gets 403 DENIED, not a challenge.
	code, tr, _ = f.getToken(req{user: "foobar", pass: "abc123"}, url.Values{"scope": {"repository:example/faktory:pull,push"}})
	if code != 200 {
		t.Fatalf("customer token: %d", code)
	}
	if s, ae := f.authorize(req{bearer: tr.Token}, pullPush); s != 403 || ae.Code != "DENIED" {
		t.Fatalf("customer push: %d %+v", s, ae)
	}

	// Removing the admin from the file revokes their tokens, refresh
	// tokens included, without waiting for expiry.
	code, tr, _ = f.getToken(req{user: "owner", pass: "ownerpw"}, url.Values{"scope": {"repository:example/faktory:pull,push"}, "offline_token": {"true"}})
	if code != 200 {
		t.Fatal(code)
	}
	writeHtpasswd(t, f.files["admins"], map[string]string{"someone-else": "x"})
	if s, ae := f.authorize(req{bearer: tr.Token}, pull); s != 401 || !strings.Contains(ae.Challenge, `error="invalid_token"`) {
		t.Fatalf("token of removed admin: %d %+v", s, ae)
	}
	if code, _ := f.postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}); code != 401 {
		t.Fatalf("refresh token of removed admin: %d", code)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	f := newFixture(t, Token, []policy.Rule{{Account: []string{"*"}, Actions: []string{"*"}}}, nil)
	tests := []struct {
		name   string
		q      req
		params url.Values
		status int
	}{
		{"other service", req{}, url.Values{"service": {"elsewhere"}}, 400},
		{"path trick", req{}, url.Values{"scope": {"repository:../x:push"}}, 400},
		{"path trick inside", req{}, url.Values{"scope": {"repository:a/../../x:push"}}, 400},
		{"upper case", req{}, url.Values{"scope": {"repository:A:pull"}}, 400},
		{"wrong password", req{user: "owner", pass: "x"}, url.Values{"scope": {"repository:a:pull"}}, 401},
		{"bearer at the token endpoint", req{bearer: "x"}, nil, 401},
		{"no scope", req{user: "owner", pass: "ownerpw"}, nil, 200},
	}
	for _, tc := range tests {
		code, _, h := f.getToken(tc.q, tc.params)
		if code != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.status)
		}
		if code == 401 && h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without challenge", tc.name)
		}
		if h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", tc.name, h.Get("Cache-Control"))
		}
	}
	if code, _ := f.postToken(url.Values{"grant_type": {"authorization_code"}}); code != 400 {
		t.Errorf("unknown grant: %d", code)
	}
	code, tr := f.postToken(url.Values{"grant_type": {"password"}, "username": {"owner"}, "password": {"ownerpw"}, "access_type": {"offline"}, "scope": {"repository:a:pull repository:b:push"}})
	if code != 200 || tr.RefreshToken == "" || tr.Scope != "repository:a:pull repository:b:push" {
		t.Errorf("password grant: %d %+v", code, tr)
	}
	r := httptest.NewRequest("DELETE", "/auth/token", nil)
	w := httptest.NewRecorder()
	f.gate.TokenHandler().ServeHTTP(w, r)
	if w.Code != 405 {
		t.Errorf("DELETE: %d", w.Code)
	}
}

func TestBadTokens(t *testing.T) {
	f := newFixture(t, Token, []policy.Rule{{Account: []string{"*"}, Actions: []string{"*"}}}, nil)
	now := time.Now()
	sign := func(s *token.Signer, mod func(*token.Claims)) string {
		c := token.Claims{Subject: "owner", Audience: []string{"registry.test"}, IssuedAt: now, Expiry: now.Add(time.Minute),
			Access: []auth.Access{pullPush}, Berth: &token.BerthClaims{Source: "htpasswd"}}
		mod(&c)
		raw, err := s.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forger, _ := token.NewSigner(key, "berth-test")
	tests := []struct {
		name string
		raw  string
	}{
		{"expired", sign(f.signer, func(c *token.Claims) { c.Expiry = now.Add(-time.Minute) })},
		{"other service", sign(f.signer, func(c *token.Claims) { c.Audience = []string{"other"} })},
		{"bad signature", sign(forger, func(*token.Claims) {})},
		{"stale ref", sign(f.signer, func(c *token.Claims) { c.Berth.Ref = "0000000000000000" })},
		{"garbage", "not-a-token"},
	}
	for _, tc := range tests {
		s, ae := f.authorize(req{bearer: tc.raw}, pull)
		if s != 401 || ae.Code != "UNAUTHORIZED" || !strings.Contains(ae.Challenge, `error="invalid_token"`) {
			t.Errorf("%s: %d %+v", tc.name, s, ae)
		}
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, Basic, nil, nil)
	bad := req{user: "owner", pass: "wrong", remote: "192.0.2.1:1234"}
	for i := 0; i < 5; i++ {
		if s, _ := f.authorize(bad, pull); s != 401 {
			t.Fatalf("attempt %d: %d", i, s)
		}
	}
	s, ae := f.authorize(req{user: "owner", pass: "ownerpw", remote: "192.0.2.1:1234"}, pull)
	if s != 429 || ae.Code != "TOOMANYREQUESTS" || ae.Header.Get("Retry-After") == "" {
		t.Fatalf("after 5 failures: %d %+v", s, ae)
	}
	// The account is locked from other addresses too.
	if s, _ := f.authorize(req{user: "owner", pass: "ownerpw", remote: "192.0.2.2:1"}, pull); s != 429 {
		t.Fatalf("locked account from another address: %d", s)
	}
	// Other accounts from other addresses are unaffected.
	if s, _ := f.authorize(req{user: "alice", pass: "alicepw", remote: "192.0.2.3:1"}, pull); s != 200 {
		t.Fatalf("other account: %d", s)
	}
	// The token endpoint is protected by the same limiter.
	f2 := newFixture(t, Token, nil, nil)
	for i := 0; i < 5; i++ {
		f2.getToken(req{user: "alice", pass: "x", remote: "198.51.100.1:1"}, nil)
	}
	code, _, h := f2.getToken(req{user: "alice", pass: "alicepw", remote: "198.51.100.1:1"}, nil)
	if code != 429 || h.Get("Retry-After") == "" {
		t.Fatalf("token endpoint after failures: %d %v", code, h)
	}
}

func TestOversizedAuthorization(t *testing.T) {
	f := newFixture(t, Token, nil, nil)
	s, ae := f.authorize(req{header: "Bearer " + strings.Repeat("a", MaxAuthorization)}, pull)
	if s != 401 || ae.Code != "UNAUTHORIZED" {
		t.Fatalf("%d %+v", s, ae)
	}
	r := f.request("GET", "/v2/", req{})
	r.Header.Add("Authorization", "Basic YTpi")
	r.Header.Add("Authorization", "Basic YzpK")
	if _, err := f.gate.Authorize(r, []auth.Access{pull}); err == nil {
		t.Fatal("two Authorization headers accepted")
	}
}

func TestRobotToken(t *testing.T) {
	f := newFixture(t, Token, []policy.Rule{{Group: []string{"ci"}, Repository: []string{"example/*"}, Actions: []string{"pull", "push"}}}, nil)
	tok, secret, err := f.robots.Create("ci-bot", robot.CreateOptions{Groups: []string{"ci"}})
	if err != nil {
		t.Fatal(err)
	}
	if s, ae := f.authorize(req{user: "ci-bot", pass: secret}, pullPush); s != 200 {
		t.Fatalf("robot with Basic: %d %v", s, ae)
	}
	code, tr, _ := f.getToken(req{user: "ci-bot", pass: secret}, url.Values{"scope": {"repository:example/faktory:pull,push"}})
	if code != 200 {
		t.Fatal(code)
	}
	if s, ae := f.authorize(req{bearer: tr.Token}, pullPush); s != 200 {
		t.Fatalf("robot token: %d %v", s, ae)
	}
	if _, err := f.robots.Revoke(tok.ID); err != nil {
		t.Fatal(err)
	}
	if s, _ := f.authorize(req{user: "ci-bot", pass: secret}, pull); s != 401 {
		t.Fatalf("revoked robot with Basic: %d", s)
	}
	if s, _ := f.authorize(req{bearer: tr.Token}, pull); s != 401 {
		t.Fatalf("token of revoked robot: %d", s)
	}
}

func TestRealm(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Options)
		headers map[string]string
		want    string
	}{
		{"request host", nil, nil, "http://registry.test:5000/auth/token"},
		{"forwarded", nil, map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com"}, "https://registry.example.com/auth/token"},
		{"forwarded list", nil, map[string]string{"X-Forwarded-Proto": "https, http"}, "https://registry.test:5000/auth/token"},
		{"bad forwarded host", nil, map[string]string{"X-Forwarded-Host": `evil"host`}, "http://registry.test:5000/auth/token"},
		{"http.host", func(o *Options) { o.Host = "https://reg.example.com/" }, map[string]string{"X-Forwarded-Host": "x"}, "https://reg.example.com/auth/token"},
		{"prefix", func(o *Options) { o.Prefix = "/registry/" }, nil, "http://registry.test:5000/registry/auth/token"},
		{"rfc 7239", nil, map[string]string{"Forwarded": `for=192.0.2.1;proto=https;host="reg.example.net"`}, "https://reg.example.net/auth/token"},
		{"forwarded port", nil, map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "reg.example.net", "X-Forwarded-Port": "8443"}, "https://reg.example.net:8443/auth/token"},
		{"fixed", func(o *Options) { o.Realm = "https://auth.example.com/token" }, nil, "https://auth.example.com/token"},
	}
	for _, tc := range tests {
		f := newFixture(t, Token, nil, tc.mod)
		r := f.request("GET", "/v2/", req{})
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		_, err := f.gate.Authorize(r, nil)
		var ae *auth.Error
		if !errors.As(err, &ae) || !strings.Contains(ae.Challenge, `realm="`+tc.want+`"`) {
			t.Errorf("%s: %v, want realm %s", tc.name, err, tc.want)
		}
	}
}

func TestClientIP(t *testing.T) {
	g, _ := New(Options{Mode: Basic, Sources: auth.Chain{nil}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	tests := []struct {
		remote, xff, want string
	}{
		{"192.0.2.1:1", "203.0.113.9", "192.0.2.1"},
		{"10.1.1.1:1", "203.0.113.9", "203.0.113.9"},
		{"10.1.1.1:1", "198.51.100.7, 203.0.113.9, 10.2.2.2", "203.0.113.9"},
		{"10.1.1.1:1", "", "10.1.1.1"},
		{"10.1.1.1:1", "garbage", "10.1.1.1"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := g.clientIP(r); got != tc.want {
			t.Errorf("%s / %s: %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

// BasicRealm is offered only where Basic credentials are taken: a client
// that answers it (a browser, for the web UI) must get in.
func TestBasicRealm(t *testing.T) {
	for _, mode := range []Mode{Basic, Token} {
		f := newFixture(t, mode, nil, nil)
		want := map[Mode]string{Basic: "Registry Realm", Token: DefaultBasicRealm}[mode]
		if got := f.gate.BasicRealm(); got != want {
			t.Errorf("%v: %q, want %q", mode, got, want)
		}
		r := f.request("GET", "/v2/x/tags/list", req{})
		r.SetBasicAuth("owner", "ownerpw")
		if id, err := f.gate.Authorize(r, []auth.Access{auth.Repository("x", "pull")}); err != nil || id.Account() != "owner" {
			t.Errorf("%v: Basic credentials: %v", mode, err)
		}
	}
	f := newFixture(t, Token, nil, nil)
	ver, err := token.NewVerifier(token.VerifierOptions{Issuer: "i", Service: "s", Keys: map[string]crypto.PublicKey{f.signer.KeyID(): f.signer.PublicKey()}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Options{Mode: External, Service: "s", Realm: "https://auth/token", Verifier: ver})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.BasicRealm(); got != "" {
		t.Errorf("external: %q", got)
	}
}

func TestExternal(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issuer, _ := token.NewSigner(key, "auth_service")
	ver, _ := token.NewVerifier(token.VerifierOptions{Issuer: "auth_service", Service: "registry",
		Keys: map[string]crypto.PublicKey{issuer.KeyID(): issuer.PublicKey()}})
	g, err := New(Options{Mode: External, Service: "registry", Realm: "https://auth:5001/auth", Verifier: ver})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, _ := issuer.Sign(token.Claims{Subject: "jgsqware", Audience: []string{"registry"}, Expiry: now.Add(time.Minute),
		Access: []auth.Access{auth.Repository("jgsqware/app", "pull", "push")}})
	authz := func(bearer string, access ...auth.Access) (int, *auth.Error) {
		r := httptest.NewRequest("GET", "http://reg/v2/", nil)
		if bearer != "" {
			r.Header.Set("Authorization", "Bearer "+bearer)
		}
		_, err := g.Authorize(r, access)
		var ae *auth.Error
		if err == nil {
			return 200, nil
		}
		errors.As(err, &ae)
		return ae.Status, ae
	}
	if s, ae := authz("", auth.Repository("jgsqware/app", "pull")); s != 401 || ae.Challenge != `Bearer realm="https://auth:5001/auth",service="registry",scope="repository:jgsqware/app:pull"` {
		t.Fatalf("no token: %d %+v", s, ae)
	}
	if s, ae := authz(raw, auth.Repository("jgsqware/app", "pull", "push")); s != 200 {
		t.Fatalf("token: %d %v", s, ae)
	}
	if s, ae := authz(raw, auth.Repository("admin/app", "pull", "push")); s != 401 || !strings.Contains(ae.Challenge, "insufficient_scope") {
		t.Fatalf("outside the token: %d %+v", s, ae)
	}
	r := httptest.NewRequest("GET", "http://reg/v2/", nil)
	r.SetBasicAuth("jgsqware", "pw")
	if _, err := g.Authorize(r, nil); err == nil {
		t.Fatal("basic accepted in external mode")
	}
	if g.TokenPath() != "" {
		t.Error("external mode serves no token endpoint")
	}
}

// The API writes Errors as-is; make sure they serialise without secrets.
func TestNoSecretsInErrors(t *testing.T) {
	f := newFixture(t, Basic, nil, nil)
	_, ae := f.authorize(req{user: "owner", pass: "s3cr3t-pass"}, pull)
	b, _ := json.Marshal(ae)
	if strings.Contains(string(b), "s3cr3t") || strings.Contains(ae.Message, "s3cr3t") {
		t.Fatal(string(b))
	}
	io.Discard.Write(b)
}

// registry:2's auth.token.autoredirect: the realm is this request's host
// with autoredirectpath.
func TestExternalAutoRedirect(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issuer, _ := token.NewSigner(key, "iss")
	ver, _ := token.NewVerifier(token.VerifierOptions{Issuer: "iss", Service: "svc",
		Keys: map[string]crypto.PublicKey{issuer.KeyID(): issuer.PublicKey()}})
	for _, tc := range []struct {
		path, want string
	}{
		{"", "https://reg.example.com/auth/token"},
		{"/custom/token", "https://reg.example.com/custom/token"},
	} {
		g, err := New(Options{Mode: External, Service: "svc", Verifier: ver, AutoRedirect: true, AutoRedirectPath: tc.path})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "https://reg.example.com/v2/", nil)
		_, err = g.Authorize(r, nil)
		var ae *auth.Error
		if !errors.As(err, &ae) || ae.Challenge != `Bearer realm="`+tc.want+`",service="svc"` {
			t.Errorf("autoredirectpath %q: %v", tc.path, err)
		}
	}
	if _, err := New(Options{Mode: External, Service: "svc", Verifier: ver}); err == nil {
		t.Error("external mode without realm or autoredirect accepted")
	}
}

// Slowed-down answers wait on the request: a client that gives up is not
// kept waiting for (the delay is bounded by its context).
func TestDelayFollowsTheRequest(t *testing.T) {
	f := newFixture(t, Basic, nil, func(o *Options) {
		o.Limiter = ratelimit.New(ratelimit.Options{SlowAfter: 1, Delay: time.Hour, MaxDelay: time.Hour, MaxFailures: 100, AccountMaxFailures: 100})
	})
	if s, _ := f.authorize(req{user: "alice", pass: "wrong"}, pull); s != 401 {
		t.Fatalf("first failure: %d", s)
	}
	r := f.request("GET", "/v2/", req{user: "alice", pass: "alicepw"})
	ctx, cancel := context.WithCancel(r.Context())
	cancel()
	_, err := f.gate.Authorize(r.WithContext(ctx), []auth.Access{pull})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("delayed login of a gone client: %v", err)
	}
}
