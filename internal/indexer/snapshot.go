package indexer

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
	"github.com/cdc-indexer/cdc-indexer/internal/snapshot"
)

// SnapshotOptions are what `cdc-indexer snapshot` was asked to do.
type SnapshotOptions struct {
	Tables []config.Table // mappings to backfill; none: every configured one
	DryRun bool
	// EveryRow makes a dry run count every row as one to index, as for a
	// new collection version (a reindex), instead of skipping the rows
	// the state records as indexed with the same document.
	EveryRow  bool
	Readers   int // parallel readers per table (0: snapshot.DefaultReaders)
	ChunkRows int // rows per chunk (0: snapshot.DefaultChunkRows)
	// Out receives the summary (and a dry run's report).
	Out io.Writer
	// Bars, when set, is the terminal progress bars are drawn on; without
	// it progress is logged every few seconds.
	Bars io.Writer
	// Report, when set, is filled with what the snapshot did (--json).
	Report *SnapshotReport
	// Keys, when set, backfills only the rows with these source keys of
	// the one mapping in Tables (a repair), not the whole table.
	Keys []string
}

// lockWait is how often a snapshot waiting for the slot's lock tries again.
var lockWait = time.Second

// Snapshot backfills the tables of opts (see package snapshot for how it
// stays consistent with the stream) and returns nil once every one is fully
// indexed.
//
//   - No slot yet: it creates the slot with an exported snapshot, indexes
//     the tables as of the slot's consistent point, and `run` continues from
//     that point.
//   - Slot exists and nobody streams it: it indexes the tables in a fresh
//     snapshot, continuing an interrupted snapshot where it stopped; `run`
//     replays what changed since the slot's position.
//   - A running connector streams the slot: it asks that connector to
//     backfill the tables (online, without stopping the stream) and waits.
//
// A dry run only reads and counts: it creates and writes nothing.
func Snapshot(ctx context.Context, cfg *config.Config, opts SnapshotOptions, log zerolog.Logger) error {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.DryRun {
		return dryRun(ctx, cfg, opts, log)
	}
	env, err := prepareWithoutSlot(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer env.Close()
	tables, err := env.selectTables(opts.Tables)
	if err != nil {
		return err
	}
	if opts.Keys != nil && len(opts.Tables) != 1 {
		return fmt.Errorf("a backfill of some keys names exactly one mapping, not %d", len(opts.Tables))
	}
	store := snapshot.NewStore(env.Pool, cfg.Postgres.StateSchema, cfg.Postgres.Slot)

	lock, online, err := env.snapshotLock(ctx, cfg, log)
	if err != nil {
		return err
	}
	if online {
		refs := make([]snapshot.TableRef, len(tables))
		for i, t := range tables {
			refs[i] = snapshot.TableRef{Collection: t.Collection, SourceTable: t.SourceTable, Keys: opts.Keys}
		}
		progress := &snapshot.Progress{Bars: opts.Bars, Log: log}
		if err := snapshot.Await(ctx, store, refs, progress, log); err != nil {
			return err
		}
		fmt.Fprintf(opts.Out, "backfilled %d table(s) through the running connector\n", len(tables))
		if r := opts.Report; r != nil {
			r.Online = true
			for _, t := range tables {
				r.Tables = append(r.Tables, SnapshotTable{Table: t.SourceTable, Collection: env.servedName(t)})
			}
		}
		return nil
	}
	defer lock.Release(ctx)
	return env.snapshotLocal(ctx, cfg, opts, tables, store, log)
}

// selectTables returns the pipeline tables of the named mappings, or all.
func (e *Env) selectTables(want []config.Table) ([]*pipeline.Table, error) {
	if len(want) == 0 {
		return e.Tables, nil
	}
	var out []*pipeline.Table
	for _, w := range want {
		name, err := connector.ParseTableName(w.Table)
		if err != nil {
			return nil, err
		}
		found := false
		for _, t := range e.Tables {
			// A mapping names the configured collection; its versions
			// (serving, and filling during a reindex) are all selected.
			if t.Info.Name == name && e.servedName(t) == w.Collection {
				out = append(out, t)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%s is not a configured table", w.Table)
		}
	}
	return out, nil
}

// servedName is the configured collection t's objects are served under.
func (e *Env) servedName(t *pipeline.Table) string {
	if e.Sink == nil {
		return t.Collection // described only: no versions
	}
	return e.Sink.ServedName(t.Collection)
}

// snapshotLock decides who indexes: this process, holding the slot's lock
// (online false), or the connector that streams the slot (online true). A
// lock held by another process while nobody streams the slot is another
// snapshot, or `run` starting up: it waits for that.
func (e *Env) snapshotLock(ctx context.Context, cfg *config.Config, log zerolog.Logger) (_ *snapshot.Lock, online bool, _ error) {
	slot := cfg.Postgres.Slot
	logged := false
	for {
		lock, err := snapshot.TryLock(ctx, cfg.Postgres.DSN, cfg.Postgres.StateSchema, slot)
		if err != nil {
			return nil, false, err
		}
		st, err := connector.SlotInfo(ctx, e.Pool, slot)
		if err != nil {
			lock.Release(ctx)
			return nil, false, fmt.Errorf("postgres.slot: %w", err)
		}
		if st.Active {
			// Streamed by a running connector: it does the backfill.
			lock.Release(ctx)
			return nil, true, nil
		}
		if lock != nil {
			return lock, false, nil
		}
		if !logged {
			logged = true
			log.Info().Str("slot", slot).Msg("another cdc-indexer process holds the slot (a snapshot, or `run` starting); waiting for it")
		}
		select {
		case <-ctx.Done():
			return nil, false, context.Cause(ctx)
		case <-time.After(lockWait):
		}
	}
}

// snapshotLocal indexes the tables in this process.
func (e *Env) snapshotLocal(ctx context.Context, cfg *config.Config, opts SnapshotOptions, tables []*pipeline.Table, store *snapshot.Store, log zerolog.Logger) (err error) {
	slot := cfg.Postgres.Slot
	m := metrics.New()
	progress := &snapshot.Progress{Bars: opts.Bars, Log: log, Metrics: snapshot.NewMetrics(m.Registry)}
	srv, err := startObservability(cfg.Observability.Listen, m, log)
	if err != nil {
		log.Warn().Err(err).Msg("not serving /metrics and /readyz during the snapshot")
		srv = nil
	} else {
		defer srv.Close()
	}

	st, err := connector.SlotInfo(ctx, e.Pool, slot)
	if err != nil {
		return fmt.Errorf("postgres.slot: %w", err)
	}
	var x *snapshot.Export
	created := !st.Exists
	if created {
		if x, err = snapshot.CreateSlot(ctx, cfg.Postgres.DSN, slot); err != nil {
			return fmt.Errorf("postgres.slot: %w", err)
		}
		log.Info().Str("slot", slot).Stringer("consistent_point", x.ConsistentPoint).
			Msg("created replication slot with an exported snapshot: the snapshot holds every change before the consistent point, `run` streams every one after")
		// Progress of an earlier slot says nothing about this one.
		if err := store.ForgetProgress(ctx); err != nil {
			x.Release(ctx)
			return err
		}
		// Recorded so that a later start notices if the slot is dropped.
		if err := e.State.SaveCheckpoint(ctx, slot, x.ConsistentPoint); err != nil {
			x.Release(ctx)
			return err
		}
		if len(tables) < len(e.Tables) {
			log.Warn().Int("tables", len(tables)).Int("configured", len(e.Tables)).
				Msg("the new slot streams every configured table, but only the named tables are snapshotted: the rows the others hold now are not indexed")
		}
	} else {
		if err := e.checkSlot(ctx, cfg, st, false); err != nil {
			return fmt.Errorf("postgres.slot: %w", err)
		}
		if x, err = snapshot.Fresh(ctx, cfg.Postgres.DSN, slot); err != nil {
			return fmt.Errorf("postgres.slot: %w", err)
		}
	}
	defer x.Release(ctx)

	start := st.ConfirmedFlush
	if created {
		start = x.ConsistentPoint
	}
	pipe := pipeline.New(pipelineConfig(cfg), pipeline.Deps{
		Tables: e.Tables, Embedder: e.Embedder, Chunker: e.Chunker,
		Sink: e.Sink, State: e.State, Fetch: e.fetch, Tracker: checkpoint.NewTracker(start),
		Metrics: m, Log: log,
	})
	// No stream: the pipeline only takes snapshot rows.
	msgs := make(chan connector.Message)
	pipeCtx, cancelPipe := context.WithCancel(ctx)
	defer cancelPipe()
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- pipe.Run(pipeCtx, msgs) }()
	defer func() {
		close(msgs)
		if perr := <-pipeDone; perr != nil && err == nil {
			err = fmt.Errorf("pipeline: %w", perr)
		}
	}()
	if srv != nil {
		srv.setReady(true)
		defer srv.setReady(false)
	}

	began := time.Now()
	results, err := snapshot.Run(ctx, snapshot.Config{
		DSN: cfg.Postgres.DSN, Readers: opts.Readers, ChunkRows: opts.ChunkRows,
		Store: store, Apply: pipe, Progress: progress, Log: log, Budget: pipe.Budget(),
		Remove: e.removeRows, Keys: opts.Keys,
	}, x, tables)
	if err != nil {
		return err
	}
	refs := make([]snapshot.TableRef, len(e.Tables))
	for i, t := range e.Tables {
		refs[i] = snapshot.TableRef{Collection: t.Collection, SourceTable: t.SourceTable}
	}
	if n, err := store.PurgeTombstones(ctx, refs); err != nil {
		log.Warn().Err(err).Msg("purging tombstones")
	} else if n > 0 {
		log.Info().Int64("tombstones", n).Msg("purged tombstones")
	}

	var rows int64
	for _, r := range results {
		rows += r.RowsRead
		line := fmt.Sprintf("%s -> %s: %d rows in %s (%.0f rows/s)", r.Table.SourceTable, r.Table.Collection,
			r.RowsRead, r.Elapsed.Round(time.Millisecond), r.RowsPerSecond())
		if r.Resumed {
			line += fmt.Sprintf(", resumed: %d rows were indexed by an earlier run", r.RowsBefore)
		}
		if r.Removed > 0 {
			line += fmt.Sprintf(", %d rows that no longer exist removed", r.Removed)
		}
		fmt.Fprintln(opts.Out, line)
	}
	elapsed := time.Since(began)
	from := "its position " + st.ConfirmedFlush.String()
	if created {
		from = "the consistent point " + x.ConsistentPoint.String()
	}
	fmt.Fprintf(opts.Out, "snapshot done: %d rows in %s; `cdc-indexer run` streams the slot %s from %s\n",
		rows, elapsed.Round(time.Millisecond), slot, from)
	if r := opts.Report; r != nil {
		e.reportResults(r, results)
		r.Seconds, r.Slot = elapsed.Seconds(), slot
		r.FromLSN = st.ConfirmedFlush.String()
		if created {
			r.FromLSN = x.ConsistentPoint.String()
		}
	}
	log.Info().Int64("rows_read", rows).Dur("elapsed", elapsed.Round(time.Millisecond)).Str("slot", slot).
		Stringer("snapshot_lsn", x.At).Msg("snapshot done")
	return nil
}

// removeRows takes rows that no longer exist out of the index (and the
// state), while this process holds the slot's lock and the pipeline is idle.
func (e *Env) removeRows(ctx context.Context, t *pipeline.Table, keys []string) error {
	if err := e.Sink.Delete(ctx, t.Collection, "", t.SourceTable, keys); err != nil {
		return fmt.Errorf("delete from weaviate: %w", err)
	}
	return e.State.DeleteDocuments(ctx, t.Collection, t.SourceTable, keys)
}

// dryRun reads the tables and reports what a snapshot would send.
func dryRun(ctx context.Context, cfg *config.Config, opts SnapshotOptions, log zerolog.Logger) error {
	env, err := describe(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer env.Close()
	tables, err := env.selectTables(opts.Tables)
	if err != nil {
		return err
	}
	// Rows already indexed with the same document would be skipped; the
	// state tells which, when the state schema exists.
	var lookup snapshot.Lookup
	st, err := env.existingState(ctx, cfg.Postgres.StateSchema)
	if err != nil {
		return err
	}
	if st != nil && !opts.EveryRow {
		lookup = st.LookupDocuments
	}
	model := EmbeddingModelID(cfg.Embedding)
	counter := snapshot.NewDryRun(tables, env.Chunker, lookup)
	progress := &snapshot.Progress{Bars: opts.Bars, Log: log}
	_, err = snapshot.Run(ctx, snapshot.Config{
		DSN: cfg.Postgres.DSN, Readers: opts.Readers, ChunkRows: opts.ChunkRows,
		Apply: counter, Progress: progress, Log: log,
	}, nil, tables)
	if err != nil {
		return err
	}
	if opts.Report != nil {
		env.reportDryRun(opts.Report, counter, tables, cfg.Embedding.PricePerMillionTokens)
	}
	return counter.Report(opts.Out, tables, model, cfg.Embedding.PricePerMillionTokens)
}
