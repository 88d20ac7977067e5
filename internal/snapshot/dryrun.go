package snapshot

import (
	"context"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"

	"github.com/jackc/pglogrepl"

	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// Lookup returns the state of already indexed rows, keyed by source key.
type Lookup func(ctx context.Context, collection, sourceTable string, keys []string) (map[string]state.DocState, error)

// DryRun is an Applier that indexes nothing: it renders, chunks and counts
// what a snapshot would send.
type DryRun struct {
	chunker *transform.Chunker
	lookup  Lookup // optional: rows whose document is indexed already are skipped
	mu      sync.Mutex
	counts  map[*pipeline.Table]*Counts // per mapping
}

// Counts is what a dry run found for one table.
type Counts struct {
	Rows      int64 // rows read
	Documents int64 // documents that would be embedded and written
	Unchanged int64 // rows whose indexed document is already current
	Failed    int64 // rows whose template fails to render
	Chunks    int64 // chunks (objects) that would be written
	Tokens    int64 // cl100k_base tokens that would be embedded
}

// NewDryRun counts for tables; lookup may be nil.
func NewDryRun(tables []*pipeline.Table, chunker *transform.Chunker, lookup Lookup) *DryRun {
	d := &DryRun{chunker: chunker, lookup: lookup, counts: map[*pipeline.Table]*Counts{}}
	for _, t := range tables {
		d.counts[t] = &Counts{}
	}
	return d
}

// Backfill counts rows as the pipeline would index them.
func (d *DryRun) Backfill(ctx context.Context, t *pipeline.Table, rows []pipeline.BackfillRow, at pglogrepl.LSN) error {
	if d.counts[t] == nil {
		return fmt.Errorf("dry run: %s -> %s is not a configured mapping", t.SourceTable, t.Collection)
	}
	var prev map[string]state.DocState
	if d.lookup != nil {
		keys := make([]string, len(rows))
		for i, r := range rows {
			keys[i] = r.Key.String()
		}
		var err error
		if prev, err = d.lookup(ctx, t.Collection, t.SourceTable, keys); err != nil {
			return err
		}
	}
	var c Counts
	for _, r := range rows {
		c.Rows++
		doc, err := t.Renderer.Render(r.Row, r.Key, at)
		if err != nil {
			c.Failed++
			continue
		}
		if old, ok := prev[doc.SourceKey]; ok && old.ContentHash == doc.ContentHash {
			c.Unchanged++
			continue
		}
		c.Documents++
		for _, part := range d.chunker.Split(doc.Text) {
			c.Chunks++
			c.Tokens += int64(transform.CountTokens(part))
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	total := d.counts[t]
	total.Rows += c.Rows
	total.Documents += c.Documents
	total.Unchanged += c.Unchanged
	total.Failed += c.Failed
	total.Chunks += c.Chunks
	total.Tokens += c.Tokens
	return nil
}

// Counts returns what was counted for a mapping.
func (d *DryRun) Counts(t *pipeline.Table) Counts {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.counts[t]; c != nil {
		return *c
	}
	return Counts{}
}

// Report prints a table of the counts and the estimated embedding cost at
// pricePerMillion (per million tokens) to w.
func (d *DryRun) Report(w io.Writer, tables []*pipeline.Table, model string, pricePerMillion float64) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "table\tcollection\trows\tdocuments\tunchanged\tchunks\ttokens\t")
	var sum Counts
	for _, t := range tables {
		c := d.Counts(t)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", t.SourceTable, t.Collection, c.Rows, c.Documents, c.Unchanged, c.Chunks, c.Tokens)
		sum.Rows += c.Rows
		sum.Documents += c.Documents
		sum.Unchanged += c.Unchanged
		sum.Failed += c.Failed
		sum.Chunks += c.Chunks
		sum.Tokens += c.Tokens
	}
	if len(tables) > 1 {
		fmt.Fprintf(tw, "total\t\t%d\t%d\t%d\t%d\t%d\t\n", sum.Rows, sum.Documents, sum.Unchanged, sum.Chunks, sum.Tokens)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if sum.Failed > 0 {
		fmt.Fprintf(w, "%d rows fail to render and would become dead letters\n", sum.Failed)
	}
	cost := float64(sum.Tokens) / 1e6 * pricePerMillion
	if pricePerMillion > 0 {
		fmt.Fprintf(w, "estimated embedding cost: %.4f (%d tokens of model %s at %g per million tokens)\n", cost, sum.Tokens, model, pricePerMillion)
	} else {
		fmt.Fprintf(w, "estimated embedding cost: 0 (%d tokens of model %s; set embedding.price_per_million_tokens for an estimate)\n", sum.Tokens, model)
	}
	_, err := fmt.Fprintln(w, "dry run: nothing was written (no slot, no collection, no objects)")
	return err
}
