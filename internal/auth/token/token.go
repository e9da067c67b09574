// Package token signs and verifies the JSON Web Tokens of the Docker
// registry token authentication scheme (spec/auth/token.md and jwt.md in
// distribution's docs): berth's own token service signs them with its key;
// tokens from an external issuer (cesanta/docker_auth and the like) are
// verified against registry:2's auth.token settings: a root certificate
// bundle (x5c chains or libtrust key ids) and/or a JWKS file.
package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/berth-registry/berth/internal/auth"
)

// MaxTokenLength bounds a token presented to Verify.
const MaxTokenLength = 16 << 10

// Kinds of berth tokens.
const (
	KindAccess  = ""        // a bearer token for the registry
	KindRefresh = "refresh" // a refresh (identity) token for the token service
)

// Claims are a token's contents.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	Expiry    time.Time
	NotBefore time.Time
	IssuedAt  time.Time
	ID        string
	Access    []auth.Access
	// Berth is set in tokens berth issued itself.
	Berth *BerthClaims
}

// BerthClaims are berth's private claims: the kind of token and enough
// about the principal to re-check it on every use.
type BerthClaims struct {
	Kind   string   `json:"kind,omitempty"`
	Source string   `json:"src,omitempty"`
	Ref    string   `json:"ref,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// resourceActions is the "access" claim entry.
type resourceActions struct {
	Type    string   `json:"type"`
	Class   string   `json:"class,omitempty"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type privateClaims struct {
	Access []resourceActions `json:"access"`
	Berth  *BerthClaims      `json:"berth,omitempty"`
}

// KeyID is the libtrust fingerprint of a public key that the token
// specification requires as "kid": SHA-256 of the DER-encoded public key,
// truncated to 240 bits, base32, in twelve groups of four joined by ':'.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	s := base32.StdEncoding.EncodeToString(sum[:30])
	var parts []string
	for i := 0; i < len(s); i += 4 {
		parts = append(parts, s[i:i+4])
	}
	return strings.Join(parts, ":"), nil
}

// Signer issues tokens.
type Signer struct {
	issuer string
	alg    jose.SignatureAlgorithm
	kid    string
	pub    crypto.PublicKey
	signer jose.Signer
}

// NewSigner signs as issuer with key (ECDSA P-256/384/521, RSA or Ed25519).
func NewSigner(key crypto.Signer, issuer string) (*Signer, error) {
	if issuer == "" {
		return nil, errors.New("token signer: issuer is required")
	}
	alg, err := algorithmFor(key)
	if err != nil {
		return nil, err
	}
	kid, err := KeyID(key.Public())
	if err != nil {
		return nil, err
	}
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	return &Signer{issuer: issuer, alg: alg, kid: kid, pub: key.Public(), signer: js}, nil
}

func algorithmFor(key crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return "", errors.New("token signer: RSA keys must have at least 2048 bits")
		}
		return jose.RS256, nil
	case ed25519.PrivateKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("token signer: unsupported key type %T", key)
}

// KeyID is the signing key's kid.
func (s *Signer) KeyID() string { return s.kid }

// Issuer is the iss claim of every token.
func (s *Signer) Issuer() string { return s.issuer }

// PublicKey is the key tokens verify with.
func (s *Signer) PublicKey() crypto.PublicKey { return s.pub }

// Algorithm is the JWS algorithm.
func (s *Signer) Algorithm() string { return string(s.alg) }

