package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Principal is an authenticated caller: an account, the groups a source
// put it in, and which source vouched for it. A nil *Principal is the
// anonymous caller.
type Principal struct {
	Account string
	Groups  []string
	// Source names the source that authenticated the account ("htpasswd",
	// "ldap", "robot"); Lookup goes back to it.
	Source string
	// Ref is source-specific state carried in berth's tokens so the source
	// can tell later whether the login still stands (a robot token's id, a
	// digest of the htpasswd entry so a password change revokes it).
	Ref string
}

// InGroup reports whether p is a member of group.
func (p *Principal) InGroup(group string) bool {
	return p != nil && slices.Contains(p.Groups, group)
}

// Errors a Source returns from Authenticate and Lookup.
var (
	// ErrUnknownUser: the source does not know the account.
	ErrUnknownUser = errors.New("unknown user")
	// ErrBadPassword: the source knows the account; the secret is wrong.
	ErrBadPassword = errors.New("wrong password")
	// ErrRevoked: the account (or the credential a token was issued for)
	// no longer exists or has changed.
	ErrRevoked = errors.New("credential revoked")
)

// Source checks credentials: an htpasswd file set, an LDAP directory,
// berth's robot token store.
type Source interface {
	// Name identifies the source in principals and tokens.
	Name() string
	// Authenticate checks user and password. It returns ErrUnknownUser or
	// ErrBadPassword when the credentials are not good here, or another
	// error when the source could not answer (directory down). It must
	// take about as long for unknown users as for wrong passwords.
	Authenticate(ctx context.Context, user, password string) (*Principal, error)
	// Lookup re-checks a principal this source authenticated earlier and
	// returns it with current groups, or ErrRevoked.
	Lookup(ctx context.Context, p Principal) (*Principal, error)
}

// Chain tries sources in order. The first source that accepts the
// credentials wins; a source failure is reported only if no source
// accepted them.
type Chain []Source

// Authenticate returns the principal of the first source accepting user
// and password. Errors: ErrBadPassword if a source knew the user (or none
// did: callers must not tell the two apart), or a source failure.
func (c Chain) Authenticate(ctx context.Context, user, password string) (*Principal, error) {
	if user == "" || password == "" {
		return nil, ErrBadPassword
	}
	var failure error
	for _, s := range c {
		p, err := s.Authenticate(ctx, user, password)
		switch {
		case err == nil:
			return p, nil
		case errors.Is(err, ErrUnknownUser), errors.Is(err, ErrBadPassword):
		default:
			if failure == nil {
				failure = fmt.Errorf("%s: %w", s.Name(), err)
			}
		}
	}
	if failure != nil {
		return nil, failure
	}
	return nil, ErrBadPassword
}

// Lookup sends p back to the source that authenticated it.
func (c Chain) Lookup(ctx context.Context, p Principal) (*Principal, error) {
	for _, s := range c {
		if s.Name() == p.Source {
			return s.Lookup(ctx, p)
		}
	}
	return nil, ErrRevoked
}
