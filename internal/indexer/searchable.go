package indexer

import (
	"context"
	"errors"
	"time"
)

// With asynchronous indexing (ASYNC_INDEXING=true, the Weaviate Cloud
// default) Weaviate acknowledges an object once it is stored and
// keyword-searchable; its vector is added to the HNSW index later, from a
// per-shard queue. /v1/wait?searchable=true therefore waits, after the
// changes are acknowledged, until the vector indexing queue of every
// collection the pipeline writes has been empty once: the queue is first
// in, first out, so the acknowledged objects are in the index by then.
// Each look costs one GET /v1/nodes/<collection>?output=verbose per
// collection; without asynchronous indexing the queues are always empty
// and the first look answers.

// vectorIndexedPoll is how often the queues are looked at.
const vectorIndexedPoll = 10 * time.Millisecond

// waitVectorIndexed returns nil once the queues were empty, or ctx's error.
func (o *observability) waitVectorIndexed(ctx context.Context) error {
	check := o.vectorIndexed.Load()
	if check == nil {
		return errors.New("not streaming yet")
	}
	for {
		ok, err := (*check)(ctx)
		if err == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(vectorIndexedPoll):
		}
	}
}

// vectorQueuesEmpty is the check for the collections the pipeline writes.
func (e *Env) vectorQueuesEmpty(collections func() []string) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		for _, c := range collections() {
			n, err := e.Sink.VectorQueueLength(ctx, c)
			if err != nil || n > 0 {
				return false, err
			}
		}
		return true, nil
	}
}
