package pipeline

import (
	"context"
	"time"

	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
)

// worker applies the changes of its share of the keys, in arrival order.
type worker struct {
	p        *Pipeline
	queue    chan item // live changes
	backfill chan item // snapshot rows, taken only when queue is empty
	id       int
}

// run takes whatever has queued up since its last round, up to MaxBatch, and
// applies it as one batch. An idle pipeline therefore flushes a single change
// at once (lowest latency), and a busy one grows its batches by itself
// (highest throughput).
func (w *worker) run(ctx context.Context) error {
	batch := make([]item, 0, w.p.cfg.MaxBatch)
	for {
		it, ok, err := w.next(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		batch = append(batch, it)
		closed := w.drain(&batch)
		// More than one change waiting means the pipeline is under load:
		// then a short wait fills the batch further, so that Weaviate and
		// the embedder get fewer, larger requests.
		if !closed && len(batch) > 1 && len(batch) < w.p.cfg.MaxBatch && w.p.cfg.MaxWait > 0 {
			closed = w.fill(&batch)
		}
		if err := w.p.apply(ctx, batch); err != nil {
			return err
		}
		w.ack(batch)
		clear(batch)
		batch = batch[:0]
		if closed {
			return nil
		}
	}
}

// next waits for the first item of a batch, preferring live changes; ok is
// false once the live queue is closed.
func (w *worker) next(ctx context.Context) (it item, ok bool, err error) {
	select {
	case it, ok = <-w.queue:
		return it, ok, nil
	default:
	}
	select {
	case it, ok = <-w.queue:
		return it, ok, nil
	case it = <-w.backfill:
		return it, true, nil
	case <-ctx.Done():
		return item{}, false, ctx.Err()
	}
}

// drain adds what is already waiting, live changes first, up to MaxBatch;
// it reports whether the live queue was closed.
func (w *worker) drain(batch *[]item) (closed bool) {
	for len(*batch) < w.p.cfg.MaxBatch {
		select {
		case it, ok := <-w.queue:
			if !ok {
				return true
			}
			*batch = append(*batch, it)
			continue
		default:
		}
		select {
		case it := <-w.backfill:
			*batch = append(*batch, it)
			continue
		default:
		}
		return false
	}
	return false
}

// fill adds changes to batch until it is full or MaxWait has passed; it
// reports whether the queue was closed.
func (w *worker) fill(batch *[]item) (closed bool) {
	timer := time.NewTimer(w.p.cfg.MaxWait)
	defer timer.Stop()
	for len(*batch) < w.p.cfg.MaxBatch {
		select {
		case it, ok := <-w.queue:
			if !ok {
				return true
			}
			*batch = append(*batch, it)
		case <-timer.C:
			return false
		}
	}
	return false
}

// ack tells the tracker, one call per transaction rather than per change,
// and hands the batch's bytes back to the budget.
func (w *worker) ack(batch []item) {
	var tx *checkpoint.Txn
	n := 0
	now := time.Now()
	w.p.metrics.BatchSize.Observe(float64(len(batch)))
	for _, it := range batch {
		w.p.budget.Release(it.held)
		if it.backfill != nil {
			it.backfill.Done()
			continue
		}
		if !it.lsn.Time.IsZero() {
			w.p.metrics.Freshness.Observe(now.Sub(it.lsn.Time).Seconds())
		}
		if it.tx != tx {
			if n > 0 {
				w.p.tracker.Done(tx, n)
			}
			tx, n = it.tx, 0
		}
		n++
	}
	if n > 0 {
		w.p.tracker.Done(tx, n)
	}
}
