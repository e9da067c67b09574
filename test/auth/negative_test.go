//go:build e2e

package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/berth-registry/berth/test/harness"
)

// signWith makes a berth-style access token with key.
func signWith(t *testing.T, key crypto.Signer, kid, sub, aud string, exp time.Time, access []accessEntry, berthClaims any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := jwt.Signed(signer).Claims(map[string]any{
		"iss": "berth", "sub": sub, "aud": []string{aud}, "exp": exp.Unix(), "iat": now.Unix(), "nbf": now.Add(-time.Second).Unix(),
		"access": access, "berth": berthClaims,
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// tokenKey reads berth's generated signing key and its kid (from a token
// berth issued).
func tokenKey(t *testing.T, b *harness.Berth, sampleToken string) (crypto.Signer, string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.Root, "berth", "token-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(data)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseSigned(sampleToken, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer), tok.Headers[0].KeyID
}

func TestNegative(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	writeHtpasswd(t, users, map[string]string{"admin": "admin-pw", "alice": "alice-pw", "mallory": "mallory-pw", "victim": "victim-pw"})
	b := harness.Start(t, harness.Options{ExtraConfig: fmt.Sprintf(`berth:
  auth:
    htpasswd: [{path: %s}]
    policy:
      - account: admin
        actions: ["*"]
      - account: "/.+/"
        repository: ${account}/*
        actions: ["*"]
      - anonymous: true
        repository: public/*
        actions: [pull]
    tokenservice: {}
    ratelimit:
      slowafter: 3
      delay: 10ms
      maxdelay: 40ms
      maxfailures: 14
      accountmaxfailures: 5
      lockout: 10m
`, users)})
	realm := b.URL() + "/auth/token"
	ch := func(r resp) string { return r.Header.Get("WWW-Authenticate") }

	// Wrong password: 401 UNAUTHORIZED, on the API and at the realm.
	if r := do(t, "GET", b.URL()+"/v2/", basic("alice", "wrong"), nil); r.Status != 401 || r.ErrorCode() != "UNAUTHORIZED" || !strings.HasPrefix(ch(r), "Bearer ") {
		t.Errorf("wrong password on /v2/: %d %s %q", r.Status, r.Body, ch(r))
	}
	if _, r := fetchToken(t, realm, basic("alice", "wrong"), "berth", "repository:alice/x:pull"); r.Status != 401 || r.ErrorCode() != "UNAUTHORIZED" {
		t.Errorf("wrong password at the realm: %d %s", r.Status, r.Body)
	}

	// Anonymous push: 401 with the scope to ask for.
	r := do(t, "POST", b.URL()+"/v2/public/app/blobs/uploads/", nil, nil)
	if r.Status != 401 || !strings.Contains(ch(r), `scope="repository:public/app:pull,push"`) {
		t.Errorf("anonymous push: %d %q", r.Status, ch(r))
	}
	anonTok, _ := fetchToken(t, realm, nil, "berth", "repository:public/app:pull,push")
	r = do(t, "POST", b.URL()+"/v2/public/app/blobs/uploads/", bearer(anonTok), nil)
	if r.Status != 401 || !strings.Contains(ch(r), `error="insufficient_scope"`) {
		t.Errorf("anonymous push with an anonymous token: %d %q", r.Status, ch(r))
	}

	// A user pushing outside ${account}/*: 403 DENIED (Basic or token).
	r = do(t, "POST", b.URL()+"/v2/bob/app/blobs/uploads/", basic("alice", "alice-pw"), nil)
	if r.Status != 403 || r.ErrorCode() != "DENIED" {
		t.Errorf("alice pushing to bob/*: %d %s", r.Status, r.Body)
	}
	aliceTok, tr := fetchToken(t, realm, basic("alice", "alice-pw"), "berth", "repository:bob/app:pull,push")
	if aliceTok == "" {
		t.Fatalf("alice's token: %d %s", tr.Status, tr.Body)
	}
	if r := do(t, "POST", b.URL()+"/v2/bob/app/blobs/uploads/", bearer(aliceTok), nil); r.Status != 403 || r.ErrorCode() != "DENIED" {
		t.Errorf("alice pushing to bob/* with a token: %d %s", r.Status, r.Body)
	}
	if r := do(t, "POST", b.URL()+"/v2/alice/app/blobs/uploads/", basic("alice", "alice-pw"), nil); r.Status != 202 {
		t.Errorf("alice pushing to alice/*: %d %s", r.Status, r.Body)
	}

	// Path tricks in scopes are refused, not matched against ${account}/*.
	for _, scope := range []string{"repository:../x:push", "repository:alice/../bob/app:push", "repository:alice/../../x:pull",
		"repository:Alice/x:push", "repository:alice//x:push", "repository:/alice/x:push", "repository:alice/x%2f..:push"} {
		_, r := fetchToken(t, realm, basic("alice", "alice-pw"), "berth", url.QueryEscape(scope))
		if r.Status != 400 {
			t.Errorf("scope %q: %d %s", scope, r.Status, r.Body)
		}
	}
	if r := do(t, "POST", b.URL()+"/v2/alice/../bob/app/blobs/uploads/", basic("alice", "alice-pw"), nil); r.Status != 400 {
		t.Errorf("path trick on the API: %d %s", r.Status, r.Body)
	}

	// Tokens berth must refuse: expired, for another service, signed by
	// another key, a refresh token used as an access token.
	key, kid := tokenKey(t, b, aliceTok)
	// berth's own claims (source, a digest of alice's entry) from a real
	// token, so the forged ones differ only where the case says.
	parsed, _ := jwt.ParseSigned(aliceTok, []jose.SignatureAlgorithm{jose.ES256})
	var priv struct {
		Berth any `json:"berth"`
	}
	parsed.UnsafeClaimsWithoutVerification(&priv)
	own := []accessEntry{{Type: "repository", Name: "alice/app", Actions: []string{"pull"}}}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	manifest := b.URL() + "/v2/alice/app/manifests/latest"
	for _, tc := range []struct {
		name, tok string
		want      int
	}{
		{"valid", signWith(t, key, kid, "alice", "berth", time.Now().Add(time.Minute), own, priv.Berth), 404},
		{"expired", signWith(t, key, kid, "alice", "berth", time.Now().Add(-time.Minute), own, priv.Berth), 401},
		{"another service", signWith(t, key, kid, "alice", "other", time.Now().Add(time.Minute), own, priv.Berth), 401},
		{"bad signature", signWith(t, otherKey, kid, "alice", "berth", time.Now().Add(time.Minute), own, priv.Berth), 401},
		{"garbage", "abc.def.ghi", 401},
	} {
		r := do(t, "GET", manifest, bearer(tc.tok), nil)
		if r.Status != tc.want || (tc.want == 401 && !strings.Contains(ch(r), `error="invalid_token"`)) {
			t.Errorf("%s token: %d %q %s", tc.name, r.Status, ch(r), r.Body)
		}
	}
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-pw"}, "service": {"berth"}, "access_type": {"offline"}, "client_id": {"test"}}
	pr := do(t, "POST", realm, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, []byte(form.Encode()))
	var oauth struct {
		Refresh string `json:"refresh_token"`
	}
	mustJSONBody(t, pr, &oauth)
	if r := do(t, "GET", b.URL()+"/v2/", bearer(oauth.Refresh), nil); r.Status != 401 {
		t.Errorf("refresh token as access token: %d", r.Status)
	}

	// Revoked user: a token issued before the user was removed stops
	// working at once.
	malTok, _ := fetchToken(t, realm, basic("mallory", "mallory-pw"), "berth", "repository:mallory/app:pull,push")
	if r := do(t, "POST", b.URL()+"/v2/mallory/app/blobs/uploads/", bearer(malTok), nil); r.Status != 202 {
		t.Fatalf("mallory before removal: %d %s", r.Status, r.Body)
	}
	writeHtpasswd(t, users, map[string]string{"admin": "admin-pw", "alice": "alice-pw", "victim": "victim-pw"})
	harness.WaitFor(t, 10*time.Second, "mallory's token to be refused", func() (bool, string) {
		r := do(t, "POST", b.URL()+"/v2/mallory/app/blobs/uploads/", bearer(malTok), nil)
		return r.Status == 401, fmt.Sprintf("status %d", r.Status)
	})

	// Oversized Authorization headers: refused by berth (401), or by the
	// HTTP server before berth sees them (431).
	if r := do(t, "GET", b.URL()+"/v2/", map[string]string{"Authorization": "Bearer " + strings.Repeat("A", 20<<10)}, nil); r.Status != 401 {
		t.Errorf("20 KiB Authorization: %d", r.Status)
	}
	if r := do(t, "GET", b.URL()+"/v2/", map[string]string{"Authorization": "Basic " + strings.Repeat("A", 100<<10)}, nil); r.Status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100 KiB Authorization: %d", r.Status)
	}

	// Tag lists need pull on the repository; the catalog shows only what
	// the caller may pull.
	if r := do(t, "GET", b.URL()+"/v2/alice/app/tags/list", basic("alice", "alice-pw"), nil); r.Status != 404 {
		t.Errorf("alice's tag list of her empty repository: %d %s", r.Status, r.Body)
	}
	if r := do(t, "GET", b.URL()+"/v2/admin/app/tags/list", basic("alice", "alice-pw"), nil); r.Status != 403 {
		t.Errorf("alice's tag list of admin/app: %d %s", r.Status, r.Body)
	}
	if r := do(t, "GET", b.URL()+"/v2/_catalog", nil, nil); r.Status != 200 {
		t.Errorf("anonymous catalog (anonymous may pull public/*): %d", r.Status)
	}

	// Brute force against one account: refused with 429 and Retry-After,
	// the right password included, while other accounts still work.
	var last resp
	for i := 0; i < 8; i++ {
		last = do(t, "GET", b.URL()+"/v2/", basic("victim", fmt.Sprintf("guess-%d", i)), nil)
		if last.Status == 429 {
			break
		}
	}
	if last.Status != 429 || last.ErrorCode() != "TOOMANYREQUESTS" {
		t.Fatalf("after repeated failures: %d %s", last.Status, last.Body)
	}
	if ra, err := strconv.Atoi(last.Header.Get("Retry-After")); err != nil || ra <= 0 {
		t.Errorf("Retry-After %q", last.Header.Get("Retry-After"))
	}
	if r := do(t, "GET", b.URL()+"/v2/", basic("victim", "victim-pw"), nil); r.Status != 429 {
		t.Errorf("locked account with the right password: %d", r.Status)
	}
	if _, r := fetchToken(t, realm, basic("victim", "victim-pw"), "berth"); r.Status != 429 {
		t.Errorf("locked account at the realm: %d", r.Status)
	}
	if r := do(t, "GET", b.URL()+"/v2/", basic("admin", "admin-pw"), nil); r.Status != 200 {
		t.Errorf("another account: %d", r.Status)
	}
	// ... and from one address, whatever the accounts.
	for i := 0; i < 10; i++ {
		last = do(t, "GET", b.URL()+"/v2/", basic(fmt.Sprintf("nobody%d", i), "x"), nil)
	}
	if last.Status != 429 {
		t.Errorf("scanning accounts from one address: %d", last.Status)
	}

	noSecretsLogged(t, b, "admin-pw", "alice-pw", "mallory-pw", "victim-pw", aliceTok, anonTok, oauth.Refresh)
}

func mustJSONBody(t *testing.T, r resp, v any) {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	if err := jsonUnmarshal(r.Body, v); err != nil {
		t.Fatalf("%v: %s", err, r.Body)
	}
}
