package sink

import (
	"context"
	"fmt"

	"github.com/cdc-indexer/cdc-indexer/transform"
)

// pruneChunks removes, for documents whose previous chunk count is unknown,
// every object of the row with a chunk_index at or past the document's new
// chunk count. Documents are grouped by collection, table and new count so
// that one query covers many rows; the query's field-tokenized key filter
// also matches whitespace variants of a key, so only exact keys are deleted.
func (w *Weaviate) pruneChunks(ctx context.Context, docs []*transform.Document) error {
	type group struct {
		collection, tenant, table string
		count                     int
	}
	keys := map[group][]string{}
	var order []group
	for _, d := range docs {
		g := group{d.Collection, d.Tenant, d.SourceTable, len(d.Chunks)}
		if _, ok := keys[g]; !ok {
			order = append(order, g)
		}
		keys[g] = append(keys[g], d.SourceKey)
	}
	for _, g := range order {
		ks := keys[g]
		for start := 0; start < len(ks); start += deleteChunk {
			end := min(start+deleteChunk, len(ks))
			if err := w.pruneKeys(ctx, g.collection, g.tenant, g.table, ks[start:end], g.count); err != nil {
				return fmt.Errorf("chunks from %d of %d rows of %s in %s: %w", g.count, end-start, g.table, g.collection, err)
			}
		}
	}
	return nil
}

func (w *Weaviate) pruneKeys(ctx context.Context, collection, tenant, table string, keys []string, from int) error {
	return w.deleteMatchingKeys(ctx, collection, tenant, allOf(keysFilter(table, keys), chunksFromFilter(from)), keys)
}
