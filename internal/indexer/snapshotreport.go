package indexer

import (
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
	"github.com/cdc-indexer/cdc-indexer/internal/snapshot"
)

// SnapshotReport is what `cdc-indexer snapshot --json` prints: what a
// snapshot (or a dry run) did per mapping.
type SnapshotReport struct {
	DryRun bool `json:"dry_run"`
	// Online: the running connector backfilled the tables (its backfill
	// lane), this process only waited.
	Online  bool            `json:"online"`
	Tables  []SnapshotTable `json:"tables"`
	Rows    int64           `json:"rows"`
	Seconds float64         `json:"seconds,omitempty"`
	// Slot and FromLSN say where `run` continues after a local snapshot.
	Slot    string `json:"slot,omitempty"`
	FromLSN string `json:"from_lsn,omitempty"`
	// Tokens and Cost are a dry run's embedding estimate (Cost 0 without
	// embedding.price_per_million_tokens).
	Tokens int64   `json:"tokens,omitempty"`
	Cost   float64 `json:"estimated_cost,omitempty"`
}

// SnapshotTable is one mapping's part of a SnapshotReport.
type SnapshotTable struct {
	Table      string `json:"table"`
	Collection string `json:"collection"`
	Rows       int64  `json:"rows"` // read (a dry run: rows of the table)
	// A local snapshot's.
	RowsBefore int64   `json:"rows_before,omitempty"` // indexed by an interrupted earlier run
	Resumed    bool    `json:"resumed,omitempty"`
	Removed    int64   `json:"removed,omitempty"` // indexed rows the table no longer holds
	Seconds    float64 `json:"seconds,omitempty"`
	// A dry run's.
	Documents int64 `json:"documents,omitempty"` // would be embedded and written
	Unchanged int64 `json:"unchanged,omitempty"` // indexed already with the same document
	Failed    int64 `json:"failed,omitempty"`    // would become dead letters
	Chunks    int64 `json:"chunks,omitempty"`
	Tokens    int64 `json:"tokens,omitempty"`
}

// reportResults fills r from a local snapshot's results.
func (e *Env) reportResults(r *SnapshotReport, results []snapshot.Result) {
	for _, res := range results {
		r.Rows += res.RowsRead
		r.Tables = append(r.Tables, SnapshotTable{Table: res.Table.SourceTable, Collection: e.servedName(res.Table),
			Rows: res.RowsRead, RowsBefore: res.RowsBefore, Resumed: res.Resumed, Removed: res.Removed, Seconds: res.Elapsed.Seconds()})
	}
}

// reportDryRun fills r from a dry run's counts.
func (e *Env) reportDryRun(r *SnapshotReport, counter *snapshot.DryRun, tables []*pipeline.Table, pricePerMillion float64) {
	r.DryRun = true
	for _, t := range tables {
		c := counter.Counts(t)
		r.Rows += c.Rows
		r.Tokens += c.Tokens
		r.Tables = append(r.Tables, SnapshotTable{Table: t.SourceTable, Collection: e.servedName(t), Rows: c.Rows,
			Documents: c.Documents, Unchanged: c.Unchanged, Failed: c.Failed, Chunks: c.Chunks, Tokens: c.Tokens})
	}
	r.Cost = float64(r.Tokens) / 1e6 * pricePerMillion
}
