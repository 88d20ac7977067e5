package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cdc-indexer/cdc-indexer/internal/preflight"
)

func newCheckCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Preflight: check PostgreSQL, the slot, the publication and Weaviate, and say how to fix what fails",
		Long: `Preflight: check PostgreSQL, the slot, the publication and Weaviate, and say how to fix what fails.
Each check prints one line: PASS or FAIL (SKIP when an earlier failure keeps it
from running), what it found and, for a failure, the SQL or configuration that
fixes it. Nothing is created or changed. Exits 0 only if every check passes.`,
		Example: `  cdc-indexer check --config config.yaml
  cdc-indexer check --config config.yaml --json   # for a deployment gate`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			report := preflight.Run(cmd.Context(), cfg)
			if asJSON {
				if err := report.PrintJSON(cmd.OutOrStdout()); err != nil {
					return err
				}
			} else {
				report.Print(cmd.OutOrStdout())
			}
			if !report.OK() {
				failed := 0
				for _, r := range report {
					if r.Status != preflight.Pass {
						failed++
					}
				}
				return fmt.Errorf("check: %d of %d checks did not pass", failed, len(report))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the checks as JSON")
	return cmd
}
