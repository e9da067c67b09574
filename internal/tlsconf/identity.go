package tlsconf

import (
	"crypto/tls"
	"net/http"
)

// ClientIdentity returns the name in the client certificate that berth
// verified for r (http.tls.clientcas): the subject's common name, or, if
// that is empty, the first DNS name, then the first e-mail address of the
// certificate. ok is false for requests without a verified client
// certificate (no TLS, no client certificate, or one that was only
// requested and not verified, as with clientauth request-client-cert).
//
// Access control can use it as the account of a request that carries no
// other credentials.
func ClientIdentity(r *http.Request) (name string, ok bool) {
	return ConnIdentity(r.TLS)
}

// ConnIdentity is ClientIdentity for a connection state.
func ConnIdentity(cs *tls.ConnectionState) (name string, ok bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", false
	}
	leaf := cs.VerifiedChains[0][0]
	switch {
	case leaf.Subject.CommonName != "":
		return leaf.Subject.CommonName, true
	case len(leaf.DNSNames) > 0:
		return leaf.DNSNames[0], true
	case len(leaf.EmailAddresses) > 0:
		return leaf.EmailAddresses[0], true
	}
	return "", false
}
