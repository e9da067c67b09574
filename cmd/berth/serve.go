package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/berth-registry/berth/internal/server"
)

// minimalConfig is the subset of registry:2's config.yml read until the full
// configuration package lands.
type minimalConfig struct {
	Log struct {
		Level string `yaml:"level"`
	} `yaml:"log"`
	HTTP struct {
		Addr string `yaml:"addr"`
	} `yaml:"http"`
	Storage struct {
		Filesystem struct {
			RootDirectory string `yaml:"rootdirectory"`
		} `yaml:"filesystem"`
		Delete struct {
			Enabled bool `yaml:"enabled"`
		} `yaml:"delete"`
	} `yaml:"storage"`
}

func newServeCmd() *cobra.Command {
	var addr, root string
	cmd := &cobra.Command{
		Use:   "serve [CONFIG.yml]",
		Short: "Run the registry",
		Long: `Run the registry. With no arguments it listens on :5000 and stores
under ./data. CONFIG.yml is a registry:2 configuration file.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := minimalConfig{}
			cfg.HTTP.Addr = ":5000"
			cfg.Storage.Filesystem.RootDirectory = "./data"
			cfg.Log.Level = "info"
			if len(args) == 1 {
				b, err := os.ReadFile(args[0])
				if err != nil {
					return fmt.Errorf("read config: %w", err)
				}
				if err := yaml.Unmarshal(b, &cfg); err != nil {
					return fmt.Errorf("parse config %s: %w", args[0], err)
				}
			}
			if addr != "" {
				cfg.HTTP.Addr = addr
			}
			if root != "" {
				cfg.Storage.Filesystem.RootDirectory = root
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(strings.ToUpper(cfg.Log.Level))); err != nil {
				return fmt.Errorf("log.level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			slog.SetDefault(log)

			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			srv, err := server.New(ctx, server.Options{
				Addr:          cfg.HTTP.Addr,
				RootDirectory: cfg.Storage.Filesystem.RootDirectory,
				DeleteEnabled: cfg.Storage.Delete.Enabled,
				AccessLog:     true,
				Logger:        log,
			})
			if err != nil {
				return err
			}
			defer srv.Close()
			return srv.Serve(ctx)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "listen address (overrides http.addr; default :5000)")
	cmd.Flags().StringVar(&root, "root", "", "storage root directory (overrides storage.filesystem.rootdirectory; default ./data)")
	return cmd
}
