package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cdc-indexer/cdc-indexer/internal/teardown"
)

func newTeardownCmd() *cobra.Command {
	var collections, yes, asJSON bool
	cmd := &cobra.Command{
		Use:   "teardown",
		Short: "Remove what the connector created: the slot, its publication, the state schema (and the collections)",
		Long: `Remove what the connector created: the replication slot (which otherwise keeps
WAL on the primary for good), the publication if the connector created it, the state
schema unless other connectors' slots still use it, and with --collections the
mappings' Weaviate collections. Refuses while a connector streams the slot. Prints
the plan and asks for "yes" unless --yes is given. With --json it prints the plan
and the outcome as one JSON object and never asks: without --yes nothing is done.`,
		Example: `  cdc-indexer teardown --config config.yaml
  cdc-indexer teardown --config config.yaml --collections --yes
  cdc-indexer teardown --config config.yaml --json          # the plan, for a script; changes nothing`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			plan, err := teardown.Prepare(ctx, cfg, collections)
			if err != nil {
				return fmt.Errorf("teardown: %w", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				done := false
				if yes && !plan.Empty() {
					if err := teardown.Execute(ctx, cfg, plan); err != nil {
						return fmt.Errorf("teardown: %w", err)
					}
					done = true
				}
				return writeJSON(out, struct {
					Plan teardown.Plan `json:"plan"`
					Done bool          `json:"done"`
				}{plan, done})
			}
			plan.Print(out)
			if plan.Empty() {
				return nil
			}
			if !yes {
				fmt.Fprint(out, "type yes to go on: ")
				answer, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(answer) != "yes" {
					return fmt.Errorf("teardown: nothing done (answer yes, or pass --yes)")
				}
			}
			if err := teardown.Execute(ctx, cfg, plan); err != nil {
				return fmt.Errorf("teardown: %w", err)
			}
			fmt.Fprintln(out, "done")
			return nil
		},
	}
	cmd.Flags().BoolVar(&collections, "collections", false, "also delete the mappings' Weaviate collections and every object in them")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan and whether it was carried out as JSON; never ask")
	return cmd
}
