//go:build e2e

package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/policy"
	"github.com/berth-registry/berth/test/harness"
)

// dockerAuth stands in for cesanta/docker_auth as seed 003 runs it: a
// static user list, the ACL "admin may do everything; every account has
// full rights on ${account}/*; everything else denied", tokens signed
// RS256 by the key of a self-signed certificate (server.pem), named by its
// libtrust key id, with "aud" a plain string.
type dockerAuth struct {
	t        *testing.T
	srv      *httptest.Server
	key      *rsa.PrivateKey
	kid      string
	certPath string
	issuer   string
	users    map[string]string
	acl      *policy.Policy

	mu     sync.Mutex
	issued int
}

func newDockerAuth(t *testing.T) *dockerAuth {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "auth"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	certPath := filepath.Join(t.TempDir(), "server.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	acl, err := policy.New([]policy.Rule{
		{Account: []string{"admin"}, Actions: []string{"*"}},
		{Account: []string{"/.+/"}, Repository: []string{"${account}/*"}, Actions: []string{"*"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	da := &dockerAuth{t: t, key: key, kid: libtrustKeyID(t, key), certPath: certPath, issuer: "auth_service",
		users: map[string]string{"admin": "badmin", "jgsqware": "jgsqware"}, acl: acl}
	da.srv = httptest.NewServer(http.HandlerFunc(da.serve))
	t.Cleanup(da.srv.Close)
	return da
}

// libtrustKeyID computes the key id docker_auth puts in "kid", written out
// here independently of berth's implementation.
func libtrustKeyID(t *testing.T, key *rsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	enc := base32.StdEncoding.EncodeToString(sum[:30])
	var groups []string
	for len(enc) > 0 {
		groups = append(groups, enc[:4])
		enc = enc[4:]
	}
	return strings.Join(groups, ":")
}

func (da *dockerAuth) realm() string { return da.srv.URL + "/auth" }

type accessEntry struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// sign makes a token like docker_auth's, with mod applied to the claims.
func (da *dockerAuth) sign(key *rsa.PrivateKey, sub, aud string, exp time.Time, access []accessEntry) string {
	da.t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: da.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		da.t.Fatal(err)
	}
	now := time.Now()
	claims := map[string]any{
		"iss": da.issuer, "sub": sub, "aud": aud,
		"exp": exp.Unix(), "nbf": now.Add(-5 * time.Second).Unix(), "iat": now.Unix(),
		"jti":    fmt.Sprint(now.UnixNano()),
		"access": access,
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		da.t.Fatal(err)
	}
	return raw
}

func (da *dockerAuth) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/auth" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	var who *auth.Principal
	if u, p, ok := r.BasicAuth(); ok {
		if want, known := da.users[u]; !known || want != p {
			w.Header().Set("WWW-Authenticate", `Basic realm="auth"`)
			http.Error(w, `{"details":"incorrect username or password"}`, http.StatusUnauthorized)
			return
		}
		who = &auth.Principal{Account: u}
	}
	want, err := auth.ParseScopes(r.URL.Query()["scope"])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var access []accessEntry
	for _, g := range da.acl.Grant(who, want) {
		access = append(access, accessEntry{Type: g.Type, Name: g.Name, Actions: g.Actions})
	}
	sub := ""
	if who != nil {
		sub = who.Account
	}
	tok := da.sign(da.key, sub, r.URL.Query().Get("service"), time.Now().Add(15*time.Minute), access)
	da.mu.Lock()
	da.issued++
	da.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 900})
}

