package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pglogrepl"

	"github.com/cdc-indexer/cdc-indexer/connector"
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
func (p *Pipeline) Backfill(ctx context.Context, table connector.TableName, rows []BackfillRow, at pglogrepl.LSN) error {
	t, ok := p.tables[table]
	if !ok {
		return fmt.Errorf("backfill: %s is not a configured table", table)
	}
	if len(rows) == 0 {
		return nil
	}
	var wg sync.WaitGroup
	wg.Add(len(rows))
	for _, r := range rows {
		it := item{table: t, op: opSnapshot, key: r.Key, row: r.Row, lsn: Position{LSN: at}, backfill: &wg, unrecorded: r.Unrecorded}
		select {
		case p.backfillQueues[p.route(t, r.Key)] <- it:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.stopped:
			return p.stopErr()
		}
	}
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

// truncatedSince reports whether the table was truncated after lsn: a
// snapshot row read before the truncate must not come back.
func (p *Pipeline) truncatedSince(t *Table, lsn pglogrepl.LSN) bool {
	p.truncMu.Lock()
	defer p.truncMu.Unlock()
	return p.truncatedAt[t] > lsn
}
