package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/berth-registry/berth/internal/auth"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func claims(access ...auth.Access) Claims {
	return Claims{
		Subject:   "alice",
		Audience:  []string{"registry"},
		IssuedAt:  t0,
		NotBefore: t0,
		Expiry:    t0.Add(5 * time.Minute),
		Access:    access,
	}
}

func TestKeyIDFormat(t *testing.T) {
	kid, err := KeyID(ecKey(t).Public())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$`).MatchString(kid) {
		t.Errorf("kid %q is not in libtrust format", kid)
	}
}

func TestRoundTrip(t *testing.T) {
	key := ecKey(t)
	s, err := NewSigner(key, "berth")
	if err != nil {
		t.Fatal(err)
	}
	c := claims(auth.Repository("a/b", "pull", "push"), auth.Catalog)
	c.Berth = &BerthClaims{Source: "htpasswd", Ref: "abc", Groups: []string{"g"}}
	raw, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierOptions{Issuer: "berth", Service: "registry",
		Keys: map[string]crypto.PublicKey{s.KeyID(): s.PublicKey()}, Now: func() time.Time { return t0.Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "alice" || got.Issuer != "berth" || got.ID == "" ||
		!reflect.DeepEqual(got.Access, c.Access) || !reflect.DeepEqual(got.Berth, c.Berth) {
		t.Errorf("claims = %+v", got)
	}
	// The header carries the libtrust kid, typ JWT and ES256.
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	var h map[string]any
	json.Unmarshal(hdr, &h)
	if h["kid"] != s.KeyID() || h["alg"] != "ES256" || h["typ"] != "JWT" {
		t.Errorf("header = %v", h)
	}
}

func TestVerifyRejects(t *testing.T) {
	key := ecKey(t)
	s, _ := NewSigner(key, "berth")
	other, _ := NewSigner(ecKey(t), "berth")
	now := t0.Add(time.Minute)
	v, err := NewVerifier(VerifierOptions{Issuer: "berth", Service: "registry",
		Keys: map[string]crypto.PublicKey{s.KeyID(): s.PublicKey()}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(s *Signer, mod func(*Claims)) string {
		c := claims(auth.Repository("a", "pull"))
		mod(&c)
		raw, err := s.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	good := sign(s, func(*Claims) {})
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"pull"`, `"push"`, 1))) + "." + parts[2]

	// alg none and HS256 signed with the public key's bytes.
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	pubDER, _ := x509.MarshalPKIXPublicKey(key.Public())
	hsHdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT","kid":"` + s.KeyID() + `"}`))
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(hsHdr + "." + parts[1]))
	hs := hsHdr + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	tests := []struct {
		name string
		raw  string
		want error
	}{
		{"expired", sign(s, func(c *Claims) { c.Expiry = now.Add(-time.Second) }), ErrExpired},
		{"not yet", sign(s, func(c *Claims) { c.NotBefore = now.Add(time.Hour) }), ErrNotYet},
		{"other service", sign(s, func(c *Claims) { c.Audience = []string{"elsewhere"} }), ErrAudience},
		{"no audience", sign(s, func(c *Claims) { c.Audience = nil }), ErrAudience},
		{"no expiry", sign(s, func(c *Claims) { c.Expiry = time.Time{} }), ErrNoExpiry},
		{"other key", sign(other, func(*Claims) {}), ErrSignature},
		{"tampered", tampered, ErrSignature},
		{"alg none", none, ErrMalformed},
		{"hs256 with public key", hs, ErrMalformed},
		{"garbage", "abc.def.ghi", ErrMalformed},
		{"empty", "", ErrMalformed},
		{"huge", strings.Repeat("a", MaxTokenLength+1), ErrMalformed},
	}
	for _, tc := range tests {
		_, err := v.Verify(tc.raw)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	// The wrong issuer is caught even with a trusted key.
	wrongIss, _ := NewSigner(key, "someone-else")
	if _, err := v.Verify(sign(wrongIss, func(*Claims) {})); !errors.Is(err, ErrIssuer) {
		t.Errorf("wrong issuer: %v", err)
	}
}

// testCA makes a root CA and a leaf signed by it, writing the root's PEM.
func testCA(t *testing.T, dir string) (rootPEM string, leafKey *rsa.PrivateKey, leaf, root *x509.Certificate) {
	t.Helper()
	rootKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	rootDER, err := x509.CreateCertificate(rand.Reader, rt, rt, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ = x509.ParseCertificate(rootDER)
	leafKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	lt := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "auth_service"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, lt, root, leafKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(leafDER)
	rootPEM = filepath.Join(dir, "root.pem")
	os.WriteFile(rootPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}), 0o644)
	return rootPEM, leafKey, leaf, root
}

