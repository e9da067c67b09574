// Package server assembles a running registry from its parts: storage
// driver, index, content model, API handler and the HTTP server around them,
// and owns their lifecycle (start-up rebuild, background upload purge, graceful
// shutdown).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-registry/berth/internal/api"
	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/health"
	"github.com/berth-registry/berth/internal/metrics"
	"github.com/berth-registry/berth/internal/notify"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/filesystem"
	"github.com/berth-registry/berth/internal/ui"
)

// Options are the settings the server needs, already resolved from the
// configuration file, environment and flags.
type Options struct {
	Addr string
	// Driver is the storage backend; nil means a filesystem driver at
	// RootDirectory.
	Driver storage.Driver
	// RootDirectory is the filesystem driver's root.
	RootDirectory string
	// IndexPath is where the embedded index lives; empty means
	// RootDirectory/berth/index.db, or a temporary file when there is no
	// root directory (in-memory storage).
	IndexPath string
	// IndexDSN, if set, keeps the index in PostgreSQL instead
	// (berth.index.postgres.dsn): one index shared by every instance
	// serving the same storage. IndexPath is then unused.
	IndexDSN string
	// IndexMaxConns bounds the PostgreSQL index's connection pools; 0 is
	// the default.
	IndexMaxConns int
	// Prefix is the path the API is served under ("/registry" serves
	// "/registry/v2/"), for registries behind a proxy path (http.prefix).
	Prefix string
	// Host is the absolute base URL for URLs handed to clients (http.host);
	// empty hands out relative URLs.
	Host string
	// RedirectBlobs sends blob downloads to the storage backend's own URLs
	// when the driver can make them (storage.redirect).
	RedirectBlobs   bool
	DeleteEnabled   bool
	ReadOnly        bool
	MaxManifestSize int64
	// UploadPurging deletes abandoned uploads in the background from New
	// to Close (storage.maintenance.uploadpurging); never when ReadOnly.
	UploadPurging UploadPurging
	// DrainTimeout bounds how long shutdown waits for in-flight requests;
	// zero does not wait: connections are closed at once (registry:2's
	// behaviour without http.draintimeout).
	DrainTimeout time.Duration
	// Headers are added to every response (http.headers).
	Headers   http.Header
	AccessLog bool
	// Authorizer checks every request; nil allows everything.
	Authorizer auth.Authorizer
	Logger     *slog.Logger
	// Handlers are served beside the API, by path below Prefix: exact
	// paths (berth's token endpoint, /auth/token), or, for a path ending
	// in "/", everything below it.
	Handlers map[string]http.Handler
	// UI serves the read-only web UI under Prefix/ui/ (berth.ui.enabled),
	// authorized by Authorizer like the API.
	UI bool
	// TLS, if set, makes Addr an HTTPS listener (see internal/tlsconf).
	TLS *tls.Config
	// RedirectAddr, if set, is a plain-HTTP listener beside the TLS one,
	// served by RedirectHandler (ACME HTTP-01 challenges, redirects to
	// HTTPS) and shut down with it.
	RedirectAddr    string
	RedirectHandler http.Handler
	// Started, if set, is called once Addr accepts connections (ACME
	// certificates are obtained then: TLS-ALPN-01 arrives on Addr).
	Started func(ctx context.Context)
	// DebugAddr, if set, is a second plain-HTTP listener for operators
	// (http.debug.addr): net/http/pprof under /debug/pprof/, expvar at
	// /debug/vars and, with Metrics, the Prometheus metrics at
	// MetricsPath. It has no authentication, as in registry:2: bind it to
	// loopback or a management network.
	DebugAddr string
	// Metrics, if set, records every request (http.debug.prometheus).
	Metrics     *metrics.Metrics
	MetricsPath string
	// HealthChecks run while serving (registry:2's health section): while
	// one fails, every request is answered 503 UNAVAILABLE, and
	// /debug/health on the debug listener says which and why.
	HealthChecks []health.Check
	// StorageHealth, if set, adds registry:2's storage driver check
	// (health.storagedriver) to HealthChecks.
	StorageHealth *StorageHealth
	// Notifier, if set, is told of every push, pull, mount and delete
	// (notifications.endpoints). Close flushes it, for NotifyFlushTimeout
	// at most.
	Notifier *notify.Notifier
}

// NotifyFlushTimeout bounds how long Close keeps delivering queued
// notifications before it gives them up.
const NotifyFlushTimeout = 5 * time.Second

