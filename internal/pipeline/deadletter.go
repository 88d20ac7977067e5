package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pglogrepl"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// DeadLetterAttempts is how many times a batch is applied while some of its
// rows fail permanently (a template that cannot render them, an input the
// embedding provider rejects, an object Weaviate refuses) before those rows
// are dead-lettered. The other rows of the batch are indexed on the first
// attempt already.
const DeadLetterAttempts = 3

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

// DeadLetterStore is what the pipeline needs of the state to keep dead
// letters; *state.Store has it. A State without it logs dead letters only.
type DeadLetterStore interface {
	RecordDeadLetters(ctx context.Context, collection, sourceTable string, letters []state.DeadLetter) error
	ClearDeadLetters(ctx context.Context, collection, sourceTable string, keys []string) (int64, error)
	CountDeadLetters(ctx context.Context, f state.DeadLetterFilter) (int64, error)
}

// resilience is the pipeline's bookkeeping of failures: how many applies
// are waiting for a dependency, and which tables may have dead letters.
type resilience struct {
	retrying atomic.Int32
	// applied counts batches applied, by every worker: a row that keeps
	// failing while it grows is failing by its content.
	applied atomic.Int64

	mu      sync.Mutex
	letters map[*Table]bool // table -> may have dead letters; absent: not known yet
}

// Stalled reports whether some change is waiting for a dependency
// (PostgreSQL, Weaviate or the embedding provider) that keeps failing. An
// embedder that retries by itself counts while its circuit is open.
func (p *Pipeline) Stalled() bool {
	if p.res.retrying.Load() > 0 {
		return true
	}
	e := p.embedder
	for e != nil {
		if co, ok := e.(interface{ CircuitOpen() bool }); ok {
			return co.CircuitOpen()
		}
		w, ok := e.(interface{ Inner() transform.Embedder }) // a cache in front
		if !ok {
			break
		}
		e = w.Inner()
	}
	return false
}

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

