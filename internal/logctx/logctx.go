// Package logctx carries a request's logger, and what the access log needs to
// know about the request, in its context. The HTTP middleware puts a logger
// carrying the request id into the context; every layer below logs through
// FromContext, so each line a request causes carries the same request_id.
//
// The authenticated account is found by the API layer, deep below the
// middleware, in a context the middleware never sees; SetAccount records it
// in a holder the middleware created, so the access line can name the user.
package logctx

import (
	"context"
	"log/slog"
	"sync/atomic"
)

type key struct{}

type state struct {
	log     *slog.Logger
	account *atomic.Pointer[string] // shared with contexts derived by With
}

// With returns a context whose logger is log. A context derived from one
// that already had a logger keeps sharing its account holder.
func With(ctx context.Context, log *slog.Logger) context.Context {
	st := &state{log: log}
	if parent, ok := ctx.Value(key{}).(*state); ok {
		st.account = parent.account
	} else {
		st.account = new(atomic.Pointer[string])
	}
	return context.WithValue(ctx, key{}, st)
}

// FromContext returns the logger of ctx, or slog.Default() if it has none.
func FromContext(ctx context.Context) *slog.Logger {
	return FromContextOr(ctx, slog.Default())
}

// FromContextOr returns the logger of ctx, or fallback if it has none.
func FromContextOr(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if st, ok := ctx.Value(key{}).(*state); ok && st.log != nil {
		return st.log
	}
	return fallback
}

// SetAccount records the authenticated account of the request ctx belongs
// to, for its access-log line. It does nothing if no logger was put into
// ctx's ancestry with With.
func SetAccount(ctx context.Context, account string) {
	if st, ok := ctx.Value(key{}).(*state); ok {
		st.account.Store(&account)
	}
}

// Account returns what SetAccount recorded for the request ctx belongs to,
// or "" (anonymous, or not authenticated yet).
func Account(ctx context.Context) string {
	if st, ok := ctx.Value(key{}).(*state); ok {
		if a := st.account.Load(); a != nil {
			return *a
		}
	}
	return ""
}
