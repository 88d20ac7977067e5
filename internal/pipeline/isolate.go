package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
)

// IsolateAttempts is how many times in a row a batch may fail with an error
// that is not a rejection (a 5xx, a 413 from a proxy, a reset connection)
// before the pipeline suspects its content rather than a dependency: a
// batch of several rows is then applied in halves, down to the rows that
// fail alone, and a row that fails alone IsolateAttempts times while other
// batches get through, and Weaviate answers its readiness checks right
// then, is dead-lettered. While nothing gets through or Weaviate does not
// answer (an outage), nothing is dead-lettered: the row waits like every
// other.
const IsolateAttempts = 5

// rowFailures are the rows of one applyTable call that failed permanently,
// by index in its items; every other row of the call was applied.
type rowFailures map[int]error

// rowFailuresError is applyTable's error when only some rows failed.
type rowFailuresError struct {
	rows             rowFailures
	applied, skipped []connector.Op // the other rows, for the metrics
}

func (e *rowFailuresError) Error() string {
	for _, err := range e.rows {
		if len(e.rows) == 1 {
			return err.Error()
		}
		return fmt.Sprintf("%d rows failed, e.g. %v", len(e.rows), err)
	}
	return "no row failed"
}

// errWith is nil when no row failed, else the rowFailuresError carrying the
// operations of the rows that were applied or skipped.
func (f rowFailures) errWith(applied, skipped []connector.Op) error {
	if len(f) == 0 {
		return nil
	}
	return &rowFailuresError{rows: f, applied: applied, skipped: skipped}
}

// applyRows applies one table's rows of a batch. Passing failures (a
// dependency that is down) are retried until they pass or ctx ends: the
// slot stays where it is and nothing is lost. Rows that fail permanently are
// retried DeadLetterAttempts times in all and then dead-lettered, so that
// they do not block the rows after them. Any other permanent failure stops
// the pipeline.
func (p *Pipeline) applyRows(ctx context.Context, t *Table, items []item) error {
	return p.applyRowsSince(ctx, t, items, p.res.applied.Load())
}

// applyRowsSince is applyRows for rows failing since the applied count was
// since: a batch applied after that shows the dependencies answer.
func (p *Pipeline) applyRowsSince(ctx context.Context, t *Table, items []item, since int64) error {
	var (
		wait     retries
		strikes  int
		first    *rowFailuresError
		stalling bool
	)
	defer func() {
		if stalling {
			p.res.retrying.Add(-1)
		}
	}()
	for attempt := 1; ; attempt++ {
		err := p.applyTable(ctx, t, items)
		if err == nil {
			p.res.applied.Add(1)
			if attempt > 1 {
				p.log.Info().Str("table", t.SourceTable).Int("attempt", attempt).Msg("applied after retrying")
			}
			return nil
		}
		var rf *rowFailuresError
		switch {
		case errors.As(err, &rf):
			strikes++
			if first == nil {
				first = rf
			}
			if strikes >= DeadLetterAttempts {
				p.count(t, first.applied, metrics.OutcomeApplied)
				p.count(t, first.skipped, metrics.OutcomeSkipped)
				return p.deadLetter(ctx, t, items, rf.rows, strikes)
			}
		case ctx.Err() != nil:
			return err
		case isPermanent(err):
			return err
		case attempt >= IsolateAttempts && len(items) > 1:
			p.log.Warn().Err(err).Str("table", t.SourceTable).Int("rows", len(items)).Int("attempts", attempt).
				Msg("batch keeps failing: applying it in halves to find the rows at fault")
			return p.applyHalves(ctx, t, items, since)
		case attempt >= IsolateAttempts && p.res.applied.Load() > since && p.sink.Ready(ctx) == nil:
			p.log.Error().Err(err).Str("table", t.SourceTable).Str("key", items[0].key.String()).Int("attempts", attempt).
				Msg("row keeps failing while other rows are applied: dead-lettering it")
			return p.deadLetter(ctx, t, items, rowFailures{0: err}, attempt)
		default:
			if !stalling && attempt >= 3 {
				stalling = true
				p.res.retrying.Add(1)
			}
		}
		d := wait.next()
		p.log.Warn().Err(err).Str("table", t.SourceTable).Int("rows", len(items)).Int("attempt", attempt).
			Dur("backoff", d).Msg("apply failed; retrying")
		if err := sleepCtx(ctx, d); err != nil {
			return err
		}
	}
}

// applyHalves applies a batch that keeps failing as two smaller ones, so
// that the rows at fault end up alone while the others are applied. Each
// half is tried once first: a half that goes through is the evidence that
// the dependencies answer, which the other half's rows need before they
// are dead-lettered. A half that fails is retried (and, if it keeps
// failing, halved again).
func (p *Pipeline) applyHalves(ctx context.Context, t *Table, items []item, since int64) error {
	mid := len(items) / 2
	var failing [][]item
	for _, half := range [][]item{items[:mid], items[mid:]} {
		if err := p.applyTable(ctx, t, half); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failing = append(failing, half)
			continue
		}
		p.res.applied.Add(1)
	}
	for _, half := range failing {
		if err := p.applyRowsSince(ctx, t, half, since); err != nil {
			return err
		}
	}
	return nil
}