// deadLetter records rows that cannot be indexed: their objects are removed
// from Weaviate (the index must not keep serving an outdated version), their
// state becomes a tombstone at the change's LSN (so neither the content-hash
// skip nor an older snapshot row can stand in for them), and each is stored
// in the state schema's dead_letters with its key, LSN, error and attempts.
// Their changes then count as handled and are acknowledged with the batch.
func (p *Pipeline) deadLetter(ctx context.Context, t *Table, items []item, rows rowFailures, attempts int) error {
	keys := make([]string, 0, len(rows))
	letters := make([]state.DeadLetter, 0, len(rows))
	tombstones := make([]state.DocState, 0, len(rows))
	for i, rowErr := range rows {
		it := items[i]
		key := it.key.String()
		keys = append(keys, key)
		letters = append(letters, state.DeadLetter{
			Collection: t.Collection, SourceTable: t.SourceTable, SourceKey: key,
			LSN: it.lsn.LSN, Error: rowErr.Error(), Attempts: attempts,
		})
		tombstones = append(tombstones, state.DocState{SourceKey: key, LSN: it.lsn.LSN})
	}
	dl, _ := p.state.(DeadLetterStore)
	err := retry(ctx, p.log, "dead-letter rows of "+t.SourceTable, func() error {
		if err := p.sink.Delete(ctx, t.Collection, "", t.SourceTable, keys); err != nil {
			return fmt.Errorf("remove objects of dead-lettered rows: %w", err)
		}
		if err := p.state.ApplyDocuments(ctx, t.Collection, t.SourceTable, tombstones, nil); err != nil {
			return fmt.Errorf("record dead-lettered rows: %w", err)
		}
		if dl != nil {
			if err := dl.RecordDeadLetters(ctx, t.Collection, t.SourceTable, letters); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dead-letter %d rows of %s: %w", len(keys), t.SourceTable, err)
	}
	p.res.mu.Lock()
	if p.res.letters == nil {
		p.res.letters = map[*Table]bool{}
	}
	p.res.letters[t] = true
	p.res.mu.Unlock()
	for i, rowErr := range rows {
		it := items[i]
		p.metrics.Changes.WithLabelValues(t.SourceTable, it.op.String(), metrics.OutcomeDeadLettered).Inc()
		p.log.Error().Err(rowErr).Str("table", t.SourceTable).Str("key", it.key.String()).
			Stringer("lsn", it.lsn.LSN).Int("attempts", attempts).
			Msg("row dead-lettered: it cannot be indexed and its objects were removed; fix the cause, then `cdc-indexer deadletters retry`")
	}
	return nil
}

// clearDeadLetters forgets the dead letters of rows that were just indexed
// or removed. It costs a statement only for tables that may have some.
func (p *Pipeline) clearDeadLetters(ctx context.Context, t *Table, done []state.DocState) error {
	dl, ok := p.state.(DeadLetterStore)
	if !ok || len(done) == 0 {
		return nil
	}
	p.res.mu.Lock()
	may, known := p.res.letters[t]
	p.res.mu.Unlock()
	if !known {
		n, err := dl.CountDeadLetters(ctx, state.DeadLetterFilter{Collection: t.Collection, SourceTable: t.SourceTable})
		if err != nil {
			return err
		}
		may = n > 0
		p.res.mu.Lock()
		if p.res.letters == nil {
			p.res.letters = map[*Table]bool{}
		}
		if _, set := p.res.letters[t]; !set {
			p.res.letters[t] = may
		}
		p.res.mu.Unlock()
	}
	if !may {
		return nil
	}
	keys := make([]string, len(done))
	for i, d := range done {
		keys[i] = d.SourceKey
	}
	n, err := dl.ClearDeadLetters(ctx, t.Collection, t.SourceTable, keys)
	if err != nil {
		return err
	}
	if n > 0 {
		p.log.Info().Str("table", t.SourceTable).Int64("rows", n).Msg("dead letters resolved: the rows are indexed or removed now")
	}
	return nil
}

// RefreshDeadLetters makes the pipeline look up again which tables have dead
// letters (another process may have recorded some).
func (p *Pipeline) RefreshDeadLetters() {
	p.res.mu.Lock()
	p.res.letters = nil
	p.res.mu.Unlock()
}

// embedIsolating chunks and embeds writes. When the provider rejects some
// inputs (transform.InputErrors), it finds the documents they belong to by
// embedding halves of the batch, records those in failed and returns the
// others, embedded. Any other error is returned as it is.
func (p *Pipeline) embedIsolating(ctx context.Context, t *Table, writes []*transform.Document, writeAt []int, failed rowFailures) ([]*transform.Document, []int, error) {
	err := p.chunkAndEmbed(ctx, t, writes)
	if err == nil {
		return writes, writeAt, nil
	}
	if _, ok := transform.AsInputErrors(err); !ok {
		return nil, nil, err
	}
	bad, ok := docsOfRejectedChunks(writes, err, p.encoding(t).Embedder != nil)
	if !ok {
		bad = map[int]error{}
		if len(writes) == 1 {
			bad[0] = err
		} else if err := p.bisectEmbed(ctx, t, writes, 0, bad); err != nil {
			return nil, nil, err
		}
	}
	keep, keepAt := writes[:0:0], writeAt[:0:0]
	for j, d := range writes {
		if e, ok := bad[j]; ok {
			failed[writeAt[j]] = fmt.Errorf("embed %s key %s: %w", d.SourceTable, d.SourceKey, e)
			continue
		}
		keep, keepAt = append(keep, d), append(keepAt, writeAt[j])
	}
	return keep, keepAt, nil
}

// docsOfRejectedChunks maps the rejected inputs of err (their indexes count
// the chunks of docs in order) to the documents they belong to, by index in
// docs. ok is false when that does not add up (an index out of range, or a
// document that is neither rejected nor fully embedded); the caller then
// finds the documents by bisection.
func docsOfRejectedChunks(docs []*transform.Document, err error, vectors bool) (map[int]error, bool) {
	ie, ok := transform.AsInputErrors(err)
	if !ok || len(ie) == 0 {
		return nil, false
	}
	bad := map[int]error{}
	for _, in := range ie {
		offset, found := 0, false
		for j, d := range docs {
			if in.Index >= offset && in.Index < offset+len(d.Chunks) {
				if _, dup := bad[j]; !dup {
					bad[j] = in
				}
				found = true
				break
			}
			offset += len(d.Chunks)
		}
		if !found {
			return nil, false
		}
	}
	for j, d := range docs {
		if _, rejected := bad[j]; rejected || !vectors {
			continue
		}
		for _, c := range d.Chunks {
			if len(c.Vector) == 0 {
				return nil, false
			}
		}
	}
	return bad, true
}

// bisectEmbed embeds each half of docs (offset is docs' position in the
// batch) and descends into the halves the provider rejects an input of,
// down to single documents, which it records in bad.
func (p *Pipeline) bisectEmbed(ctx context.Context, t *Table, docs []*transform.Document, offset int, bad map[int]error) error {
	mid := len(docs) / 2
	for _, part := range [][2]int{{0, mid}, {mid, len(docs)}} {
		half := docs[part[0]:part[1]]
		if len(half) == 0 {
			continue
		}
		err := p.chunkAndEmbed(ctx, t, half)
		if err == nil {
			continue
		}
		if _, ok := transform.AsInputErrors(err); !ok {
			return err
		}
		if len(half) == 1 {
			bad[offset+part[0]] = err
			continue
		}
		if err := p.bisectEmbed(ctx, t, half, offset+part[0], bad); err != nil {
			return err
		}
	}
	return nil
}

// RowRejections is how a Sink's Write error reports that it stored some
// documents and refused the objects of others (*sink.WriteError has it):
// the rows refused, each with the reason, and whether every refusal is
// permanent (else some may pass when retried).
type RowRejections interface {
	error
	EachRejectedRow(fn func(collection, sourceTable, sourceKey string, reason error))
	Permanent() bool
}

// rejectedWrites handles Weaviate's refusal of some objects: the rows they
// belong to go to failed and the documents Weaviate stored are returned.
// A rejection that looked temporary is isolated too when Weaviate stored
// other rows of the same write: Weaviate answers, and a row it keeps
// refusing alone must not hold up the rest forever (it is retried with its
// batch and dead-lettered after DeadLetterAttempts). When every row was
// refused for a reason that may pass, err is returned and the whole write
// is retried.
func rejectedWrites(err error, writes []*transform.Document, writeAt []int, failed rowFailures) ([]*transform.Document, []int, error) {
	var we RowRejections
	if !errors.As(err, &we) {
		return writes, writeAt, err
	}
	type rowKey struct{ collection, table, key string }
	rejected := map[rowKey]error{}
	we.EachRejectedRow(func(collection, sourceTable, sourceKey string, reason error) {
		rejected[rowKey{collection, sourceTable, sourceKey}] = reason
	})
	keep, keepAt := writes[:0:0], writeAt[:0:0]
	for j, d := range writes {
		if o, ok := rejected[rowKey{d.Collection, d.SourceTable, d.SourceKey}]; ok {
			failed[writeAt[j]] = permanent(o)
			continue
		}
		keep, keepAt = append(keep, d), append(keepAt, writeAt[j])
	}
	if len(keep) == len(writes) {
		return writes, writeAt, err // none of ours: cannot isolate
	}
	if len(keep) == 0 && !we.Permanent() {
		for _, at := range writeAt {
			delete(failed, at)
		}
		return writes, writeAt, err // Weaviate took nothing: wait for it
	}
	return keep, keepAt, nil
}

// Redrive indexes the current version of dead-lettered rows again (after
// `cdc-indexer deadletters retry`): each row is re-read by key on the worker
// that owns it, on the snapshot lane, as if read at position at (the
// server's WAL position when the retry started, so that a change the stream
// applies after it is never overwritten). A row that fails again is
// dead-lettered again; one indexed is cleared from the dead letters. Rows of
// tables not configured here are left alone. It returns once every row was
// handled.
func (p *Pipeline) Redrive(ctx context.Context, letters []state.DeadLetter, at pglogrepl.LSN) error {
	var wg sync.WaitGroup
	for _, d := range letters {
		t := p.tableFor(d.Collection, d.SourceTable)
		if t == nil {
			continue
		}
		key, err := ParseSourceKey(t.Info, d.SourceKey)
		if err != nil {
			p.log.Warn().Err(err).Str("table", d.SourceTable).Str("key", d.SourceKey).Msg("dead letter with an unreadable key")
			continue
		}
		all := make([]string, len(t.Info.Columns))
		for i, c := range t.Info.Columns {
			all[i] = c.Name
		}
		wg.Add(1)
		it := item{table: t, op: opSnapshot, key: key, row: connector.Row{}, unchanged: all, lsn: Position{LSN: at}, backfill: &wg}
		select {
		case p.backfillQueues[p.route(t, key)] <- it:
		case <-ctx.Done():
			wg.Done()
			return ctx.Err()
		case <-p.stopped:
			wg.Done()
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

func (p *Pipeline) tableFor(collection, sourceTable string) *Table {
	for _, mappings := range *p.tables.Load() {
		for _, t := range mappings {
			if t.Collection == collection && t.SourceTable == sourceTable {
				return t
			}
		}
	}
	return nil
}

// ParseSourceKey turns a contract source_key back into the key columns'
// text forms: the text itself for a one-column key, a JSON array otherwise.
func ParseSourceKey(info connector.TableInfo, sourceKey string) (connector.Key, error) {
	if len(info.Key) == 1 {
		return connector.Key{sourceKey}, nil
	}
	var parts []string
	if err := json.Unmarshal([]byte(sourceKey), &parts); err != nil {
		return nil, fmt.Errorf("source_key %q of %s: %w", sourceKey, info.Name, err)
	}
	if len(parts) != len(info.Key) {
		return nil, fmt.Errorf("source_key %q of %s: %d parts for a %d-column key", sourceKey, info.Name, len(parts), len(info.Key))
	}
	return connector.Key(parts), nil
}