// StorageHealth is the storage driver's health check: a Stat of the
// storage root every Interval (a root not created yet is healthy: nothing
// was pushed), failing after Threshold failures in a row.
type StorageHealth struct {
	Interval  time.Duration
	Threshold int
}

// uiPath is where the web UI is mounted, below Prefix.
const uiPath = "/ui"

// Server is a registry ready to serve.
type Server struct {
	opts    Options
	log     *slog.Logger
	index   closableIndex
	handler http.Handler
	tempDir string         // removed on Close
	build   *content.Build // the index being built in the background, or nil
	health  *health.Monitor
	purger  *uploadPurger // the background upload purge, or nil
}

// New opens storage and the index, rebuilding the index from storage when it
// is missing or was not closed cleanly: before returning, or in the
// background when storage holds repositories (prepareIndex).
func New(ctx context.Context, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	driver := opts.Driver
	if driver == nil {
		fs, err := filesystem.New(opts.RootDirectory)
		if err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		driver = fs
	}
	idx, tempDir, err := openIndex(ctx, opts, opts.ReadOnly, log)
	if err != nil {
		return nil, err
	}
	reg := content.New(driver, idx, content.Options{
		MaxManifestSize: opts.MaxManifestSize,
		DeleteEnabled:   opts.DeleteEnabled,
		ReadOnly:        opts.ReadOnly,
		Logger:          log,
	})
	build, err := prepareIndex(ctx, idx, reg, opts, log)
	if err != nil {
		idx.Close()
		if tempDir != "" {
			os.RemoveAll(tempDir)
		}
		return nil, err
	}
	prefix := "/" + strings.Trim(opts.Prefix, "/")
	if prefix == "/" {
		prefix = ""
	}
	urlBase := prefix
	if opts.Host != "" {
		urlBase = strings.TrimSuffix(opts.Host, "/") + prefix
	}
	apiOpts := api.Options{Authorizer: opts.Authorizer, URLBase: urlBase, RedirectBlobs: opts.RedirectBlobs, Logger: log}
	if opts.Notifier != nil { // a nil *Notifier in the interface would not be nil
		apiOpts.Events = opts.Notifier
	}
	var h http.Handler = api.New(reg, apiOpts)
	handlers := opts.Handlers
	if opts.UI {
		handlers = maps.Clone(handlers)
		if handlers == nil {
			handlers = map[string]http.Handler{}
		}
		handlers[uiPath+"/"] = http.StripPrefix(uiPath, ui.New(ui.Options{
			Registry: reg, Authorizer: opts.Authorizer, Base: prefix + uiPath, Host: opts.Host, Logger: log,
		}))
	}
	h = withHandlers(h, handlers)
	if opts.Metrics != nil {
		h = withMetrics(h, opts.Metrics)
	}
	if prefix != "" {
		h = http.StripPrefix(prefix, h)
	}
	checks := opts.HealthChecks
	if sh := opts.StorageHealth; sh != nil {
		checks = append(slices.Clip(checks), health.Check{
			Name: "storagedriver_" + driver.Name(), Interval: sh.Interval, Threshold: sh.Threshold,
			Run: func(ctx context.Context) error {
				if _, err := driver.Stat(ctx, "/"); err != nil && !errors.Is(err, storage.ErrNotFound) {
					return err
				}
				return nil
			},
		})
	}
	monitor := health.New(checks)
	h = withHealth(h, monitor)
	h = withHeaders(h, opts.Headers)
	h = withRequestLog(h, log, opts.AccessLog)
	purger := startUploadPurger(ctx, reg, opts, log)
	s := &Server{opts: opts, log: log, index: idx, handler: h, tempDir: tempDir, build: build, health: monitor, purger: purger}
	if opts.Metrics != nil && opts.Notifier != nil {
		opts.Metrics.NotificationQueues(func() []metrics.Queue {
			stats := opts.Notifier.Stats()
			out := make([]metrics.Queue, len(stats))
			for i, q := range stats {
				out[i] = metrics.Queue{Endpoint: q.Endpoint, Pending: q.Pending, Delivered: q.Delivered, Failures: q.Failures, Dropped: q.Dropped}
			}
			return out
		})
	}
	if opts.Metrics != nil {
		opts.Metrics.Gauge("berth_index_building", "1 while the index is being built in the background: manifest pushes and listings wait for it.", s.indexBuilding)
	}
	return s, nil
}

