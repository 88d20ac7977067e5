package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/internal/verify"
)

func newVerifyCmd() *cobra.Command {
	var (
		tables []string
		repair bool
		dryRun bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Prove each collection equals its table; with --repair, mend what differs",
		Long: `Prove each collection equals its table; with --repair, mend what differs.
Reads every configured table (or those named with --table) in key order and every
object of its collection, renders each row exactly as the pipeline would, and
counts missing rows, stale objects (text, metadata, chunk_count, content_hash,
vector length), extra objects (row gone, chunk past chunk_count, another tenant)
and duplicates, with examples. Safe while run streams: a row that differs is
compared again once the stream has caught up, and reported only if it still
differs. --repair deletes the extra and duplicate objects, re-indexes the missing
and stale rows through the pipeline (the running connector's backfill lane when
one streams), then verifies again.
Exits 0 in sync (after the repair, when asked), 1 when drift remains, 2 on error.`,
		Example: `  cdc-indexer verify --config config.yaml
  cdc-indexer verify --config config.yaml --table public.articles --json
  cdc-indexer verify --config config.yaml --repair --dry-run   # what a repair would do and cost
  cdc-indexer verify --config config.yaml --repair`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := loadConfigAndLogger(cmd)
			if err != nil {
				return exitError{code: 2, err: err}
			}
			ctx := cmd.Context()
			env, deps, err := indexer.OpenVerify(ctx, cfg, log)
			if err != nil {
				return exitError{code: 2, err: err}
			}
			defer env.Close()
			opts := verify.Options{Tables: tables}
			report, err := verify.Run(ctx, deps, opts, log)
			if err != nil {
				return exitError{code: 2, err: err}
			}
			if dryRun && !repair {
				return usageError{fmt.Errorf("--dry-run goes with --repair")}
			}
			if dryRun || (repair && !report.InSync()) {
				if !asJSON {
					report.Print(cmd.OutOrStdout())
					report.PrintPlan(cmd.OutOrStdout(), cfg.Embedding.PricePerMillionTokens)
				}
			}
			if repair && !dryRun && !report.InSync() {
				backfill := func(ctx context.Context, mapping config.Table, keys []string) error {
					return indexer.Snapshot(ctx, cfg, indexer.SnapshotOptions{Tables: []config.Table{mapping}, Keys: keys, Out: io.Discard}, log)
				}
				st := state.NewStore(env.Pool, cfg.Postgres.StateSchema)
				done, err := verify.Repair(ctx, deps, st, report, backfill)
				if err != nil {
					return exitError{code: 2, err: fmt.Errorf("repair: %w", err)}
				}
				for _, r := range done {
					if !asJSON && (r.Deleted > 0 || r.Reindexed > 0) {
						fmt.Fprintf(cmd.OutOrStdout(), "repaired %s -> %s: %d objects deleted, %d rows re-indexed\n", r.Table, r.Collection, r.Deleted, r.Reindexed)
					}
				}
				if report, err = verify.Run(ctx, deps, opts, log); err != nil {
					return exitError{code: 2, err: err}
				}
			}
			if asJSON {
				if err := report.PrintJSON(cmd.OutOrStdout()); err != nil {
					return exitError{code: 2, err: err}
				}
			} else if !dryRun {
				report.Print(cmd.OutOrStdout())
			}
			if !report.InSync() {
				drift := int64(0)
				for _, m := range report.Mappings {
					drift += m.Drift()
				}
				return exitError{code: 1, err: fmt.Errorf("verify: %d differences remain", drift)}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&tables, "table", nil, "verify only this configured table (schema.name); repeatable")
	cmd.Flags().BoolVar(&repair, "repair", false, "delete extra objects, re-index missing and stale rows, then verify again")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "with --repair: print what the repair would delete and re-index, and its embedding tokens, and change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
