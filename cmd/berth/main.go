// Command berth is a private container registry in one binary.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	root := &cobra.Command{
		Use:   "berth",
		Short: "berth is a private container registry in one binary",
		Long: `berth is a private container registry: OCI Distribution Spec 1.1 and
Docker Registry HTTP API v2, a drop-in replacement for registry:2 that reads
the same config.yml, REGISTRY_* variables and storage layout.

Run "berth serve" to start a registry on :5000 storing under ./data.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE:          runConfigFileArg,
	}
	root.AddCommand(newServeCmd(), newConfigCmd(), newHtpasswdCmd(), newUserCmd(), newTokenCmd(), newIndexCmd(), newGarbageCollectCmd(), newBackupCmd(), newRestoreCmd(), newVersionCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berth:", formatError(err))
		os.Exit(1)
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print berth's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "berth", version)
		},
	}
}