// signExternal signs like an external token server, with either a kid or
// an x5c chain.
func signExternal(t *testing.T, key crypto.Signer, alg jose.SignatureAlgorithm, kid string, x5c []*x509.Certificate, c jwt.Claims, access []map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if len(x5c) > 0 {
		var chain []string
		for _, cert := range x5c {
			chain = append(chain, base64.StdEncoding.EncodeToString(cert.Raw))
		}
		opts = opts.WithHeader("x5c", chain)
	}
	sk := jose.SigningKey{Algorithm: alg, Key: key}
	if kid != "" {
		sk.Key = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	signer, err := jose.NewSigner(sk, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(c).Claims(map[string]any{"access": access}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestExternalIssuer(t *testing.T) {
	dir := t.TempDir()
	rootPEM, leafKey, leaf, _ := testCA(t, dir)
	now := t0.Add(time.Minute)
	std := jwt.Claims{Issuer: "auth_service", Subject: "jgsqware", Audience: jwt.Audience{"registry"},
		Expiry: jwt.NewNumericDate(t0.Add(15 * time.Minute)), NotBefore: jwt.NewNumericDate(t0), IssuedAt: jwt.NewNumericDate(t0)}
	access := []map[string]any{{"type": "repository", "name": "jgsqware/ubuntu-git", "actions": []string{"pull", "push"}}}

	// Key ids: docker_auth names the key by its libtrust fingerprint and
	// the bundle holds its certificate.
	leafPEM := filepath.Join(dir, "leaf.pem")
	os.WriteFile(leafPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o644)
	kid, _ := KeyID(leafKey.Public())
	v, err := NewVerifier(VerifierOptions{Issuer: "auth_service", Service: "registry", RootCertBundle: leafPEM, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(signExternal(t, leafKey, jose.RS256, kid, nil, std, access))
	if err != nil {
		t.Fatalf("kid token: %v", err)
	}
	if c.Subject != "jgsqware" || !reflect.DeepEqual(c.Access, []auth.Access{auth.Repository("jgsqware/ubuntu-git", "pull", "push")}) || c.Berth != nil {
		t.Errorf("claims = %+v", c)
	}
	if _, err := v.Verify(signExternal(t, leafKey, jose.RS256, "AAAA:BBBB", nil, std, access)); !errors.Is(err, ErrSignature) {
		t.Errorf("unknown kid: %v", err)
	}

	// x5c: the chain must verify against the root bundle.
	v2, err := NewVerifier(VerifierOptions{Issuer: "auth_service", Service: "registry", RootCertBundle: rootPEM, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Verify(signExternal(t, leafKey, jose.RS256, "", []*x509.Certificate{leaf}, std, access)); err != nil {
		t.Errorf("x5c token: %v", err)
	}
	// A self-made chain does not verify.
	_, otherKey, otherLeaf, _ := testCA(t, t.TempDir())
	if _, err := v2.Verify(signExternal(t, otherKey, jose.RS256, "", []*x509.Certificate{otherLeaf}, std, access)); !errors.Is(err, ErrSignature) {
		t.Errorf("untrusted x5c: %v", err)
	}
	// A trusted chain but a signature by another key.
	if _, err := v2.Verify(signExternal(t, otherKey, jose.RS256, "", []*x509.Certificate{leaf}, std, access)); !errors.Is(err, ErrSignature) {
		t.Errorf("x5c with another key's signature: %v", err)
	}

	// JWKS.
	ek := ecKey(t)
	jwks := filepath.Join(dir, "jwks.json")
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ek.Public(), KeyID: "key-1", Algorithm: "ES256", Use: "sig"}}}
	data, _ := json.Marshal(set)
	os.WriteFile(jwks, data, 0o644)
	v3, err := NewVerifier(VerifierOptions{Issuer: "auth_service", Service: "registry", JWKS: jwks, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v3.Verify(signExternal(t, ek, jose.ES256, "key-1", nil, std, access)); err != nil {
		t.Errorf("jwks token: %v", err)
	}
	if _, err := v3.Verify(signExternal(t, ecKey(t), jose.ES256, "key-1", nil, std, access)); !errors.Is(err, ErrSignature) {
		t.Errorf("jwks kid, other key: %v", err)
	}

	// Restricting algorithms.
	v4, err := NewVerifier(VerifierOptions{Issuer: "auth_service", Service: "registry", JWKS: jwks, Algorithms: []string{"RS256"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v4.Verify(signExternal(t, ek, jose.ES256, "key-1", nil, std, access)); err == nil {
		t.Error("ES256 accepted with signingalgorithms [RS256]")
	}
	if _, err := NewVerifier(VerifierOptions{Issuer: "a", Service: "b", JWKS: jwks, Algorithms: []string{"HS256"}}); err == nil {
		t.Error("HS256 allowed")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "key.pem")
	k1, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	k2, created, err := LoadOrCreateKey(path)
	if err != nil || created {
		t.Fatalf("load: %v %v", created, err)
	}
	id1, _ := KeyID(k1.Public())
	id2, _ := KeyID(k2.Public())
	if id1 != id2 {
		t.Error("reloaded key differs")
	}
	// RSA PKCS#1 keys load too.
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaPath := filepath.Join(t.TempDir(), "rsa.pem")
	os.WriteFile(rsaPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), 0o600)
	k3, _, err := LoadOrCreateKey(rsaPath)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := NewSigner(k3, "x"); err != nil || s.Algorithm() != "RS256" {
		t.Errorf("rsa signer: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, _, err := LoadOrCreateKey(bad); err == nil {
		t.Error("garbage key accepted")
	}
}
