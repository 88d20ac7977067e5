package sink

import (
	"context"
	"fmt"
)

// VectorQueueLength is how many objects of collection wait in its shards'
// vector indexing queues, over every node. With asynchronous indexing
// (ASYNC_INDEXING=true, Weaviate Cloud's default) an acknowledged object is
// stored and keyword-searchable at once, and vector-searchable once the
// queue that holds it has drained; without it the queues are always empty.
func (w *Weaviate) VectorQueueLength(ctx context.Context, collection string) (int64, error) {
	resp, err := w.client.Cluster().NodesStatusGetter().WithClass(collection).WithOutput("verbose").Do(ctx)
	if err != nil {
		return 0, fmt.Errorf("sink: vector queue of %s: %w", collection, err)
	}
	var n int64
	for _, node := range resp.Nodes {
		for _, s := range node.Shards {
			if s != nil && s.Class == collection {
				n += s.VectorQueueLength
			}
		}
	}
	return n, nil
}
