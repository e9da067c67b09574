package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/berth-registry/berth/internal/auth/setup"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/health"
	"github.com/berth-registry/berth/internal/metrics"
	"github.com/berth-registry/berth/internal/notify"
	"github.com/berth-registry/berth/internal/server"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/inmemory"
	"github.com/berth-registry/berth/internal/storage/s3"
	"github.com/berth-registry/berth/internal/storage/swift"
	"github.com/berth-registry/berth/internal/tlsconf"
)

func newServeCmd() *cobra.Command {
	var addr, root string
	cmd := &cobra.Command{
		Use:   "serve [CONFIG.yml]",
		Short: "Run the registry",
		Long: `Run the registry.

With no configuration at all it listens on :5000 and stores under ./data.
CONFIG.yml is a registry:2 configuration file (default: the file named by
REGISTRY_CONFIGURATION_PATH, if set). REGISTRY_* environment variables
override the file, with registry:2's rules: REGISTRY_HTTP_ADDR=:5001 sets
http.addr. Flags override both.`,
		Example: `  berth serve
  berth serve /etc/docker/registry/config.yml
  berth serve --addr 127.0.0.1:5000 --root /var/lib/registry
  REGISTRY_STORAGE_DELETE_ENABLED=true berth serve`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(args)
			if err != nil {
				return err
			}
			if addr != "" {
				cfg.HTTP.Addr = addr
			}
			if root != "" {
				if cfg.Storage.Filesystem == nil {
					return errors.New("--root applies to filesystem storage only")
				}
				cfg.Storage.Filesystem.RootDirectory = root
			}
			return serve(cmd.Context(), cfg, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "listen address (overrides http.addr; default :5000)")
	cmd.Flags().StringVar(&root, "root", "", "storage root directory (overrides storage.filesystem.rootdirectory; default ./data)")
	return cmd
}

func serve(ctx context.Context, cfg *config.Config, stderr io.Writer) error {
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	for _, w := range cfg.Warnings() {
		log.Warn("configuration: " + w)
	}
	if err := refuseUnsafe(cfg); err != nil {
		return err
	}
	if err := dropPrivileges(cfg, log); err != nil {
		return err
	}
	driver, err := newDriver(ctx, cfg, log)
	if err != nil {
		return err
	}
	access, err := newAuthorizer(cfg, log)
	if err != nil {
		return err
	}
	tlsSetup, err := tlsconf.New(cfg, log)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	opts := server.Options{
		Addr:            cfg.HTTP.Addr,
		Driver:          driver,
		IndexPath:       cfg.IndexPath(),
		DeleteEnabled:   cfg.Storage.Delete.Enabled,
		ReadOnly:        cfg.Storage.Maintenance.ReadOnly.Enabled,
		MaxManifestSize: int64(cfg.Berth.Manifests.MaxSize),
		DrainTimeout:    cfg.HTTP.DrainTimeout,
		Headers:         http.Header(cfg.HTTP.Headers),
		Prefix:          cfg.HTTP.Prefix,
		Host:            cfg.HTTP.Host,
		RedirectBlobs:   !cfg.Storage.Redirect.Disable,
		AccessLog:       !cfg.Log.AccessLog.Disabled,
		Authorizer:      access.Authorizer,
		Handlers:        access.Handlers,
		UI:              cfg.Berth.UI.Enabled,
		Logger:          log,
	}
	if up := cfg.Storage.Maintenance.UploadPurging; up.Enabled {
		opts.UploadPurging = server.UploadPurging{Enabled: true, Age: up.Age, Interval: up.Interval, DryRun: up.DryRun}
	}
	if cfg.Storage.Filesystem != nil {
		opts.RootDirectory = cfg.Storage.Filesystem.RootDirectory
	}
	if pg := cfg.Berth.Index.Postgres; pg != nil {
		opts.IndexDSN, opts.IndexMaxConns = pg.DSN, pg.MaxConns
	}
	opts.HealthChecks = healthChecks(cfg)
	if h := cfg.Health; h != nil && h.StorageDriver.Enabled {
		opts.StorageHealth = &server.StorageHealth{Interval: h.StorageDriver.Interval, Threshold: h.StorageDriver.Threshold}
	}
	if d := cfg.HTTP.Debug; d != nil && d.Addr != "" {
		opts.DebugAddr = d.Addr
		if d.Prometheus.Enabled {
			opts.Metrics, opts.MetricsPath = metrics.New(version), d.Prometheus.Path
		}
	}
	if tlsSetup != nil {
		opts.TLS = tlsSetup.Config
		opts.RedirectAddr, opts.RedirectHandler = tlsSetup.RedirectAddr, tlsSetup.RedirectHandler
		opts.Started = tlsSetup.Started
	}
	if opts.Notifier, err = newNotifier(cfg, log); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, opts)
	if err != nil {
		if opts.Notifier != nil {
			opts.Notifier.Close(ctx) // nothing queued yet
		}
		return err
	}
	defer srv.Close()
	log.Info("berth starting", "version", version, "storage", cfg.Storage.Driver(),
		"delete", opts.DeleteEnabled, "readonly", opts.ReadOnly, "ui", opts.UI)
	return srv.Serve(ctx)
}

