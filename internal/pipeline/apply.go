package pipeline

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// apply makes the index match a batch of changes. Only the last change of
// each row counts: the index must hold the row's current document, and the
// intermediate versions would be overwritten at once anyway.
func (p *Pipeline) apply(ctx context.Context, batch []item) error {
	// A truncate must not run while a batch is half applied: it could
	// remove a table's objects just before a snapshot row is written back.
	p.applying.RLock()
	defer p.applying.RUnlock()
	// Live changes first, then snapshot rows: collapsing a snapshot row into
	// a live change of the same row would lose one of the two, and the
	// snapshot row's LSN check needs the live change's state written.
	var live, backfill []item
	for _, it := range batch {
		if it.backfill == nil {
			live = append(live, it)
		} else {
			backfill = append(backfill, it)
		}
	}
	if err := p.applyLast(ctx, live); err != nil {
		return err
	}
	return p.applyLast(ctx, backfill)
}

// applyLast applies the last item of each row in items, table by table.
func (p *Pipeline) applyLast(ctx context.Context, batch []item) error {
	type rowRef struct {
		table *Table
		key   string
	}
	last := make(map[rowRef]int, len(batch))
	for i, it := range batch {
		last[rowRef{it.table, it.key.String()}] = i
	}
	byTable := map[*Table][]item{}
	var order []*Table
	for i, it := range batch {
		if last[rowRef{it.table, it.key.String()}] != i {
			continue
		}
		if _, ok := byTable[it.table]; !ok {
			order = append(order, it.table)
		}
		byTable[it.table] = append(byTable[it.table], it)
	}
	for _, t := range order {
		if t.retired.Load() {
			continue // its version no longer serves or fills (versions.go)
		}
		items := byTable[t]
		if err := p.applyRows(ctx, t, items); err != nil {
			return fmt.Errorf("apply %d changes of %s: %w", len(items), t.SourceTable, err)
		}
	}
	return nil
}

