package pipeline

import (
	"slices"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

// A collection that is reindexed (package reindex) has two versions, each
// a mapping of the same table: the stream writes every change to both.
// The mappings of a new version are added while the pipeline runs, before
// its backfill takes its snapshot, so that every change committed after
// that snapshot reaches it; the mappings of a version that was switched
// away from are retired.

// tableSet is every mapping, by source table. It is never modified once
// published: AddTables and RetireCollection publish a new one.
type tableSet map[connector.TableName][]*Table

// newTableSet is base plus add, without the mappings into collection
// drop ("" drops nothing).
func newTableSet(base tableSet, add []*Table, drop func(*Table) bool) *tableSet {
	out := tableSet{}
	for name, ts := range base {
		for _, t := range ts {
			if drop == nil || !drop(t) {
				out[name] = append(out[name], t)
			}
		}
	}
	for _, t := range add {
		out[t.Info.Name] = append(out[t.Info.Name], t)
	}
	return &out
}

// mappings are the mappings of a source table.
func (p *Pipeline) mappings(name connector.TableName) []*Table {
	return (*p.tables.Load())[name]
}

// Tables are the pipeline's mappings now.
func (p *Pipeline) Tables() []*Table {
	var out []*Table
	for _, ts := range *p.tables.Load() {
		out = append(out, ts...)
	}
	slices.SortFunc(out, func(a, b *Table) int {
		if a.Collection != b.Collection {
			if a.Collection < b.Collection {
				return -1
			}
			return 1
		}
		if a.SourceTable < b.SourceTable {
			return -1
		}
		if a.SourceTable > b.SourceTable {
			return 1
		}
		return 0
	})
	return out
}

// AddTables adds mappings while the pipeline runs. Every change the
// dispatcher takes after AddTables returned reaches them.
func (p *Pipeline) AddTables(ts []*Table) {
	p.tablesMu.Lock()
	defer p.tablesMu.Unlock()
	p.tables.Store(newTableSet(*p.tables.Load(), ts, nil))
}

// RetireCollection removes the mappings into collection. When it returns,
// no batch writes to collection any more: changes already queued for them
// are dropped, and batches that were applying have finished.
func (p *Pipeline) RetireCollection(collection string) {
	p.tablesMu.Lock()
	p.tables.Store(newTableSet(*p.tables.Load(), nil, func(t *Table) bool {
		if t.Collection == collection {
			t.retired.Store(true)
			return true
		}
		return false
	}))
	p.tablesMu.Unlock()
	// A batch holds applying for reading while it applies: taking it for
	// writing waits for every batch that may not have seen the flag.
	p.applying.Lock()
	p.applying.Unlock() //nolint:staticcheck // an intended barrier
}

// encoding is how t's documents are chunked and embedded.
func (p *Pipeline) encoding(t *Table) Encoding {
	if t != nil && t.Encoding != nil {
		return *t.Encoding
	}
	return Encoding{Chunker: p.chunker, Embedder: p.embedder}
}
