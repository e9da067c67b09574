package setup

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/gate"
	"github.com/berth-registry/berth/internal/auth/htpasswd"
	"github.com/berth-registry/berth/internal/config"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func load(t *testing.T, yml string, env ...string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, env)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func users(t *testing.T, dir string, pairs ...string) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("users%d", len(pairs)))
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		l, err := htpasswd.Line(pairs[i], pairs[i+1], bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(l)
	}
	os.WriteFile(path, []byte(b.String()), 0o600)
	return path
}

// status is what the API would answer for access with Basic credentials.
func status(t *testing.T, a auth.Authorizer, user, pass string, access ...auth.Access) int {
	t.Helper()
	r := httptest.NewRequest("GET", "http://reg.test/v2/", nil)
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	_, err := a.Authorize(r, access)
	if err == nil {
		return 200
	}
	if ae, ok := err.(*auth.Error); ok {
		return ae.Status
	}
	t.Fatalf("error: %v", err)
	return 0
}

func TestNoAuth(t *testing.T) {
	res, err := FromConfig(load(t, "version: 0.1\n"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Authorizer.(auth.AllowAll); !ok || len(res.Handlers) != 0 {
		t.Fatalf("%+v", res)
	}
}

// registry:2's auth.htpasswd: Basic, any valid user may do anything.
func TestRegistryHtpasswd(t *testing.T) {
	dir := t.TempDir()
	f := users(t, dir, "ci", "ci-pw")
	res, err := FromConfig(load(t, fmt.Sprintf("storage: {filesystem: {rootdirectory: %s}}\nauth:\n  htpasswd:\n    realm: Admin Realm\n    path: %s\n", dir, f)), quiet)
	if err != nil {
		t.Fatal(err)
	}
	g := res.Authorizer.(*gate.Gate)
	if g.Mode() != gate.Basic || len(res.Handlers) != 0 || !strings.Contains(res.Mode, `basic (realm "Admin Realm")`) {
		t.Fatalf("mode %s / %q", g.Mode(), res.Mode)
	}
	push := auth.Repository("any/thing", "pull", "push")
	if s := status(t, g, "ci", "ci-pw", push); s != 200 {
		t.Errorf("valid user push: %d", s)
	}
	if s := status(t, g, "", "", auth.Repository("any/thing", "pull")); s != 401 {
		t.Errorf("anonymous pull: %d", s)
	}
	// The same through REGISTRY_* variables.
	res, err = FromConfig(load(t, "version: 0.1\n", "REGISTRY_AUTH=htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM=r", "REGISTRY_AUTH_HTPASSWD_PATH="+f), quiet)
	if err != nil || res.Authorizer.(*gate.Gate).Mode() != gate.Basic {
		t.Fatalf("from env: %v", err)
	}
}

func TestBerthAuth(t *testing.T) {
	dir := t.TempDir()
	fpro := users(t, dir, "foobar", "abc123", "x", "y")
	owner := users(t, dir, "mike", "m-pw")
	yml := fmt.Sprintf(`storage:
  filesystem:
    rootdirectory: %s
berth:
  auth:
    htpasswd:
      - group: fpro
        path: %s
      - {group: owners, path: %s}
    policy:
      - group: owners
        actions: ["*"]
      - account: x
        actions: []
        comment: explicit deny
      - group: fpro
        repository: example/*
        actions: pull
    ratelimit:
      trustedproxies: [10.0.0.0/8, 192.0.2.1]
`, dir, fpro, owner)
	res, err := FromConfig(load(t, yml), quiet)
	if err != nil {
		t.Fatal(err)
	}
	g := res.Authorizer.(*gate.Gate)
	if g.Mode() != gate.Basic {
		t.Fatalf("mode %s", g.Mode())
	}
	pull, push := auth.Repository("example/app", "pull"), auth.Repository("example/app", "pull", "push")
	for _, tc := range []struct {
		user, pass string
		access     auth.Access
		want       int
	}{
		{"foobar", "abc123", pull, 200},
		{"foobar", "abc123", push, 403},
		{"mike", "m-pw", push, 200},
		{"x", "y", pull, 403},
		{"foobar", "bad", pull, 401},
		{"", "", pull, 401},
	} {
		if s := status(t, g, tc.user, tc.pass, tc.access); s != tc.want {
			t.Errorf("%s %v: %d, want %d", tc.user, tc.access, s, tc.want)
		}
	}
}

// A policy letting anonymous callers in turns the token service on.
func TestTokenServiceAutomatic(t *testing.T) {
	dir := t.TempDir()
	admins := users(t, dir, "admin", "pw")
	yml := fmt.Sprintf(`storage: {filesystem: {rootdirectory: %s}}
berth:
  auth:
    htpasswd: [{group: admins, path: %s}]
    policy:
      - {group: admins, actions: ["*"]}
      - {anonymous: true, actions: [pull]}
`, dir, admins)
	res, err := FromConfig(load(t, yml), quiet)
	if err != nil {
		t.Fatal(err)
	}
	g := res.Authorizer.(*gate.Gate)
	h := res.Handlers["/auth/token"]
	if g.Mode() != gate.Token || h == nil {
		t.Fatalf("mode %s, handlers %v", g.Mode(), res.Handlers)
	}
	if _, err := os.Stat(filepath.Join(dir, "berth", "token-key.pem")); err != nil {
		t.Errorf("signing key not persisted: %v", err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "http://reg.test/auth/token?service=berth&scope=repository:a:pull,push", nil)
	r.SetBasicAuth("admin", "pw")
	h.ServeHTTP(w, r)
	var tr struct{ Token string }
	json.Unmarshal(w.Body.Bytes(), &tr)
	if w.Code != 200 || tr.Token == "" {
		t.Fatalf("token endpoint: %d %s", w.Code, w.Body)
	}
	r = httptest.NewRequest("PUT", "http://reg.test/v2/a/manifests/x", nil)
	r.Header.Set("Authorization", "Bearer "+tr.Token)
	if _, err := g.Authorize(r, []auth.Access{auth.Repository("a", "pull", "push")}); err != nil {
		t.Errorf("push with the token: %v", err)
	}
	// A restart reuses the persisted key: old tokens stay valid.
	res2, err := FromConfig(load(t, yml), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res2.Authorizer.Authorize(r, []auth.Access{auth.Repository("a", "pull", "push")}); err != nil {
		t.Errorf("token after a restart: %v", err)
	}
}

func TestTokenServiceExplicitAndInMemory(t *testing.T) {
	dir := t.TempDir()
	f := users(t, dir, "u", "p")
	keyPath := filepath.Join(dir, "keys", "signing.pem")
	res, err := FromConfig(load(t, fmt.Sprintf(`storage: {inmemory: }
berth:
  auth:
    htpasswd: [{path: %s}]
    tokenservice:
      service: registry.example.com
      issuer: example-issuer
      key: %s
      expiry: 10m
`, f, keyPath)), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if res.Authorizer.(*gate.Gate).Mode() != gate.Token || !strings.Contains(res.Mode, `"registry.example.com"`) {
		t.Fatalf("%q", res.Mode)
	}
	if _, err := os.Stat(keyPath); err != nil {
		t.Errorf("configured key not created: %v", err)
	}
	// inmemory storage without a key or token path: nothing on disk.
	cfg := load(t, fmt.Sprintf("storage: {inmemory: }\nberth:\n  auth:\n    htpasswd: [{path: %s}]\n    tokenservice: {}\n", f))
	if TokenStorePath(cfg) != "" {
		t.Errorf("token store with inmemory storage: %q", TokenStorePath(cfg))
	}
	if _, err := FromConfig(cfg, quiet); err != nil {
		t.Fatal(err)
	}
}

func TestExternal(t *testing.T) {
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	os.WriteFile(jwks, []byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`), 0o644)
	res, err := FromConfig(load(t, fmt.Sprintf(`auth:
  token:
    realm: https://auth.example.com/token
    service: registry
    issuer: auth_service
    jwks: %s
`, jwks)), quiet)
	if err != nil {
		t.Fatal(err)
	}
	g := res.Authorizer.(*gate.Gate)
	if g.Mode() != gate.External || len(res.Handlers) != 0 {
		t.Fatalf("mode %s", g.Mode())
	}
	r := httptest.NewRequest("GET", "http://reg.test/v2/", nil)
	_, err = g.Authorize(r, nil)
	if ae, ok := err.(*auth.Error); !ok || ae.Challenge != `Bearer realm="https://auth.example.com/token",service="registry"` {
		t.Errorf("challenge: %v", err)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	f := users(t, dir, "u", "p")
	tests := []struct {
		name, yml, want string
	}{
		{"silly", "auth:\n  silly: {realm: r, service: s}\n", "auth.silly"},
		{"token with berth.auth", fmt.Sprintf("auth:\n  token: {realm: r, service: s, issuer: i, rootcertbundle: %s}\nberth:\n  auth:\n    htpasswd: [{path: %s}]\n", f, f), "cannot be combined"},
		{"bad rule", "berth:\n  auth:\n    policy:\n      - {actions: [pull, fly]}\n", "berth.auth.policy: rule 1: unknown action"},
		{"missing file", "berth:\n  auth:\n    htpasswd: [{path: " + filepath.Join(dir, "nope") + "}]\n", "does not exist"},
		{"no path", "berth:\n  auth:\n    htpasswd: [{group: g}]\n", "berth.auth.htpasswd[0].path"},
		{"ldap url", "berth:\n  auth:\n    ldap: {url: 'http://x', userbase: 'dc=x'}\n", "berth.auth.ldap: url"},
		{"ldap two passwords", "berth:\n  auth:\n    ldap: {url: 'ldap://x', userbase: 'dc=x', bindpassword: a, bindpasswordfile: " + f + "}\n", "not both"},
		{"bad proxy", fmt.Sprintf("berth:\n  auth:\n    htpasswd: [{path: %s}]\n    ratelimit: {trustedproxies: [nonsense]}\n", f), "trustedproxies"},
		{"bad key", fmt.Sprintf("berth:\n  auth:\n    htpasswd: [{path: %s}]\n    tokenservice: {key: %s}\n", f, f), "tokenservice.key"},
	}
	for _, tc := range tests {
		_, err := FromConfig(load(t, "storage: {filesystem: {rootdirectory: "+dir+"}}\n"+tc.yml), quiet)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	f := users(t, dir, "u", "p")
	good := load(t, fmt.Sprintf("storage: {filesystem: {rootdirectory: %s}}\nberth:\n  auth:\n    htpasswd: [{path: %s}]\n    tokenservice: {}\n", dir, f))
	if err := Check(good); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "berth", "token-key.pem")); !os.IsNotExist(err) {
		t.Errorf("Check created the signing key: %v", err)
	}
	bad := load(t, "berth:\n  auth:\n    policy: [{account: '${account}', actions: [pull]}]\n")
	if err := Check(bad); err == nil || !strings.Contains(err.Error(), "berth.auth.policy: rule 1") {
		t.Errorf("bad policy: %v", err)
	}
}
