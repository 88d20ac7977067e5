package pipeline

import (
	"context"
	"time"

	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
)

// worker applies the changes of its share of the keys, in arrival order.
type worker struct {
	p     *Pipeline
	queue chan item
	id    int
}

// run takes whatever has queued up since its last round, up to MaxBatch, and
// applies it as one batch. An idle pipeline therefore flushes a single change
// at once (lowest latency), and a busy one grows its batches by itself
// (highest throughput) without any timer.
func (w *worker) run(ctx context.Context) error {
	batch := make([]item, 0, w.p.cfg.MaxBatch)
	for {
		select {
		case it, ok := <-w.queue:
			if !ok {
				return nil
			}
			batch = append(batch, it)
		case <-ctx.Done():
			return ctx.Err()
		}
		closed := false
	drain:
		for len(batch) < w.p.cfg.MaxBatch {
			select {
			case it, ok := <-w.queue:
				if !ok {
					closed = true
					break drain
				}
				batch = append(batch, it)
			default:
				break drain
			}
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

// ack tells the tracker, one call per transaction rather than per change.
func (w *worker) ack(batch []item) {
	var tx *checkpoint.Txn
	n := 0
	now := time.Now()
	w.p.metrics.BatchSize.Observe(float64(len(batch)))
	for _, it := range batch {
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
