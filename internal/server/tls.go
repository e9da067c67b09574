package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// wrapTLS returns ln as a TLS listener when Options.TLS is set.
func (s *Server) wrapTLS(ln net.Listener) net.Listener {
	if s.opts.TLS == nil {
		return ln
	}
	return tls.NewListener(ln, s.opts.TLS)
}

// serveRedirect starts the plain-HTTP listener of Options.RedirectAddr. It
// stops when ctx is cancelled or stop is called; stop waits for that.
func (s *Server) serveRedirect(ctx context.Context) (stop func(), err error) {
	h := s.opts.RedirectHandler
	if h == nil {
		h = http.NotFoundHandler()
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	return s.serveAside(ctx, srv, s.opts.RedirectAddr, "berth.tls.httpredirect.addr",
		"plain HTTP: ACME challenges and redirects to HTTPS")
}

// serveAside runs srv on a listener at addr beside the registry's own (the
// plain-HTTP redirects, the debug listener); key is the setting that asked
// for it, for errors. It stops when ctx is cancelled or stop is called;
// stop waits for that.
func (s *Server) serveAside(ctx context.Context, srv *http.Server, addr, key, what string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s (%s): %w", addr, key, err)
	}
	srv.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	s.log.Info("berth listening for "+what, "addr", ln.Addr().String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("listener failed", "addr", addr, "setting", key, "err", err)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return func() { cancel(); <-done }, nil
}