// indexBuilding is 1 while a background index build runs, else 0.
func (s *Server) indexBuilding() float64 {
	if s.build == nil {
		return 0
	}
	select {
	case <-s.build.Done():
		return 0
	default:
		return 1
	}
}

// WaitIndex returns once the index is built: at once unless New left it
// building in the background, else when that build ends (with its
// failure) or ctx does. Requests need not call it (those that need the
// index wait for it); benchmarks and embedders that want a settled
// registry do.
func (s *Server) WaitIndex(ctx context.Context) error {
	if s.build == nil {
		return nil
	}
	select {
	case <-s.build.Done(): // a finished build answers even to an expired ctx
		return s.build.Err()
	default:
	}
	select {
	case <-s.build.Done():
		return s.build.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Handler is the registry's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops the background upload purge and a background index build,
// delivers the notifications still queued (for NotifyFlushTimeout at most),
// and releases the index, marking it clean (a stopped build leaves it
// stale: it is built again at the next start).
func (s *Server) Close() error {
	s.purger.stop()
	if s.opts.Notifier != nil {
		ctx, cancel := context.WithTimeout(context.Background(), NotifyFlushTimeout)
		s.opts.Notifier.Close(ctx)
		cancel()
	}
	if s.build != nil {
		s.build.Stop()
	}
	err := s.index.Close()
	if s.tempDir != "" {
		os.RemoveAll(s.tempDir)
	}
	return err
}

// Serve listens on opts.Addr until ctx is cancelled, then drains.
func (s *Server) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.opts.Addr, err)
	}
	if s.opts.RedirectAddr != "" {
		stop, err := s.serveRedirect(ctx)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	if s.opts.DebugAddr != "" {
		stop, err := s.serveDebug(ctx)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener serves on ln until ctx is cancelled, then stops accepting
// (closing ln, so new connections are refused) and lets in-flight requests
// finish within the drain timeout; what is still running then has its
// connection closed. With no drain timeout every connection is closed at
// once.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	// Handlers keep running a moment after their connection is closed;
	// they are waited for (briefly) so that Close finds the index idle. Each
	// holds a read lock; shutdown takes the write lock.
	var inflight sync.RWMutex
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inflight.RLock()
			defer inflight.RUnlock()
			s.handler.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 30 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	ln = s.wrapTLS(ln)
	s.log.Info("berth listening", "addr", ln.Addr().String(), "tls", s.opts.TLS != nil)
	if len(s.health.Names()) > 0 {
		s.log.Info("health checks running", "checks", s.health.Names())
		stopChecks := s.health.Start(ctx)
		defer stopChecks()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if s.opts.Started != nil {
		s.opts.Started(ctx)
	}
	var buildDone <-chan struct{}
	if s.build != nil {
		buildDone = s.build.Done()
	}
	var buildErr error
wait:
	for {
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			break wait
		case <-buildDone:
			// A failed build stops the server, as it would have
			// stopped it from starting: the index cannot be trusted.
			if buildErr = s.build.Err(); buildErr != nil {
				s.log.Error("index build failed: stopping", "err", buildErr)
				break wait
			}
			buildDone = nil
		}
	}
	if s.opts.DrainTimeout <= 0 {
		s.log.Info("shutting down: closing all connections (http.draintimeout is 0)")
		srv.Close()
	} else {
		s.log.Info("shutting down: draining in-flight requests", "timeout", s.opts.DrainTimeout)
		drainCtx, cancel := context.WithTimeout(context.Background(), s.opts.DrainTimeout)
		defer cancel()
		if err := srv.Shutdown(drainCtx); err != nil {
			s.log.Warn("drain timeout reached, closing remaining connections", "err", err)
			srv.Close()
		}
	}
	err := <-errc
	// Closed connections cancel their requests' contexts, so the handlers
	// still running end soon; bound the wait all the same.
	done := make(chan struct{})
	go func() { inflight.Lock(); close(done) }()
	select {
	case <-done:
	case <-time.After(handlerExitTimeout):
		s.log.Warn("requests still running after their connections were closed", "waited", handlerExitTimeout)
	}
	if buildErr != nil {
		return fmt.Errorf("build index: %w", buildErr)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// handlerExitTimeout bounds how long shutdown waits, after closing the
// connections, for their handlers to return.
const handlerExitTimeout = 5 * time.Second