// Sign serialises c as a signed JWT. The issuer is always the signer's; a
// missing ID is filled with a random one.
func (s *Signer) Sign(c Claims) (string, error) {
	c.Issuer = s.issuer
	if c.ID == "" {
		c.ID = randomID()
	}
	std := jwt.Claims{
		Issuer:   c.Issuer,
		Subject:  c.Subject,
		Audience: jwt.Audience(c.Audience),
		ID:       c.ID,
	}
	if !c.Expiry.IsZero() {
		std.Expiry = jwt.NewNumericDate(c.Expiry)
	}
	if !c.NotBefore.IsZero() {
		std.NotBefore = jwt.NewNumericDate(c.NotBefore)
	}
	if !c.IssuedAt.IsZero() {
		std.IssuedAt = jwt.NewNumericDate(c.IssuedAt)
	}
	priv := privateClaims{Access: []resourceActions{}, Berth: c.Berth}
	for _, a := range c.Access {
		priv.Access = append(priv.Access, resourceActions{Type: a.Type, Name: a.Name, Actions: a.Actions})
	}
	return jwt.Signed(s.signer).Claims(std).Claims(priv).Serialize()
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Verifier checks tokens: signature by a trusted key, issuer, audience
// (the service), expiry and not-before.
type Verifier struct {
	issuer  string
	service string
	keys    map[string]crypto.PublicKey
	roots   *x509.CertPool
	algs    []jose.SignatureAlgorithm
	leeway  time.Duration
	now     func() time.Time
}

// VerifierOptions configure a Verifier.
type VerifierOptions struct {
	// Issuer must equal the iss claim. Required.
	Issuer string
	// Service must be among the aud claim. Required.
	Service string
	// RootCertBundle is a PEM file of certificates: tokens carrying an
	// x5c chain must chain to one of them; tokens with a kid may be
	// signed by one of their keys (kid = libtrust fingerprint).
	RootCertBundle string
	// JWKS is a JSON Web Key Set file of trusted public keys, by kid.
	JWKS string
	// Keys are further trusted public keys by kid (berth's own).
	Keys map[string]crypto.PublicKey
	// Algorithms allowed; empty means the asymmetric ones in the spec
	// (RS*, PS*, ES*, EdDSA). HMAC and "none" are never allowed.
	Algorithms []string
	// Leeway for exp/nbf/iat; clocks of an external issuer may differ.
	Leeway time.Duration
	Now    func() time.Time
}

var defaultAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// NewVerifier loads the trusted keys.
func NewVerifier(o VerifierOptions) (*Verifier, error) {
	if o.Issuer == "" || o.Service == "" {
		return nil, errors.New("token verifier: issuer and service are required")
	}
	v := &Verifier{issuer: o.Issuer, service: o.Service, keys: map[string]crypto.PublicKey{}, leeway: o.Leeway, now: o.Now}
	if v.now == nil {
		v.now = time.Now
	}
	for kid, k := range o.Keys {
		v.keys[kid] = k
	}
	if o.RootCertBundle != "" {
		certs, err := loadCerts(o.RootCertBundle)
		if err != nil {
			return nil, err
		}
		v.roots = x509.NewCertPool()
		for _, c := range certs {
			v.roots.AddCert(c)
			kid, err := KeyID(c.PublicKey)
			if err != nil {
				return nil, fmt.Errorf("rootcertbundle %s: %w", o.RootCertBundle, err)
			}
			v.keys[kid] = c.PublicKey
		}
	}
	if o.JWKS != "" {
		data, err := os.ReadFile(o.JWKS)
		if err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(data, &set); err != nil {
			return nil, fmt.Errorf("jwks %s: %w", o.JWKS, err)
		}
		for _, k := range set.Keys {
			if k.KeyID == "" {
				return nil, fmt.Errorf("jwks %s: a key without kid", o.JWKS)
			}
			pub := k.Public()
			if !pub.Valid() || !pub.IsPublic() {
				return nil, fmt.Errorf("jwks %s: key %q is not an asymmetric key", o.JWKS, k.KeyID)
			}
			v.keys[k.KeyID] = pub.Key
		}
	}
	if len(v.keys) == 0 && v.roots == nil {
		return nil, errors.New("token verifier: no trusted keys (rootcertbundle or jwks)")
	}
	if len(o.Algorithms) == 0 {
		v.algs = defaultAlgorithms
	} else {
		for _, a := range o.Algorithms {
			alg := jose.SignatureAlgorithm(a)
			if !containsAlg(defaultAlgorithms, alg) {
				return nil, fmt.Errorf("token verifier: signing algorithm %q is not allowed (want one of RS256..EdDSA)", a)
			}
			v.algs = append(v.algs, alg)
		}
	}
	return v, nil
}

func containsAlg(list []jose.SignatureAlgorithm, a jose.SignatureAlgorithm) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

func loadCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rootcertbundle: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("rootcertbundle %s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("rootcertbundle %s: no certificates", path)
	}
	return certs, nil
}

