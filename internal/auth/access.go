// Package auth decides who is calling and what they may do. The API layer
// describes each request as the access it needs (Docker token-auth scopes:
// repository:NAME:pull,push,delete and registry:catalog:*); an Authorizer
// answers with the caller's identity or an error the API turns into the
// spec's 401, 403 or 429.
package auth

import (
	"net/http"
	"strings"
)

// Actions a scope can ask for.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	ActionAll    = "*"
)

// Access is one resource and the actions wanted on it, as in a token scope.
type Access struct {
	Type    string // "repository" or "registry"
	Name    string // repository name, or "catalog"
	Actions []string
}

// String renders the access as a token scope: "repository:a/b:pull,push".
func (a Access) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// Repository is shorthand for a repository access.
func Repository(name string, actions ...string) Access {
	return Access{Type: "repository", Name: name, Actions: actions}
}

// Catalog is the access needed to list repositories.
var Catalog = Access{Type: "registry", Name: "catalog", Actions: []string{ActionAll}}

// Identity is an authenticated (or anonymous) caller.
type Identity interface {
	// Account is the user name, or "" for an anonymous caller.
	Account() string
	// Can reports whether the caller may perform action on repo; listings
	// use it to show only what the caller may pull.
	Can(repo, action string) bool
}

// Authorizer authenticates a request and checks the access it needs.
type Authorizer interface {
	Authorize(r *http.Request, access []Access) (Identity, error)
}

// AllowAll is the Authorizer of a registry without authentication: everyone
// may do everything, as with registry:2 without an auth section.
type AllowAll struct{}

func (AllowAll) Authorize(*http.Request, []Access) (Identity, error) { return anonymous{}, nil }

type anonymous struct{}

func (anonymous) Account() string         { return "" }
func (anonymous) Can(string, string) bool { return true }

// Error is a refusal the API reports as-is: 401 UNAUTHORIZED with a
// challenge, 403 DENIED, or 429 TOOMANYREQUESTS.
type Error struct {
	Status    int
	Code      string
	Message   string
	Challenge string      // WWW-Authenticate value, for 401
	Detail    []Access    // what was asked for, reported to the client
	Header    http.Header // extra response headers (Retry-After)
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
