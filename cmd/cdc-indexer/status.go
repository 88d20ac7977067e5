package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cdc-indexer/cdc-indexer/internal/status"
)

func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the slot, confirmed LSN, lag, per-table counts and dead letters",
		Long: `Show the slot, confirmed LSN, lag, per-table counts and dead letters.
Per table: rows in PostgreSQL (count(*), or ~ the planner's estimate above a
million rows), documents and chunks the state schema records, objects in
Weaviate, and dead letters. Lag in seconds and embedding usage come from the
running indexer's observability listener when it answers. Only reads.`,
		Example: `  cdc-indexer status --config config.yaml
  cdc-indexer status --config config.yaml --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			report, err := status.Collect(cmd.Context(), cfg)
			if err != nil {
				return fmt.Errorf("status: %w", err)
			}
			if asJSON {
				return report.PrintJSON(cmd.OutOrStdout())
			}
			report.Print(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}
