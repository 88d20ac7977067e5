package pipeline

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
)

// DeadLetterAttempts is how many times a batch is applied while some of its
// rows fail permanently (a template that cannot render them, an input the
// embedding provider rejects, an object Weaviate refuses) before those rows
// are dead-lettered. The other rows of the batch are indexed on the first
// attempt already.
const DeadLetterAttempts = 3

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
		w, ok := e.(interface{ Inner() embedding.Embedder }) // a cache in front
		if !ok {
			break
		}
		e = w.Inner()
	}
	return false
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
