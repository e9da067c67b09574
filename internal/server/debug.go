package server

import (
	"context"
	"expvar"
	"net/http"
	"net/http/pprof"
	"time"
)

// serveDebug starts the operators' listener of Options.DebugAddr: profiles,
// expvar, the health checks' state and, if enabled, the Prometheus metrics. It stops when ctx is
// cancelled or stop is called; stop waits for that.
func (s *Server) serveDebug(ctx context.Context) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles below it
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	mux.Handle("/debug/health", s.health.Handler())
	what := "debugging: pprof, expvar, health"
	if s.opts.Metrics != nil {
		path := s.opts.MetricsPath
		if path == "" {
			path = "/metrics"
		}
		mux.Handle(path, s.opts.Metrics.Handler())
		what += ", metrics at " + path
	}
	// No write timeout: a CPU profile or trace streams for as long as it
	// was asked to (?seconds=N).
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}
	return s.serveAside(ctx, srv, s.opts.DebugAddr, "http.debug.addr", what)
}
