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
	"sync"
	"sync/atomic"
)

type key struct{}

type state struct {
	// log is built on first use from base and attrs: most requests log
	// nothing but their access line, and deriving a logger costs more than
	// the rest of a manifest HEAD.
	base  *slog.Logger
	attrs []any
	once  sync.Once
	log   *slog.Logger

	account   *atomic.Pointer[string] // shared with contexts derived by With
	requestID string                  // inherited by contexts derived by With
}

func (st *state) logger() *slog.Logger {
	st.once.Do(func() {
		st.log = st.base
		if len(st.attrs) > 0 {
			st.log = st.base.With(st.attrs...)
		}
	})
	return st.log
}

// WithAttrs returns a context whose logger is base with attrs added, built
// only if something logs through it.
func WithAttrs(ctx context.Context, base *slog.Logger, attrs ...any) context.Context {
	return context.WithValue(ctx, key{}, newState(ctx, base, attrs))
}

// WithRequest is WithAttrs for an HTTP request: the logger carries the
// request's id as request_id, and RequestID returns it (notifications name
// the request that caused an event by it).
func WithRequest(ctx context.Context, base *slog.Logger, id string) context.Context {
	st := newState(ctx, base, []any{slog.String("request_id", id)})
	st.requestID = id
	return context.WithValue(ctx, key{}, st)
}

func newState(ctx context.Context, base *slog.Logger, attrs []any) *state {
	st := &state{base: base, attrs: attrs}
	if parent, ok := ctx.Value(key{}).(*state); ok {
		st.account, st.requestID = parent.account, parent.requestID
	} else {
		st.account = new(atomic.Pointer[string])
	}
	return st
}

// With returns a context whose logger is log. A context derived from one
// that already had a logger keeps sharing its account holder.
func With(ctx context.Context, log *slog.Logger) context.Context {
	return WithAttrs(ctx, log)
}

// FromContext returns the logger of ctx, or slog.Default() if it has none.
func FromContext(ctx context.Context) *slog.Logger {
	return FromContextOr(ctx, slog.Default())
}

// FromContextOr returns the logger of ctx, or fallback if it has none.
func FromContextOr(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if st, ok := ctx.Value(key{}).(*state); ok && st.base != nil {
		return st.logger()
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

// RequestID returns the id WithRequest gave the request ctx belongs to, or
// "".
func RequestID(ctx context.Context) string {
	if st, ok := ctx.Value(key{}).(*state); ok {
		return st.requestID
	}
	return ""
}
