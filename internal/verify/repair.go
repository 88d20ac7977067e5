package verify

import (
	"context"
	"fmt"
	"sort"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
)

// Repaired is what a repair changed in one mapping.
type Repaired struct {
	Table      string `json:"table"`
	Collection string `json:"collection"`
	Deleted    int    `json:"objects_deleted"` // extra and duplicate objects
	Reindexed  int    `json:"rows_reindexed"`  // missing and stale rows sent through the pipeline again
}

// Repair mends what report found: extra and duplicate objects are deleted
// (each only while it is still the version verify read, so a connector
// rewriting it meanwhile wins), and missing and stale rows are re-indexed
// through the pipeline: their recorded state is forgotten (so the no-op
// skip cannot keep them as they are) and those rows, and only those, are
// backfilled, by the running connector when one streams the slot (its
// backfill lane, behind live changes), else by this process.
//
// A repair that stops part-way is resumed by running it again: the
// deletions are idempotent, a backfill request stays with the running
// connector until it is done, and a row whose state was forgotten but not
// yet re-indexed shows in the next verify (as a state difference) and is
// re-indexed by the next repair.
//
// backfill re-indexes the given rows of one mapping (`snapshot` of those
// keys: online when a connector streams the slot).
func Repair(ctx context.Context, d Deps, st *state.Store, report *Report, backfill func(ctx context.Context, mapping config.Table, keys []string) error) ([]Repaired, error) {
	var out []Repaired
	for _, m := range report.Mappings {
		r := Repaired{Table: m.Table, Collection: m.Collection}
		deletes := map[[2]string][]string{} // (tenant, source_lsn) -> ids
		rows := map[string]bool{}
		for _, f := range m.Findings {
			switch f.Kind {
			case Extra, Duplicate:
				k := [2]string{f.Tenant, f.lsn}
				deletes[k] = append(deletes[k], f.ID)
				r.Deleted++
			case Missing, Stale, StateMismatch:
				rows[f.Key] = true
			}
		}
		for k, ids := range deletes {
			if err := d.Sink.DeleteObjectsAt(ctx, m.version(), k[0], k[1], ids); err != nil {
				return out, fmt.Errorf("%s -> %s: %w", m.Table, m.Collection, err)
			}
		}
		if len(rows) > 0 {
			keys := make([]string, 0, len(rows))
			for k := range rows {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if err := st.DeleteDocuments(ctx, m.version(), m.Table, keys); err != nil {
				return out, err
			}
			r.Reindexed = len(keys)
			if err := backfill(ctx, config.Table{Table: m.Table, Collection: m.Collection}, keys); err != nil {
				return out, fmt.Errorf("%s -> %s: re-index %d missing and stale rows: %w", m.Table, m.Collection, len(keys), err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}
