package snapshot

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// AwaitPoll is how often Await reads the state of its requests.
var AwaitPoll = 500 * time.Millisecond

// Await asks the connector that streams the slot to backfill tables, and
// waits until it has, showing its progress. The connector reads each table
// in a fresh snapshot and indexes it between its live changes (see the
// package documentation). If Await is interrupted, the connector still
// finishes what was asked.
func Await(ctx context.Context, store *Store, tables []TableRef, progress *Progress, log zerolog.Logger) error {
	type pending struct {
		ref      TableRef
		finished bool
	}
	reqs := map[int64]*pending{}
	var ids []int64
	for _, t := range tables {
		id, err := store.Enqueue(ctx, t)
		if err != nil {
			return err
		}
		reqs[id] = &pending{ref: t}
		ids = append(ids, id)
		progress.Start(t.SourceTable, 0, 0)
		log.Info().Str("table", t.SourceTable).Int64("request", id).
			Msg("the slot is streamed by a running connector: asked it to backfill the table")
	}
	start := time.Now()
	warned := false
	failures := 0
	tick := time.NewTicker(AwaitPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting: the running connector goes on with the backfill (requests %v): %w", ids, context.Cause(ctx))
		case <-tick.C:
		}
		states, err := store.Requests(ctx, ids)
		if err != nil {
			if failures++; failures > 60 {
				return err
			}
			log.Warn().Err(err).Msg("reading the backfill requests")
			continue
		}
		failures = 0
		open, waiting := 0, 0
		for id, p := range reqs {
			r, ok := states[id]
			if !ok {
				return fmt.Errorf("backfill request %d of %s disappeared", id, p.ref.SourceTable)
			}
			switch r.Status {
			case StatusFailed:
				progress.Finish(p.ref.SourceTable)
				return fmt.Errorf("the running connector could not backfill %s: %s", p.ref.SourceTable, r.Error)
			case StatusDone:
				if !p.finished {
					p.finished = true
					progress.SetTotal(p.ref.SourceTable, r.RowsTotal)
					progress.Set(p.ref.SourceTable, r.RowsDone, 0)
					progress.Finish(p.ref.SourceTable)
					log.Info().Str("table", p.ref.SourceTable).Int64("rows_indexed", r.RowsDone).Int64("request", id).
						Msg("backfill done by the running connector")
				}
			case StatusPending:
				open++
				waiting++
			default:
				open++
				if r.RowsTotal >= 0 {
					progress.SetTotal(p.ref.SourceTable, r.RowsTotal)
				}
				progress.Set(p.ref.SourceTable, r.RowsDone, 0)
			}
		}
		if open == 0 {
			return nil
		}
		if waiting == len(reqs) && !warned && time.Since(start) > 30*time.Second {
			warned = true
			log.Warn().Msg("no running connector has taken the backfill request yet; it is taken by `cdc-indexer run` of a version that supports online backfill, once it holds the slot")
		}
	}
}
