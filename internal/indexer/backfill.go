package indexer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
	"github.com/cdc-indexer/cdc-indexer/internal/snapshot"
)

// backfillPoll is how often the running connector looks for backfill
// requests.
var backfillPoll = time.Second

// startBackfills lets `run` serve online backfills (package snapshot): it
// takes the slot's lock, waiting while a snapshot holds it, and then, in the
// background, finishes snapshots that were interrupted and serves the
// backfill requests of `cdc-indexer snapshot`, through pipe's backfill lane.
// It runs in group until ctx ends, and then gives the lock up.
func (e *Env) startBackfills(ctx context.Context, group *sync.WaitGroup, cfg *config.Config, pipe *pipeline.Pipeline, m *metrics.Metrics, log zerolog.Logger) {
	b := &backfiller{
		env: e, cfg: cfg, pipe: pipe, log: log,
		store:   snapshot.NewStore(e.Pool, cfg.Postgres.StateSchema, cfg.Postgres.Slot),
		metrics: snapshot.NewMetrics(m.Registry),
	}
	b.versions = newVersions(e, cfg, log)
	b.versions.pipe, b.versions.metrics = pipe, m
	b.lock = b.waitForLock(ctx)
	group.Go(func() {
		b.serve(ctx)
		b.lock.Release(ctx)
	})
}

type backfiller struct {
	env     *Env
	cfg     *config.Config
	pipe    *pipeline.Pipeline
	store   *snapshot.Store
	metrics *snapshot.Metrics
	log     zerolog.Logger
	lock    *snapshot.Lock // nil while another process holds it
	// versions starts reindexes, switches and deletes versions
	// (versions.go).
	versions *versions
	warned   bool
}

// rereadTable is the pipeline's Reread: it records a request for an online
// backfill of the mapping, which the backfiller serves (also after a
// restart: the request is in the state schema).
func (e *Env) rereadTable(cfg *config.Config) func(ctx context.Context, t *pipeline.Table) error {
	store := snapshot.NewStore(e.Pool, cfg.Postgres.StateSchema, cfg.Postgres.Slot)
	return func(ctx context.Context, t *pipeline.Table) error {
		return store.EnqueueUnlessPending(ctx, snapshot.TableRef{Collection: t.Collection, SourceTable: t.SourceTable})
	}
}

// waitForLock takes the slot's lock before the stream starts. While a
// snapshot holds it, streaming waits: the snapshot applies rows for the
// slot's tables itself and must not race with the stream. It returns nil
// (and serve keeps trying) if the lock cannot be had for another reason.
func (b *backfiller) waitForLock(ctx context.Context) *snapshot.Lock {
	pg := b.cfg.Postgres
	logged := false
	for {
		lock, err := snapshot.TryLock(ctx, pg.DSN, pg.StateSchema, pg.Slot)
		if err != nil {
			b.log.Warn().Err(err).Msg("cannot take the slot's lock; online backfills wait until it can be taken")
			return nil
		}
		if lock != nil {
			if logged {
				b.log.Info().Str("slot", pg.Slot).Msg("the snapshot released the slot")
			}
			return lock
		}
		if st, err := connector.SlotInfo(ctx, b.env.Pool, pg.Slot); err != nil || st.Active {
			return nil // the stream's own checks deal with a slot in use
		}
		if !logged {
			logged = true
			b.log.Info().Str("slot", pg.Slot).Msg("a snapshot holds the slot; streaming starts when it is done")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(lockWait):
		}
	}
}

