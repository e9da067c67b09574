package gate

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/policy"
)

// withClientCert marks r as arriving over TLS with a verified client
// certificate for cn, as the TLS listener does when http.tls.clientcas
// verified it.
func withClientCert(r *http.Request, cn string) *http.Request {
	leaf := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
	r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}
	return r
}

var ciRules = []policy.Rule{
	{Account: []string{"ci-bot"}, Repository: []string{"ci/*"}, Actions: []string{"pull", "push"}},
	{Account: []string{"*"}, Actions: []string{"pull"}},
}

func TestClientCertificateIsALogin(t *testing.T) {
	f := newFixture(t, Basic, ciRules, func(o *Options) { o.ClientCertificates = true })
	status := func(cn string, access ...auth.Access) int {
		r := f.request("GET", "/v2/", req{})
		if cn != "" {
			r = withClientCert(r, cn)
		}
		_, err := f.gate.Authorize(r, access)
		if err == nil {
			return 200
		}
		return err.(*auth.Error).Status
	}
	push := auth.Repository("ci/app", auth.ActionPull, auth.ActionPush)
	if got := status("ci-bot", push); got != 200 {
		t.Errorf("ci-bot's certificate pushing to ci/app: %d, want 200", got)
	}
	if got := status("ci-bot", auth.Repository("prod/app", auth.ActionPull, auth.ActionPush)); got != http.StatusForbidden {
		t.Errorf("ci-bot pushing outside ci/*: %d, want 403", got)
	}
	if got := status("someone", auth.Repository("ci/app", auth.ActionPull)); got != 200 {
		t.Errorf("another certificate pulling: %d, want 200", got)
	}
	if got := status("", auth.Repository("ci/app", auth.ActionPull)); got != http.StatusUnauthorized {
		t.Errorf("no certificate, no credentials: %d, want 401", got)
	}
	if got := status("ci-bot"); got != 200 {
		t.Errorf("/v2/ with a certificate: %d, want 200", got)
	}
}

func TestClientCertificateIgnoredUnlessEnabled(t *testing.T) {
	f := newFixture(t, Basic, ciRules, nil)
	r := withClientCert(f.request("GET", "/v2/", req{}), "ci-bot")
	_, err := f.gate.Authorize(r, []auth.Access{auth.Repository("ci/app", auth.ActionPull, auth.ActionPush)})
	if ae, ok := err.(*auth.Error); !ok || ae.Status != http.StatusUnauthorized {
		t.Errorf("certificate without berth.auth.clientcertificates: %v, want 401", err)
	}
}

func TestClientCertificateAtTheTokenEndpoint(t *testing.T) {
	f := newFixture(t, Token, ciRules, func(o *Options) { o.ClientCertificates = true })
	params := url.Values{"service": {"registry.test"}, "scope": {"repository:ci/app:pull,push"}}
	r := withClientCert(f.request("GET", "/auth/token?"+params.Encode(), req{}), "ci-bot")
	w := httptest.NewRecorder()
	f.gate.TokenHandler().ServeHTTP(w, r)
	var tr tokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &tr); w.Code != 200 || err != nil || tr.Token == "" {
		t.Fatalf("token endpoint: %d %s", w.Code, w.Body)
	}
	tok := tr.Token
	// The token works for the push, and is re-checked without a source
	// named after client certificates.
	_, err := f.gate.Authorize(f.request("PUT", "/v2/ci/app/manifests/v1", req{bearer: tok}),
		[]auth.Access{auth.Repository("ci/app", auth.ActionPull, auth.ActionPush)})
	if err != nil {
		t.Fatalf("push with the certificate's token: %v", err)
	}
}