// Errors from Verify. Their text is safe to show to clients.
var (
	ErrMalformed = errors.New("malformed token")
	ErrSignature = errors.New("token signature is invalid or its key is not trusted")
	ErrExpired   = errors.New("token has expired")
	ErrNotYet    = errors.New("token is not valid yet")
	ErrIssuer    = errors.New("token has the wrong issuer")
	ErrAudience  = errors.New("token is for another service")
	ErrNoExpiry  = errors.New("token has no expiry")
)

// Verify checks raw and returns its claims.
func (v *Verifier) Verify(raw string) (*Claims, error) {
	if len(raw) > MaxTokenLength {
		return nil, ErrMalformed
	}
	tok, err := jwt.ParseSigned(raw, v.algs)
	if err != nil || len(tok.Headers) != 1 {
		return nil, ErrMalformed
	}
	key, err := v.keyFor(tok.Headers[0])
	if err != nil {
		return nil, err
	}
	var std jwt.Claims
	var priv privateClaims
	if err := tok.Claims(key, &std, &priv); err != nil {
		return nil, ErrSignature
	}
	if std.Expiry == nil {
		return nil, ErrNoExpiry
	}
	err = std.ValidateWithLeeway(jwt.Expected{Issuer: v.issuer, AnyAudience: jwt.Audience{v.service}, Time: v.now()}, v.leeway)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrExpired):
		return nil, ErrExpired
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		return nil, ErrNotYet
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return nil, ErrIssuer
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, ErrAudience
	default:
		return nil, ErrMalformed
	}
	c := &Claims{
		Issuer:   std.Issuer,
		Subject:  std.Subject,
		Audience: []string(std.Audience),
		ID:       std.ID,
		Berth:    priv.Berth,
		Expiry:   std.Expiry.Time(),
	}
	if std.NotBefore != nil {
		c.NotBefore = std.NotBefore.Time()
	}
	if std.IssuedAt != nil {
		c.IssuedAt = std.IssuedAt.Time()
	}
	for _, ra := range priv.Access {
		c.Access = append(c.Access, auth.Access{Type: ra.Type, Name: ra.Name, Actions: ra.Actions})
	}
	c.Access = auth.MergeAccess(c.Access)
	return c, nil
}

// keyFor finds the verification key: the leaf of an x5c chain that
// verifies against the root bundle, else the trusted key named by kid.
func (v *Verifier) keyFor(h jose.Header) (crypto.PublicKey, error) {
	var roots *x509.CertPool
	if v.roots != nil {
		roots = v.roots
	} else {
		roots = x509.NewCertPool() // nothing chains to an empty pool
	}
	chains, err := h.Certificates(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: v.now()})
	switch {
	case errors.Is(err, jose.ErrMissingX5cHeader):
	case err != nil || len(chains) == 0 || len(chains[0]) == 0:
		return nil, ErrSignature
	default:
		return chains[0][0].PublicKey, nil
	}
	if h.KeyID != "" {
		if k, ok := v.keys[h.KeyID]; ok {
			return k, nil
		}
	}
	return nil, ErrSignature
}

// LoadOrCreateKey reads a PEM private key (PKCS#8, SEC 1 "EC PRIVATE KEY"
// or PKCS#1 "RSA PRIVATE KEY") from path, or, if the file does not exist,
// generates an ECDSA P-256 key and writes it there (mode 0600).
func LoadOrCreateKey(path string) (crypto.Signer, bool, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(data)
		if err != nil {
			return nil, false, fmt.Errorf("token key %s: %w", path, err)
		}
		return k, false, nil
	}
	if !os.IsNotExist(err) {
		return nil, false, fmt.Errorf("token key: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("token key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".token-key-*")
	if err != nil {
		return nil, false, fmt.Errorf("token key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, false, err
	}
	if err := tmp.Close(); err != nil {
		return nil, false, err
	}
	// Link, not rename: if another instance created the key meanwhile,
	// keep theirs and use it.
	if err := os.Link(tmp.Name(), path); err != nil {
		if os.IsExist(err) {
			k, _, err := LoadOrCreateKey(path)
			return k, false, err
		}
		return nil, false, fmt.Errorf("token key: %w", err)
	}
	return key, true, nil
}

// ParseKey parses a PEM private key.
func ParseKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM private key found")
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		return s, nil
	}
}