// serve polls for work until ctx ends.
func (b *backfiller) serve(ctx context.Context) {
	holder := false
	var partitions *partitionWatch
	tick := time.NewTicker(backfillPoll)
	defer tick.Stop()
	for {
		if !b.lock.Alive(ctx) && ctx.Err() == nil {
			// Never had it, or lost it with the connection (PostgreSQL
			// restarted): take it again if it is free.
			b.lock.Release(ctx)
			b.lock = nil
			holder = false
			pg := b.cfg.Postgres
			lock, err := snapshot.TryLock(ctx, pg.DSN, pg.StateSchema, pg.Slot)
			if err != nil && !b.warned && ctx.Err() == nil {
				b.warned = true
				b.log.Warn().Err(err).Msg("cannot take the slot's lock; online backfills wait until it can be taken")
			}
			b.lock = lock
		}
		if b.lock != nil && !holder && ctx.Err() == nil {
			holder = b.takeOver(ctx)
		}
		if holder && ctx.Err() == nil {
			if partitions == nil {
				partitions = b.newPartitionWatch(ctx)
			}
			b.checkPartitions(ctx, partitions)
		}
		for holder && ctx.Err() == nil && b.serveOne(ctx) {
		}
		if holder && ctx.Err() == nil {
			b.versions.serve(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// takeOver runs once the lock is held: requests left running by a stopped
// connector go back to pending, tombstones are purged (no backfill is in
// flight), and snapshots that were interrupted are resumed.
func (b *backfiller) takeOver(ctx context.Context) bool {
	b.warned = false
	if n, err := b.store.Requeue(ctx); err != nil {
		b.log.Warn().Err(err).Msg("requeueing backfill requests")
		return false
	} else if n > 0 {
		b.log.Info().Int64("requests", n).Msg("resuming backfill requests of a connector that stopped")
	}
	b.purge(ctx)
	unfinished, err := b.store.Unfinished(ctx)
	if err != nil {
		b.log.Warn().Err(err).Msg("reading snapshot progress")
		return false
	}
	for _, ref := range unfinished {
		if b.table(ref) == nil {
			continue
		}
		added, err := b.store.EnqueueIfIdle(ctx, ref)
		if err != nil {
			b.log.Warn().Err(err).Msg("resuming an interrupted snapshot")
			return false
		}
		if added {
			b.log.Info().Str("table", ref.SourceTable).Msg("the snapshot of this table was interrupted: finishing it while streaming")
		}
	}
	return true
}

func (b *backfiller) table(ref snapshot.TableRef) *pipeline.Table {
	for _, t := range b.pipe.Tables() {
		if t.Collection == ref.Collection && t.SourceTable == ref.SourceTable {
			return t
		}
	}
	return nil
}

func (b *backfiller) refs() []snapshot.TableRef {
	tables := b.pipe.Tables()
	refs := make([]snapshot.TableRef, len(tables))
	for i, t := range tables {
		refs[i] = snapshot.TableRef{Collection: t.Collection, SourceTable: t.SourceTable}
	}
	return refs
}

// purge removes tombstones; only between backfills.
func (b *backfiller) purge(ctx context.Context) {
	n, err := b.store.PurgeTombstones(ctx, b.refs())
	if err != nil && ctx.Err() == nil {
		b.log.Warn().Err(err).Msg("purging tombstones")
	} else if n > 0 {
		b.log.Debug().Int64("tombstones", n).Msg("purged tombstones")
	}
}

// serveOne serves the oldest pending request, if any, and reports whether
// it did.
func (b *backfiller) serveOne(ctx context.Context) bool {
	ref, ids, err := b.store.Claim(ctx)
	if err != nil {
		if ctx.Err() == nil {
			b.log.Debug().Err(err).Msg("looking for backfill requests")
		}
		return false
	}
	if ref == nil {
		return false
	}
	t := b.table(*ref)
	if t == nil {
		err = fmt.Errorf("%s (collection %s) is not among the running connector's tables: add it to its configuration and restart it", ref.SourceTable, ref.Collection)
	} else {
		err = b.backfill(ctx, t, ids, ref.Keys)
	}
	if ctx.Err() != nil {
		return false // left running: the next start resumes it
	}
	if err != nil {
		b.log.Error().Err(err).Str("table", ref.SourceTable).Msg("backfill failed")
	}
	if ferr := b.store.Finish(ctx, ids, err); ferr != nil {
		b.log.Warn().Err(ferr).Msg("finishing backfill request")
	}
	b.purge(ctx)
	return true
}

// backfill reads t (or only its rows with the given keys) in a fresh
// snapshot and passes its rows to the pipeline behind the live changes.
func (b *backfiller) backfill(ctx context.Context, t *pipeline.Table, ids []int64, keys []string) error {
	pg := b.cfg.Postgres
	x, err := snapshot.Fresh(ctx, pg.DSN, pg.Slot)
	if err != nil {
		return err
	}
	defer x.Release(ctx)
	b.log.Info().Str("table", t.SourceTable).Stringer("snapshot_lsn", x.At).Int("keys", len(keys)).
		Msg("online backfill: reading the table (or the requested keys) in a fresh snapshot; live changes go first")
	progress := &snapshot.Progress{Log: b.log, Metrics: b.metrics, OnUpdate: func(_ string, done, total int64) {
		if err := b.store.Report(ctx, ids, done, total, x.At); err != nil && ctx.Err() == nil {
			b.log.Debug().Err(err).Msg("reporting backfill progress")
		}
	}}
	// Rows the state holds and the snapshot does not (a detached
	// partition's) leave the index through the backfill lane, which keeps
	// any the stream wrote after the snapshot.
	remove := func(ctx context.Context, t *pipeline.Table, keys []string) error {
		rows := make([]pipeline.BackfillRow, 0, len(keys))
		for _, k := range keys {
			key, err := pipeline.ParseSourceKey(t.Info, k)
			if err != nil {
				return err
			}
			rows = append(rows, pipeline.BackfillRow{Key: key, Gone: true})
		}
		return b.pipe.Backfill(ctx, t, rows, x.At)
	}
	_, err = snapshot.Run(ctx, snapshot.Config{
		DSN: pg.DSN, Store: b.store, Apply: b.pipe, Remove: remove, Progress: progress, Log: b.log,
		Budget: b.pipe.Budget(), Keys: keys,
	}, x, []*pipeline.Table{t})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
