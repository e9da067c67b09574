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
	ln, err := net.Listen("tcp", s.opts.RedirectAddr)
	if err != nil {
		return nil, fmt.Errorf("listen %s (berth.tls.httpredirect.addr): %w", s.opts.RedirectAddr, err)
	}
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
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.log.Info("berth listening for plain HTTP: ACME challenges and redirects to HTTPS", "addr", ln.Addr().String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("plain-HTTP listener failed", "addr", s.opts.RedirectAddr, "err", err)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return func() { cancel(); <-done }, nil
}
