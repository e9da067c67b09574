package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/berth-registry/berth/internal/content"
)

// MaxScopeLength bounds one scope string; a repository name is at most
// content.MaxNameLength bytes, so anything much longer is not a real scope.
const MaxScopeLength = 1024

// ErrInvalidScope is wrapped by ParseScope errors.
var ErrInvalidScope = errors.New("invalid scope")

// ParseScope parses one token-auth scope, "TYPE[(CLASS)]:NAME:ACTIONS"
// (spec/auth/scope.md). Repository names are checked with
// content.ValidateName, so "repository:../x:push", empty names, upper case
// and escaped characters are refused rather than matched against rules.
// The resource class is dropped, actions are de-duplicated and unknown
// actions are kept (policy evaluation grants none of them). The registry
// resource only knows "catalog".
func ParseScope(s string) (Access, error) {
	if len(s) > MaxScopeLength {
		return Access{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidScope, MaxScopeLength)
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c == '"' || c == '\\' {
			return Access{}, fmt.Errorf("%w: %q contains a forbidden character", ErrInvalidScope, truncate(s))
		}
	}
	first := strings.IndexByte(s, ':')
	last := strings.LastIndexByte(s, ':')
	if first < 0 || first == last {
		return Access{}, fmt.Errorf("%w: %q is not TYPE:NAME:ACTIONS", ErrInvalidScope, truncate(s))
	}
	typ, name, acts := s[:first], s[first+1:last], s[last+1:]
	if i := strings.IndexByte(typ, '('); i >= 0 {
		if !strings.HasSuffix(typ, ")") {
			return Access{}, fmt.Errorf("%w: %q has a malformed resource class", ErrInvalidScope, truncate(s))
		}
		typ = typ[:i]
	}
	var actions []string
	for _, a := range strings.Split(acts, ",") {
		if a == "" {
			continue
		}
		if !slices.Contains(actions, a) {
			actions = append(actions, a)
		}
	}
	switch typ {
	case "repository":
		if err := content.ValidateName(name); err != nil {
			return Access{}, fmt.Errorf("%w: %v", ErrInvalidScope, err)
		}
	case "registry":
		if name != "catalog" {
			return Access{}, fmt.Errorf("%w: unknown registry resource %q", ErrInvalidScope, truncate(name))
		}
	default:
		return Access{}, fmt.Errorf("%w: unknown resource type %q", ErrInvalidScope, truncate(typ))
	}
	return Access{Type: typ, Name: name, Actions: actions}, nil
}

// ParseScopes parses the scope parameters of a token request. Each value
// may itself hold several space-separated scopes (OAuth2 form).
func ParseScopes(values []string) ([]Access, error) {
	var out []Access
	for _, v := range values {
		for _, s := range strings.Fields(v) {
			a, err := ParseScope(s)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
	}
	return MergeAccess(out), nil
}

// MergeAccess combines entries for the same resource, keeping first-seen
// order, and drops entries left with no actions.
func MergeAccess(in []Access) []Access {
	var out []Access
	for _, a := range in {
		i := slices.IndexFunc(out, func(b Access) bool { return b.Type == a.Type && b.Name == a.Name })
		if i < 0 {
			out = append(out, Access{Type: a.Type, Name: a.Name})
			i = len(out) - 1
		}
		for _, act := range a.Actions {
			if !slices.Contains(out[i].Actions, act) {
				out[i].Actions = append(out[i].Actions, act)
			}
		}
	}
	return slices.DeleteFunc(out, func(a Access) bool { return len(a.Actions) == 0 })
}

// Scope renders accesses as a space-separated scope list, as used in a
// challenge's scope parameter and OAuth2 responses.
func Scope(access []Access) string {
	parts := make([]string, 0, len(access))
	for _, a := range access {
		if len(a.Actions) > 0 {
			parts = append(parts, a.String())
		}
	}
	return strings.Join(parts, " ")
}

// Covers reports whether granted includes every action of every entry of
// want. "*" in granted covers any action of that resource.
func Covers(granted, want []Access) bool {
	for _, w := range want {
		for _, act := range w.Actions {
			if !grants(granted, w.Type, w.Name, act) {
				return false
			}
		}
	}
	return true
}

func grants(granted []Access, typ, name, action string) bool {
	for _, g := range granted {
		if g.Type == typ && g.Name == name && (slices.Contains(g.Actions, action) || slices.Contains(g.Actions, ActionAll)) {
			return true
		}
	}
	return false
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
