package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-registry/berth/internal/auth/setup"
	"github.com/berth-registry/berth/internal/config"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "config",
		Short:   "Inspect berth's configuration",
		Example: `  berth config check /etc/docker/registry/config.yml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newConfigCheckCmd())
	return cmd
}

func newConfigCheckCmd() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "check [CONFIG.yml]",
		Short: "Validate the configuration and print the one berth would use",
		Long: `Validate a configuration and print the effective configuration berth would
run with: the file, overridden by REGISTRY_* environment variables, with
defaults filled in. Secrets (passwords, http.secret, storage keys, ...) are
printed as <redacted>.

CONFIG.yml defaults to the file named by REGISTRY_CONFIGURATION_PATH; with
neither, the environment and defaults alone are checked, as "berth serve"
would use them.

The effective configuration goes to standard output; warnings (keys berth
does not implement yet, deprecated keys, variables that are not applied)
and errors go to standard error. Every error names the file and line, or
the environment variable, and the key. The exit status is 0 when berth
would start with this configuration and 1 when it would refuse to.`,
		Example: `  berth config check /etc/docker/registry/config.yml
  REGISTRY_HTTP_ADDR=127.0.0.1:5001 berth config check config.yml
  berth config check -q config.yml && systemctl restart berth`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := config.PathFromEnv(os.Environ())
			if len(args) == 1 {
				path = args[0]
			}
			return checkConfig(path, os.Environ(), quiet, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only validate: print warnings and errors, not the configuration")
	return cmd
}

// checkConfig loads and validates the configuration as serve would, printing
// the redacted effective configuration to stdout and warnings to stderr.
func checkConfig(path string, environ []string, quiet bool, stdout, stderr io.Writer) error {
	cfg, err := config.Load(path, environ)
	if err != nil {
		return err
	}
	if err := refuseUnsafe(cfg); err != nil {
		return err
	}
	if err := setup.Check(cfg); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if _, err := newLogger(cfg, io.Discard); err != nil {
		return err
	}
	if err := checkFiles(cfg); err != nil {
		return err
	}
	if !quiet {
		out, err := cfg.Redacted()
		if err != nil {
			return err
		}
		src := "defaults and environment (no configuration file)"
		if path != "" {
			src = path + ", environment and defaults"
		}
		fmt.Fprintf(stdout, "# effective configuration: %s\n", src)
		stdout.Write(out)
	}
	warnings := cfg.Warnings()
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	what := "configuration"
	if path != "" {
		what = path
	}
	switch len(warnings) {
	case 0:
		fmt.Fprintf(stderr, "%s: valid\n", what)
	case 1:
		fmt.Fprintf(stderr, "%s: valid, with 1 warning\n", what)
	default:
		fmt.Fprintf(stderr, "%s: valid, with %d warnings\n", what, len(warnings))
	}
	return nil
}

// checkFiles checks that the files the configuration names exist, are
// regular files and can be opened: what serve would find out at start-up.
func checkFiles(cfg *config.Config) error {
	var errs []error
	for _, f := range configFiles(cfg) {
		where := ""
		if src := cfg.Source(f.key); src != "" {
			where = src + ": "
		}
		st, err := os.Stat(f.path)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s%s: %w", where, f.key, err))
		case st.IsDir():
			errs = append(errs, fmt.Errorf("%s%s: %s is a directory, not a file", where, f.key, f.path))
		default:
			fh, err := os.Open(f.path)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s%s: %w", where, f.key, err))
				continue
			}
			fh.Close()
		}
	}
	return errors.Join(errs...)
}

// formatError renders err for the terminal: a configuration error with
// several problems lists one per line.
func formatError(err error) string {
	var ce *config.Error
	if !errors.As(err, &ce) {
		return err.Error()
	}
	var multi interface{ Unwrap() []error }
	if errors.As(err, &multi) && len(multi.Unwrap()) > 1 {
		errs := multi.Unwrap()
		var b strings.Builder
		fmt.Fprintf(&b, "invalid configuration (%d problems):", len(errs))
		for _, e := range errs {
			b.WriteString("\n  ")
			b.WriteString(e.Error())
		}
		return b.String()
	}
	return "invalid configuration: " + err.Error()
}

// runConfigFileArg runs "berth CONFIG.yml" as "berth serve CONFIG.yml", as
// registry:2's image entrypoint does, so a container command that is just a
// config path ("docker run IMAGE /etc/docker/registry/config.yml") works.
// With no arguments it shows help.
func runConfigFileArg(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	if len(args) == 1 && (strings.HasSuffix(args[0], ".yml") || strings.HasSuffix(args[0], ".yaml")) {
		serveCmd := newServeCmd()
		serveCmd.SetArgs(args)
		serveCmd.SilenceUsage, serveCmd.SilenceErrors = true, true
		serveCmd.SetOut(cmd.OutOrStdout())
		serveCmd.SetErr(cmd.ErrOrStderr())
		return serveCmd.ExecuteContext(cmd.Context())
	}
	return fmt.Errorf("unknown command %q for %q (run %q for the list)", args[0], cmd.CommandPath(), cmd.CommandPath()+" --help")
}
