package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cdc-indexer/cdc-indexer/internal/teardown"
)

func newTeardownCmd() *cobra.Command {
	var collections, yes bool
	cmd := &cobra.Command{
		Use:   "teardown",
		Short: "Remove what the connector created: the slot, its publication, the state schema (and the collections)",
		Long: `Remove what the connector created: the replication slot (which otherwise keeps
WAL on the primary for good), the publication if the connector created it, the state
schema unless other connectors' slots still use it, and with --collections the
mappings' Weaviate collections. Refuses while a connector streams the slot. Prints
the plan and asks for "yes" unless --yes is given.`,
		Example: `  cdc-indexer teardown --config config.yaml
  cdc-indexer teardown --config config.yaml --collections --yes`,
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
	return cmd
}