// applyTable applies one table's rows of a batch (the last change of each
// key): it re-reads what the stream did not carry, looks up what the state
// records, decides each row's fate (plan.go), embeds and writes what
// changed, removes what went, records the outcome in the state and turns
// rows that can never be indexed into failures for the caller to isolate.
func (p *Pipeline) applyTable(ctx context.Context, t *Table, items []item) (err error) {
	start := time.Now()
	rows, reread, err := p.completeRows(ctx, t, items)
	defer p.budget.Release(reread)
	if err != nil {
		return err
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.key.String()
	}
	lookupStart := time.Now()
	prev, err := p.state.LookupDocuments(ctx, t.Collection, t.SourceTable, keys)
	if err != nil {
		return fmt.Errorf("look up previous documents: %w", err)
	}
	p.metrics.ObserveStage(metrics.StageLookup, lookupStart)

	var writes []*transform.Document
	var writeAt []int                     // index in items of each write
	prevChunks := make([]int, len(items)) // by index in items: the row's chunks before (plan.go)
	var removes []string
	var removedAt []int // index in items of each removal
	// Removals by tenant: where the state says a row's objects are, or ""
	// (every tenant) when it may not know (tenants.go).
	var removeFrom tenantKeys
	var appliedOps, skippedOps []connector.Op // counted once the batch is through
	// Rows that failed permanently, by index in items; the others go on.
	failed := rowFailures{}
	renderStart := time.Now()
	for i, it := range items {
		untrusted := it.unrecorded || p.recovering(it)
		backfill := it.backfill != nil
		switch planChange(changeFacts{ // plan.go
			backfill: backfill, newer: backfill && p.newerThan(t, prev, keys[i], it.lsn.LSN),
			remove: it.remove, gone: !it.remove && rows[i] == nil,
		}) {
		case actSkipNewer:
			skippedOps = append(skippedOps, it.op)
			continue
		case actSkipGone:
			continue
		case actRemove:
			appliedOps = append(appliedOps, it.op)
			removes = append(removes, keys[i])
			removedAt = append(removedAt, i)
			removeFrom.add(removalTenant(t, prev, keys[i], untrusted), keys[i])
			continue
		}
		doc, err := t.Renderer.Render(rows[i], it.key, it.lsn.LSN)
		if err != nil {
			failed[i] = permanent(err) // names the table and key
			continue
		}
		wf := writeFacts{hash: doc.ContentHash, tenant: doc.Tenant, tenanted: t.Renderer.Tenant() != "", untrusted: untrusted}
		if old, ok := prev[keys[i]]; ok {
			wf.prev = &old
		}
		plan := planWrite(wf)
		if plan.skip {
			skippedOps = append(skippedOps, it.op)
			continue
		}
		prevChunks[i] = plan.prevChunks
		if plan.removeFrom != nil {
			removeFrom.add(*plan.removeFrom, keys[i])
		}
		if plan.removeElsewhere {
			removeFrom.addElsewhere(doc.Tenant, keys[i])
		}
		writes = append(writes, doc)
		writeAt = append(writeAt, i)
	}

	p.metrics.ObserveStage(metrics.StageRender, renderStart)
	embedStart := time.Now()
	if writes, writeAt, err = p.embedIsolating(ctx, t, writes, writeAt, failed); err != nil {
		return err
	}
	writeStart := time.Now()
	if len(writes) > 0 {
		p.metrics.ObserveStage(metrics.StageEmbed, embedStart)
		previous := make([]int, len(writes))
		for j, i := range writeAt {
			previous[j] = prevChunks[i]
		}
		if err := p.sink.Replace(ctx, writes, previous); err != nil {
			p.metrics.WriteErrors.Inc()
			if writes, writeAt, err = rejectedWrites(err, writes, writeAt, failed); err != nil {
				return fmt.Errorf("write to weaviate: %w", err)
			}
		}
	}
	for _, i := range writeAt {
		appliedOps = append(appliedOps, items[i].op)
	}
	if err := removeFrom.apply(ctx, p.sink, t); err != nil {
		p.metrics.WriteErrors.Inc()
		return fmt.Errorf("delete from weaviate: %w", err)
	}
	if len(writes) > 0 || len(removes) > 0 {
		p.metrics.ObserveStage(metrics.StageWrite, writeStart)
	}
	defer func() {
		if err == nil {
			p.count(t, appliedOps, metrics.OutcomeApplied)
			p.count(t, skippedOps, metrics.OutcomeSkipped)
			p.log.Debug().Str("table", t.SourceTable).Int("rows", len(items)).Int("written", len(writes)).
				Int("removed", len(removes)).Int("skipped", len(skippedOps)).Dur("duration", time.Since(start)).Msg("batch applied")
		}
	}()
	if len(writes) == 0 && len(removes) == 0 {
		return failed.errWith(appliedOps, skippedOps)
	}
	upserts := make([]state.DocState, 0, len(writes)+len(removes))
	for _, d := range writes {
		upserts = append(upserts, state.DocState{SourceKey: d.SourceKey, ContentHash: d.ContentHash, ChunkCount: len(d.Chunks), LSN: d.LSN, Tenant: d.Tenant})
	}
	// A removed row leaves a tombstone (no hash, no chunks) carrying the
	// removal's LSN, so that a backfill that read the row before it was
	// removed can tell that its copy is older and must not bring it back.
	for _, i := range removedAt {
		upserts = append(upserts, state.DocState{SourceKey: keys[i], LSN: items[i].lsn.LSN})
	}
	if err := p.state.ApplyDocuments(ctx, t.Collection, t.SourceTable, upserts, nil); err != nil {
		return fmt.Errorf("record written documents: %w", err)
	}
	if err := p.clearDeadLetters(ctx, t, upserts); err != nil {
		return err
	}
	return failed.errWith(appliedOps, skippedOps)
}

// completeRows returns each item's row, with unchanged TOAST values the
// document needs read back from the table: the stream does not carry them,
// and indexing without them would index a placeholder. A nil row means the
// row no longer exists. The re-read values are charged to the budget
// (without waiting: see Budget); the caller releases the bytes returned once
// the batch is applied.
func (p *Pipeline) completeRows(ctx context.Context, t *Table, items []item) ([]connector.Row, int64, error) {
	rows := make([]connector.Row, len(items))
	var missing []connector.Key
	for i, it := range items {
		rows[i] = it.row
		if !it.remove && t.needsRow(it.unchanged) {
			missing = append(missing, it.key)
		}
	}
	if len(missing) == 0 {
		return rows, 0, nil
	}
	current, err := p.fetch(ctx, t.Info, missing)
	if err != nil {
		return nil, 0, fmt.Errorf("re-read %d rows of %s for values the stream did not carry (unchanged TOAST, generated columns): %w", len(missing), t.SourceTable, err)
	}
	var reread int64
	for _, r := range current {
		reread += r.Size()
	}
	p.budget.Charge(reread)
	for i, it := range items {
		if it.remove || !t.needsRow(it.unchanged) {
			continue
		}
		cur, ok := current[it.key.String()]
		if !ok {
			rows[i] = nil
			continue
		}
		row := maps.Clone(it.row)
		for _, c := range it.unchanged {
			row[c] = cur[c]
		}
		rows[i] = row
	}
	return rows, reread, nil
}

func (p *Pipeline) count(t *Table, ops []connector.Op, outcome string) {
	for _, op := range ops {
		p.metrics.Changes.WithLabelValues(t.SourceTable, op.String(), outcome).Inc()
	}
}
