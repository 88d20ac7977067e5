package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
	"github.com/cdc-indexer/cdc-indexer/internal/logging"
	"github.com/cdc-indexer/cdc-indexer/internal/snapshot"
)

// snapshotIndexer is indexer.Snapshot; tests replace it.
var snapshotIndexer = indexer.Snapshot

func newSnapshotCmd() *cobra.Command {
	var tables []string
	var dryRun, asJSON bool
	var readers, chunkRows int
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Backfill the configured tables (or those named with --table) consistently",
		Long: `Backfill the configured tables (or those named with --table) consistently.

Without a replication slot it creates one with an exported snapshot, indexes
every row as of the slot's consistent point, and ` + "`cdc-indexer run`" + ` then streams
every later change: nothing missed, nothing twice. With a slot that nobody
streams it indexes the tables in a fresh snapshot, continuing an interrupted
snapshot after its last indexed keys. While ` + "`cdc-indexer run`" + ` streams the slot it
asks that connector to backfill the tables without stopping the stream, and
waits. Each table is read in primary-key order, in chunks, by several
connections in parallel. Exits 0 once every requested table is fully indexed.

--dry-run reads the tables and reports the rows, documents, chunks and
embedding tokens a snapshot would send, and their estimated cost
(embedding.price_per_million_tokens), without creating or writing anything.
--json prints what was done (or, with --dry-run, counted) per table as JSON.`,
		Example: `  cdc-indexer snapshot --config config.yaml
  cdc-indexer snapshot --config config.yaml --table public.articles
  cdc-indexer snapshot --config config.yaml --dry-run   # rows, chunks, tokens and cost, nothing written
  cdc-indexer snapshot --config config.yaml --dry-run --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			selected, err := selectTables(cfg, tables)
			if err != nil {
				return err
			}
			if readers < 1 || readers > snapshot.MaxReaders {
				return usageError{fmt.Errorf("--readers: want 1 to %d, got %d", snapshot.MaxReaders, readers)}
			}
			if chunkRows < 1 || chunkRows > maxChunkRows {
				return usageError{fmt.Errorf("--chunk-rows: want 1 to %d, got %d", maxChunkRows, chunkRows)}
			}
			log, err := logging.New(cfg.Log.Level, cfg.Log.Format, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			opts := indexer.SnapshotOptions{
				Tables: selected, DryRun: dryRun, Readers: readers, ChunkRows: chunkRows,
				Out: cmd.OutOrStdout(), Bars: terminal(cmd.ErrOrStderr()),
			}
			if asJSON {
				opts.Out, opts.Report = io.Discard, &indexer.SnapshotReport{}
			}
			log.Info().Str("version", version).Bool("dry_run", dryRun).Object("config", cfg).Msg("snapshot starting")
			if err := snapshotIndexer(ctx, cfg, opts, log); err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("snapshot: interrupted (%v); run it again to continue where it stopped", context.Cause(ctx))
				}
				return fmt.Errorf("snapshot: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), opts.Report)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&tables, "table", nil,
		"schema.table to backfill, as in tables[].table; repeat for several (default: every configured table)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false,
		"read the tables and report rows, documents, chunks, tokens and estimated cost; create and write nothing")
	cmd.Flags().IntVar(&readers, "readers", snapshot.DefaultReaders,
		"connections reading each table in parallel (key ranges of the primary key)")
	cmd.Flags().IntVar(&chunkRows, "chunk-rows", snapshot.DefaultChunkRows,
		"rows per chunk: the unit read, indexed and recorded as progress")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// maxChunkRows bounds --chunk-rows: a chunk is held in memory.
const maxChunkRows = 100_000

// terminal returns w when it is a terminal (progress bars are drawn there),
// else nil (progress is logged).
func terminal(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		return w
	}
	return nil
}

// selectTables returns the mappings of the named tables, every mapping when
// none is named. A name matches however it is spelled (articles,
// public.articles, "public"."articles"); one naming no configured table is a
// usage error.
func selectTables(cfg *config.Config, names []string) ([]config.Table, error) {
	if len(names) == 0 {
		return cfg.Tables, nil
	}
	want := map[connector.TableName]bool{}
	for _, n := range names {
		name, err := connector.ParseTableName(n)
		if err != nil {
			return nil, usageError{fmt.Errorf("--table: %w", err)}
		}
		want[name] = true
	}
	var out []config.Table
	found := map[connector.TableName]bool{}
	var configured []string
	for _, t := range cfg.Tables {
		// Validate has parsed every configured name already.
		name, _ := connector.ParseTableName(t.Table)
		configured = append(configured, name.String())
		if want[name] {
			out = append(out, t)
			found[name] = true
		}
	}
	for _, n := range names {
		name, _ := connector.ParseTableName(n)
		if !found[name] {
			return nil, usageError{fmt.Errorf("--table %s: not a configured table (configured: %s)", n, strings.Join(configured, ", "))}
		}
	}
	return out, nil
}
