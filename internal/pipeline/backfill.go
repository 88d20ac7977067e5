package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pglogrepl"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
)

// BackfillRow is one row a snapshot read.
type BackfillRow struct {
	Key connector.Key
	Row connector.Row
	// Unrecorded says that Weaviate may hold the row in a version the state
	// does not record (a stopped run of the same snapshot was indexing it):
	// the row is written even if its hash is the recorded one, and its
	// surplus chunks are found by query.
	Unrecorded bool
	// Gone says that the snapshot does not hold the row (Row is nil): it
	// is removed from the index unless a change committed after the
	// snapshot was applied to it since.
	Gone bool
	// Held is the bytes of the pipeline's Budget the reader already took
	// for this row; the pipeline releases them once the row is applied.
	// Rows with none held acquire their bytes as they are queued.
	Held int64
}

// Backfill applies rows a snapshot read at position at, and returns once all
// of them are applied (or skipped).
//
// Rows go to the same worker as the stream's changes of the same key, so the
// two never race on one row, but on a lower-priority lane: a worker takes
// backfill rows only when no live change is waiting, and live changes are
// never starved. A snapshot row older than what the index already holds is
// dropped: the state records the LSN of the last write or removal of every
// row (a removal leaves a tombstone) and of every truncate, and a row read at
// `at` must not overwrite a change committed after `at`. Changes committed
// before `at` that the stream delivers later overwrite the snapshot's copy
// with an older version, but the stream then reaches `at` too, so the index
// converges to the row's current document either way.
//
// t is the mapping to fill: a table in several mappings is backfilled once
// per mapping, each against its own state.
func (p *Pipeline) Backfill(ctx context.Context, t *Table, rows []BackfillRow, at pglogrepl.LSN) error {
	if p.tableFor(t.Collection, t.SourceTable) != t {
		return fmt.Errorf("backfill: %s -> %s is not a mapping of this pipeline", t.SourceTable, t.Collection)
	}
	if len(rows) == 0 {
		return nil
	}
	var wg sync.WaitGroup
	wg.Add(len(rows))
	for i, r := range rows {
		it := item{table: t, op: opSnapshot, key: r.Key, row: r.Row, remove: r.Gone, lsn: Position{LSN: at}, backfill: &wg, unrecorded: r.Unrecorded, held: r.Held}
		if it.held == 0 {
			held, err := p.budget.Acquire(ctx, r.Row.Size()+itemOverhead)
			if err != nil {
				p.releaseRows(rows[i+1:])
				return err
			}
			it.held = held
		}
		select {
		case p.backfillQueues[p.route(t, r.Key)] <- it:
		case <-ctx.Done():
			p.budget.Release(it.held)
			p.releaseRows(rows[i+1:])
			return ctx.Err()
		case <-p.stopped:
			p.budget.Release(it.held)
			p.releaseRows(rows[i+1:])
			return p.stopErr()
		}
	}
	return p.awaitRows(ctx, &wg)
}

// awaitRows waits until the rows counted in wg, queued on the backfill
// lane, were applied (each item's Done), or the pipeline or ctx stopped.
func (p *Pipeline) awaitRows(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.stopped:
		return p.stopErr()
	}
}

// releaseRows hands back the bytes of rows that were never queued.
func (p *Pipeline) releaseRows(rows []BackfillRow) {
	for _, r := range rows {
		p.budget.Release(r.Held)
	}
}

// opSnapshot labels backfill rows in metrics.
const opSnapshot connector.Op = 0

func (p *Pipeline) stopErr() error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	if p.runErr != nil {
		return fmt.Errorf("backfill: pipeline stopped: %w", p.runErr)
	}
	return errors.New("backfill: pipeline stopped")
}

// newerThan reports whether the index holds a newer version of a row than
// a snapshot read at lsn: a change or removal recorded after lsn, or a
// truncate of the table after lsn.
func (p *Pipeline) newerThan(t *Table, prev map[string]state.DocState, key string, lsn pglogrepl.LSN) bool {
	if old, ok := prev[key]; ok && old.LSN > lsn {
		return true
	}
	return p.truncatedSince(t, lsn)
}

// truncatedSince reports whether the table was truncated after lsn: a
// snapshot row read before the truncate must not come back.
func (p *Pipeline) truncatedSince(t *Table, lsn pglogrepl.LSN) bool {
	p.truncMu.Lock()
	defer p.truncMu.Unlock()
	return p.truncatedAt[t] > lsn
}
