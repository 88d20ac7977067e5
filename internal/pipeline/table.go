package pipeline

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// Table is one configured table mapping: where its rows go and how they are
// rendered.
type Table struct {
	Info        connector.TableInfo
	Collection  string
	SourceTable string // contract's source_table
	Renderer    *transform.Renderer
	// Encoding, when set, chunks and embeds this mapping's documents
	// instead of the pipeline's own (Deps): while a collection is
	// reindexed, its serving version keeps the chunking and model it was
	// built with.
	Encoding *Encoding
	// retired is set once the mapping's collection version neither serves
	// nor fills: its queued changes are then dropped (versions.go).
	retired atomic.Bool
	// reads is the set of columns the template and metadata read; nil means
	// every column (the template reads them dynamically).
	reads map[string]bool
}

// NewTable binds a table's description to its collection and renderer.
func NewTable(info connector.TableInfo, collection string, r *transform.Renderer) *Table {
	t := &Table{Info: info, Collection: collection, SourceTable: info.Name.String(), Renderer: r}
	if cols, all := r.Columns(); !all {
		t.reads = map[string]bool{}
		for _, c := range cols {
			t.reads[c] = true
		}
	}
	return t
}

// Encoding is how a mapping's documents become chunks and vectors.
type Encoding struct {
	Chunker  *transform.Chunker
	Embedder embedding.Embedder // nil when Weaviate vectorizes
}

// needsRow reports whether a change whose unchanged TOAST columns are cols
// must be completed by re-reading the row: only when the document reads one
// of them.
func (t *Table) needsRow(cols []string) bool {
	for _, c := range cols {
		if t.reads == nil || t.reads[c] {
			return true
		}
	}
	return false
}

// Position is where a change sits in the source: its transaction's commit.
type Position struct {
	LSN  pglogrepl.LSN
	Time time.Time
}

// State persists what was last written for each row, so that an unchanged
// document is skipped also after a restart.
type State interface {
	LookupDocuments(ctx context.Context, collection, sourceTable string, keys []string) (map[string]state.DocState, error)
	ApplyDocuments(ctx context.Context, collection, sourceTable string, upserts []state.DocState, deletes []string) error
	DeleteTable(ctx context.Context, collection, sourceTable string) error
}

// RowFetcher re-reads current rows by key, to fill in unchanged TOAST values
// the stream did not carry.
type RowFetcher func(ctx context.Context, info connector.TableInfo, keys []connector.Key) (map[string]connector.Row, error)
