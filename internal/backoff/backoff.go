// Package backoff is the one wait-before-retry policy of the connector:
// exponential from an initial wait, capped, with jitter so that clients
// that failed together do not retry together, and a context-aware sleep.
//
// Who retries what, and for how long (the retry budget):
//   - sink (Weaviate requests): 5 attempts per request, 200 ms doubling to
//     5 s; then the error goes up to the pipeline.
//   - transform (the embedding provider): attempts until the circuit breaker
//     opens, InitialBackoff (0.5 s) doubling to embedding.max_backoff; an input
//     the provider keeps refusing becomes a dead letter after IsolateAttempts.
//   - pipeline (a batch): retried without end, 100 ms doubling to 5 s, while
//     the slot stays where it is: nothing is lost; rows that fail alone while
//     others succeed become dead letters.
//   - indexer (the replication connection): reconnects without end, 200 ms
//     doubling to 15 s, not ready meanwhile.
//
// So a Weaviate outage costs the sink's few seconds per attempt, then the
// pipeline retries the batch without end; once the pipeline has been
// stalled for 5 s (indexer's stallRelease) the replication connection is
// released and `/readyz` answers 503 until the dependency answers again.
// Nothing is confirmed meanwhile, so nothing is lost.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff: the wait before retry n (1-based) is
// Initial doubled n-1 times, at most Max, plus up to Jitter times that at
// random.
type Policy struct {
	Initial, Max time.Duration
	Jitter       float64 // 0 to 1: how much random wait is added
}

// Delay is the wait before retry n (1-based).
func (p Policy) Delay(n int) time.Duration {
	d := p.Initial
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if d <= 0 {
		return 0
	}
	if j := time.Duration(float64(d) * p.Jitter); j > 0 {
		d += time.Duration(rand.Int64N(int64(j) + 1))
	}
	return d
}

// Sleep waits d, or returns ctx's error as soon as ctx is done.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