// refuseUnsafe stops start-up when the configuration asks for something
// berth does not do yet and running without it would be unsafe or
// misleading: an auth provider (the registry would be open), a storage
// driver (data would go elsewhere) or a pull-through cache (proxy: it would
// be an empty registry accepting pushes instead of a mirror).
// Other unimplemented keys only warn: storage.cache, which registry:2's own
// default config.yml sets, health, ...
func refuseUnsafe(cfg *config.Config) error {
	for _, key := range cfg.Unimplemented() {
		switch {
		case key == "auth", strings.HasPrefix(key, "auth."),
			key == "storage."+cfg.Storage.Driver(),
			key == "proxy":
			return fmt.Errorf("configuration: %s is not supported by this version of berth; refusing to start rather than run without it", key)
		}
	}
	return nil
}

func newDriver(ctx context.Context, cfg *config.Config, log *slog.Logger) (storage.Driver, error) {
	switch cfg.Storage.Driver() {
	case "filesystem":
		return nil, nil // the server opens it at RootDirectory
	case "inmemory":
		return inmemory.New(), nil
	case "s3":
		params, err := driverParams(cfg.Storage.S3)
		if err != nil {
			return nil, err
		}
		p, err := s3.FromMap(params)
		if err != nil {
			return nil, fmt.Errorf("storage.s3: %w", err)
		}
		d, err := s3.New(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("storage.s3: %w", err)
		}
		return d, nil
	case "swift":
		params, err := driverParams(cfg.Storage.Swift)
		if err != nil {
			return nil, err
		}
		p, err := swift.FromMap(params)
		if err != nil {
			return nil, fmt.Errorf("storage.swift: %w", err)
		}
		for _, w := range p.Warnings {
			log.Warn("configuration: storage.swift: " + w)
		}
		d, err := swift.New(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("storage.swift: %w", err)
		}
		return d, nil
	}
	return nil, fmt.Errorf("storage driver %q is not supported", cfg.Storage.Driver())
}

// driverParams turns a typed driver section back into the parameter map
// registry:2 drivers take, so each driver parses its own keys in one place.
func driverParams(section any) (map[string]any, error) {
	b, err := yaml.Marshal(section)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// newAuthorizer builds access control from the auth and berth.auth
// sections (internal/auth/setup). Without them, everyone may do
// everything, as with registry:2.
func newAuthorizer(cfg *config.Config, log *slog.Logger) (*setup.Result, error) {
	res, err := setup.FromConfig(cfg, log)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	log.Info("access control", "mode", res.Mode)
	return res, nil
}

func newLogger(cfg *config.Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch cfg.Log.Formatter {
	case "json", "logstash":
		h = slog.NewJSONHandler(w, hopts)
	default:
		h = slog.NewTextHandler(w, hopts)
	}
	log := slog.New(h)
	for k, v := range cfg.Log.Fields {
		log = log.With(k, v)
	}
	return log, nil
}

// newNotifier starts the senders of notifications.endpoints, or returns
// nil when no endpoint is enabled: the API then has no notification code
// on its path at all.
func newNotifier(cfg *config.Config, log *slog.Logger) (*notify.Notifier, error) {
	n := cfg.Notifications
	if n == nil || !slices.ContainsFunc(n.Endpoints, func(e config.Endpoint) bool { return !e.Disabled }) {
		return nil, nil
	}
	var endpoints []notify.Endpoint
	for _, e := range n.Endpoints {
		endpoints = append(endpoints, notify.Endpoint{
			Name: e.Name, URL: e.URL, Disabled: e.Disabled, Headers: http.Header(e.Headers),
			Timeout: e.Timeout, Threshold: e.Threshold, Backoff: e.Backoff,
			IgnoredMediaTypes: append(slices.Clip(e.IgnoredMediaTypes), e.Ignore.MediaTypes...),
			IgnoredActions:    e.Ignore.Actions,
		})
	}
	nt, err := notify.New(notify.Options{
		Endpoints:         endpoints,
		IncludeReferences: n.Events.IncludeReferences,
		SourceAddr:        notify.SourceAddr(cfg.HTTP.Addr),
		Logger:            log,
	})
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return nt, nil
}

// healthChecks are the health section's checks (registry:2's) other than
// the storage driver's, which the server runs on the driver it opens:
// files that must not exist, HTTP URIs and TCP addresses that must answer.
func healthChecks(cfg *config.Config) []health.Check {
	h := cfg.Health
	if h == nil {
		return nil
	}
	var checks []health.Check
	for _, f := range h.File {
		checks = append(checks, health.Check{Name: f.File, Interval: f.Interval, Run: health.FileCheck(f.File)})
	}
	for _, c := range h.HTTP {
		checks = append(checks, health.Check{Name: c.URI, Interval: c.Interval, Threshold: c.Threshold,
			Run: health.HTTPCheck(c.URI, http.Header(c.Headers), c.StatusCode, c.Timeout)})
	}
	for _, c := range h.TCP {
		checks = append(checks, health.Check{Name: c.Addr, Interval: c.Interval, Threshold: c.Threshold,
			Run: health.TCPCheck(c.Addr, c.Timeout)})
	}
	return checks
}