// Seed 003: berth in place of registry:2 behind cesanta/docker_auth,
// configured with seed 003's REGISTRY_AUTH_TOKEN_* variables (quoted
// values included).
func TestSeed003ExternalTokenIssuer(t *testing.T) {
	t.Parallel()
	da := newDockerAuth(t)
	b := harness.Start(t, harness.Options{Env: []string{
		"REGISTRY_AUTH=token",
		"REGISTRY_AUTH_TOKEN_REALM=" + da.realm(),
		`REGISTRY_AUTH_TOKEN_SERVICE="registry"`,
		`REGISTRY_AUTH_TOKEN_ISSUER="auth_service"`,
		"REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE=" + da.certPath,
	}})
	r := do(t, "GET", b.URL()+"/v2/", nil, nil)
	if want := fmt.Sprintf(`Bearer realm="%s",service="registry"`, da.realm()); r.Status != 401 || r.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("/v2/: %d %q, want %q", r.Status, r.Header.Get("WWW-Authenticate"), want)
	}
	// berth serves no token endpoint of its own here.
	if r := do(t, "GET", b.URL()+"/auth/token", nil, nil); r.Status != 404 {
		t.Errorf("/auth/token: %d", r.Status)
	}

	own := b.Addr + "/jgsqware/ubuntu-git:latest"
	other := b.Addr + "/admin/tools:latest"
	d := newDocker(t)
	d.importImage(own, map[string]string{"usr/bin/git": "git"})
	d.login(b.Addr, "jgsqware", "jgsqware")
	d.push(own)
	d.pull(own)
	d.ok("", "docker", "tag", own, other)
	d.track(other)
	d.fails("", "docker", "push", other) // outside ${account}/*

	adm := newDocker(t)
	adm.login(b.Addr, "admin", "badmin")
	adm.ok("", "docker", "tag", own, other)
	adm.track(other)
	adm.push(other)
	adm.pull(own)
	// jgsqware may not even pull admin's repository; anonymous nobody.
	d.pullFails(other)
	newDocker(t).pullFails(own)

	// podman and skopeo against the same issuer.
	requireTool(t, "podman")
	requireTool(t, "skopeo")
	c := containersEnv(t, b.Addr)
	c.ok("", "podman", "pull", "--creds", "jgsqware:jgsqware", own)
	c.ok("", "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", "jgsqware:jgsqware",
		"--dest-creds", "jgsqware:jgsqware", "docker://"+own, "docker://"+b.Addr+"/jgsqware/copy:1")
	c.fails("", "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", "jgsqware:jgsqware",
		"--dest-creds", "jgsqware:jgsqware", "docker://"+own, "docker://"+b.Addr+"/elsewhere/copy:1")

	// Tokens berth must refuse.
	pull := []accessEntry{{Type: "repository", Name: "jgsqware/ubuntu-git", Actions: []string{"pull"}}}
	forged, _ := rsa.GenerateKey(rand.Reader, 2048)
	manifest := b.URL() + "/v2/jgsqware/ubuntu-git/manifests/latest"
	tests := []struct {
		name string
		tok  string
		want int
		err  string
	}{
		{"valid", da.sign(da.key, "jgsqware", "registry", time.Now().Add(time.Minute), pull), 200, ""},
		{"expired", da.sign(da.key, "jgsqware", "registry", time.Now().Add(-2*time.Minute), pull), 401, "invalid_token"},
		{"another service", da.sign(da.key, "jgsqware", "other-registry", time.Now().Add(time.Minute), pull), 401, "invalid_token"},
		{"bad signature", da.sign(forged, "jgsqware", "registry", time.Now().Add(time.Minute), pull), 401, "invalid_token"},
		{"another repository", da.sign(da.key, "jgsqware", "registry", time.Now().Add(time.Minute),
			[]accessEntry{{Type: "repository", Name: "jgsqware/other", Actions: []string{"pull"}}}), 401, "insufficient_scope"},
		{"push only", da.sign(da.key, "jgsqware", "registry", time.Now().Add(time.Minute),
			[]accessEntry{{Type: "repository", Name: "jgsqware/ubuntu-git", Actions: []string{"push"}}}), 401, "insufficient_scope"},
	}
	for _, tc := range tests {
		r := do(t, "HEAD", manifest, bearer(tc.tok), nil)
		ch := r.Header.Get("WWW-Authenticate")
		if r.Status != tc.want || (tc.err != "" && !strings.Contains(ch, `error="`+tc.err+`"`)) {
			t.Errorf("%s: %d %q", tc.name, r.Status, ch)
		}
	}
	// Catalog: a token for registry:catalog:* from the issuer.
	catTok := da.sign(da.key, "admin", "registry", time.Now().Add(time.Minute),
		[]accessEntry{{Type: "registry", Name: "catalog", Actions: []string{"*"}}})
	if got := catalog(t, b, bearer(catTok)); len(got) != 3 {
		t.Errorf("catalog with the issuer's catalog token: %q", got)
	}
	noSecretsLogged(t, b, "badmin")
}
