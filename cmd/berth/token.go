package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-registry/berth/internal/auth/robot"
	"github.com/berth-registry/berth/internal/auth/setup"
	"github.com/berth-registry/berth/internal/config"
)

// tokenStoreFlags say where the robot token store is: --file, or the
// store of the configuration (--config, REGISTRY_CONFIGURATION_PATH).
type tokenStoreFlags struct {
	config string
	file   string
}

func (f *tokenStoreFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "", "configuration file whose token store to use (default $REGISTRY_CONFIGURATION_PATH)")
	cmd.Flags().StringVarP(&f.file, "file", "f", "", "token store file (overrides the configuration's berth.auth.tokens.path)")
}

func (f *tokenStoreFlags) open() (*robot.Store, error) {
	path := f.file
	if path == "" {
		cfgPath := f.config
		if cfgPath == "" {
			cfgPath = config.PathFromEnv(os.Environ())
		}
		cfg, err := config.Load(cfgPath, os.Environ())
		if err != nil {
			return nil, err
		}
		path = setup.TokenStorePath(cfg)
		if path == "" {
			return nil, errors.New("this configuration has no robot token store (berth.auth.tokens is disabled, or storage is inmemory without berth.auth.tokens.path); use --file")
		}
	}
	return robot.Open(path, robot.Options{})
}

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke long-lived tokens for CI robots",
		Long: `Robot tokens are long-lived credentials for machines (CI jobs, deploy
hosts). A robot logs in with its name as the user name and the token as the
password: docker login -u NAME --password-stdin, podman/skopeo --creds
NAME:TOKEN, or Basic auth. Policy rules match the robot's name (account)
and groups like any user's.

The token is shown once, when created; berth keeps only its SHA-256 hash,
in berth/tokens.json under the storage root directory (or
berth.auth.tokens.path). A running berth notices changes within a second:
a revoked token stops working without a restart.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}

	var cf tokenStoreFlags
	var groups []string
	var expires time.Duration
	var note string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a token for robot NAME and print it (only this once)",
		Example: `  berth token create ci --group builders --config /etc/docker/registry/config.yml
  berth token create deploy --expires 2160h --note "prod pull" --file /var/lib/registry/berth/tokens.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := cf.open()
			if err != nil {
				return err
			}
			o := robot.CreateOptions{Groups: groups, Note: note}
			if expires < 0 {
				return errors.New("--expires must be positive")
			}
			if expires > 0 {
				o.Expires = time.Now().Add(expires)
			}
			t, secret, err := st.Create(args[0], o)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			msg := fmt.Sprintf("created token %s for robot %q", t.ID, t.Name)
			if len(t.Groups) > 0 {
				msg += " in groups " + strings.Join(t.Groups, ", ")
			}
			if !t.Expires.IsZero() {
				msg += ", expires " + t.Expires.Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s (store %s).\nThe token above is shown only now; log in with: docker login -u %s --password-stdin REGISTRY\n", msg, st.Path(), t.Name)
			return nil
		},
	}
	cf.add(create)
	create.Flags().StringSliceVarP(&groups, "group", "g", nil, "group the robot belongs to (repeatable)")
	create.Flags().DurationVar(&expires, "expires", 0, "lifetime, e.g. 720h (default: no expiry)")
	create.Flags().StringVar(&note, "note", "", "free text shown by list")

	var lf tokenStoreFlags
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List tokens (never their secrets)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := lf.open()
			if err != nil {
				return err
			}
			toks, err := st.List()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				for i := range toks {
					toks[i].Hash = ""
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(toks)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tGROUPS\tCREATED\tEXPIRES\tNOTE")
			now := time.Now()
			for _, t := range toks {
				exp := "never"
				if !t.Expires.IsZero() {
					exp = t.Expires.Format(time.RFC3339)
					if t.Expired(now) {
						exp += " (expired)"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, strings.Join(t.Groups, ","), t.Created.Format(time.RFC3339), exp, t.Note)
			}
			return tw.Flush()
		},
	}
	lf.add(list)
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var rf tokenStoreFlags
	revoke := &cobra.Command{
		Use:     "revoke ID|NAME",
		Aliases: []string{"rm", "delete"},
		Short:   "Revoke a token by id, or every token of a robot by name",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := rf.open()
			if err != nil {
				return err
			}
			removed, err := st.Revoke(args[0])
			if errors.Is(err, robot.ErrNotFound) {
				return fmt.Errorf("no token with id or robot name %q in %s", args[0], st.Path())
			}
			if err != nil {
				return err
			}
			for _, t := range removed {
				fmt.Fprintf(cmd.ErrOrStderr(), "revoked token %s of robot %q\n", t.ID, t.Name)
			}
			return nil
		},
	}
	rf.add(revoke)

	cmd.AddCommand(create, list, revoke)
	return cmd
}
