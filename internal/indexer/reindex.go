package indexer

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/migrations"
)

// ReindexOptions select what `cdc-indexer reindex` rebuilds.
type ReindexOptions struct {
	// Tables name mappings; their collections are rebuilt whole (every
	// mapping into them). None: every configured collection.
	Tables []string
	// DryRun reports what the rebuild would read, embed and cost, and
	// changes nothing.
	DryRun bool
	Out    io.Writer
}

// reindexPoll is how often `reindex` looks at how far the rebuild got.
var reindexPoll = time.Second

// Reindex asks the running connector to rebuild collections without
// downtime (package reindex) and returns once each rebuilt version serves.
// The request is durable: when no `run` streams the slot, the next one
// carries it out, and a stopped `reindex` can simply be run again.
func Reindex(ctx context.Context, cfg *config.Config, opts ReindexOptions, log zerolog.Logger) error {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	names, mappings, err := reindexSelection(cfg, opts.Tables)
	if err != nil {
		return err
	}
	if opts.DryRun {
		return Snapshot(ctx, cfg, SnapshotOptions{Tables: mappings, DryRun: true, EveryRow: true, Out: opts.Out}, log)
	}
	pool, err := pgxpool.New(ctx, cfg.Postgres.DSN)
	if err != nil {
		return fmt.Errorf("postgres.dsn: %w", err)
	}
	defer pool.Close()
	if err := migrations.Apply(ctx, pool, cfg.Postgres.StateSchema); err != nil {
		return fmt.Errorf("postgres.state_schema: migrate %s: %w", cfg.Postgres.StateSchema, err)
	}
	st := state.NewStore(pool, cfg.Postgres.StateSchema)
	// A rebuild is done once a version newer than the one serving now
	// serves, with no fill under way.
	before := map[string]int{}
	for _, name := range names {
		serving, _, _, err := st.Versions(ctx, name)
		if err != nil {
			return err
		}
		if serving != nil {
			before[name] = serving.Number
		} else {
			before[name] = -1
		}
		if err := st.RequestReindex(ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(opts.Out, "reindex of %s requested\n", name)
	}
	warned := false
	last := map[string]string{}
	for {
		pending := 0
		for _, name := range names {
			serving, filling, _, err := st.Versions(ctx, name)
			if err != nil {
				return err
			}
			requested, err := st.ReindexRequested(ctx, name)
			if err != nil {
				return err
			}
			line := ""
			switch {
			case serving != nil && serving.Number > before[name] && filling == nil && !requested:
				line = fmt.Sprintf("%s: %s serves", name, serving.Physical)
			case filling != nil:
				pending++
				line = fmt.Sprintf("%s: filling %s", name, filling.Physical)
			default:
				pending++
			}
			if line != "" && last[name] != line {
				last[name] = line
				fmt.Fprintln(opts.Out, line)
			}
		}
		if pending == 0 {
			return nil
		}
		if !warned {
			if slot, err := connector.SlotInfo(ctx, pool, cfg.Postgres.Slot); err == nil && !slot.Active {
				warned = true
				fmt.Fprintf(opts.Out, "no connector streams slot %s now: the reindex starts when `cdc-indexer run` does (the request is kept)\n", cfg.Postgres.Slot)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting (the reindex goes on in the running connector): %w", ctx.Err())
		case <-time.After(reindexPoll):
		}
	}
}

// reindexSelection is the collections the named tables map into (every
// configured collection when none is named) and all their mappings.
func reindexSelection(cfg *config.Config, tables []string) ([]string, []config.Table, error) {
	names := collections(cfg)
	if len(tables) > 0 {
		names = nil
		for _, want := range tables {
			wantKey := tableKey(want)
			found := false
			for _, t := range cfg.Tables {
				if tableKey(t.Table) == wantKey {
					found = true
					if !slices.Contains(names, t.Collection) {
						names = append(names, t.Collection)
					}
				}
			}
			if !found {
				return nil, nil, fmt.Errorf("--table %s: not a configured table", want)
			}
		}
	}
	var mappings []config.Table
	for _, t := range cfg.Tables {
		if slices.Contains(names, t.Collection) {
			mappings = append(mappings, t)
		}
	}
	return names, mappings, nil
}
