package indexer

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/snapshot"
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
	shown := map[string]time.Time{}
	rates := map[string]*rate{}
	requests := snapshot.NewStore(pool, cfg.Postgres.StateSchema, cfg.Postgres.Slot)
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
				if done, total, ok := fillProgress(ctx, requests, filling.Backfills); ok && time.Since(shown[name]) >= progressEvery {
					shown[name] = time.Now()
					line += fmt.Sprintf(": %d of %d rows%s", done, total, eta(rates, name, done, total))
				} else if last[name] != "" && strings.HasPrefix(last[name], line) {
					line = last[name] // unchanged until the next progress line
				}
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

// progressEvery spaces the progress lines of `reindex`.
var progressEvery = 5 * time.Second

// fillProgress sums the rows read and to read of a fill's backfills; ok is
// false until every one has counted its table.
func fillProgress(ctx context.Context, requests *snapshot.Store, ids []int64) (done, total int64, ok bool) {
	if len(ids) == 0 {
		return 0, 0, false
	}
	reqs, err := requests.Requests(ctx, ids)
	if err != nil {
		return 0, 0, false
	}
	for _, r := range reqs {
		if r.RowsTotal < 0 {
			return 0, 0, false
		}
		done += r.RowsDone
		total += r.RowsTotal
	}
	return done, total, true
}

// rate remembers the first progress seen, for an ETA.
type rate struct {
	at   time.Time
	done int64
}

// eta estimates the time left from the rows read since the first progress
// line; "" until there is a rate.
func eta(rates map[string]*rate, name string, done, total int64) string {
	r := rates[name]
	if r == nil {
		rates[name] = &rate{at: time.Now(), done: done}
		return ""
	}
	elapsed := time.Since(r.at)
	if done <= r.done || elapsed <= 0 {
		return ""
	}
	perRow := elapsed / time.Duration(done-r.done)
	return fmt.Sprintf(", about %s left", (perRow * time.Duration(max(total-done, 0))).Round(time.Second))
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
