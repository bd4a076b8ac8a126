package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
)

func migrateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the store's schema and print its version",
		Long: `Applies the store's pending schema migrations and prints the schema version.
Every node also migrates at start (under a lock, so nodes starting together
migrate once); running this first lets an operator upgrade the schema before
rolling out new nodes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(cmd)
			if err != nil {
				return err
			}
			before, after, err := app.MigrateStore(cmd.Context(), cfg, newLogger(g.stderr, "warn"))
			if err != nil {
				return err
			}
			switch {
			case before < 0 || before == after:
				fmt.Fprintf(g.stdout, "store %s: schema version %d\n", cfg.Store.Driver, after)
			default:
				fmt.Fprintf(g.stdout, "store %s: schema version %d (migrated from %d)\n", cfg.Store.Driver, after, before)
			}
			return nil
		},
	}
}
