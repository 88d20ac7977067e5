package snapshot

import (
	"context"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
)

// keysChunk is how many rows one keyed read fetches and hands over.
const keysChunk = 500

// runKeys backfills only the rows of t with the given source keys (a repair
// of the rows `verify` found missing or stale, not of the whole table). The
// rows are read in the snapshot like a table's; a key without a row in it
// is handed over as gone, and leaves the index unless a later change wrote
// it. Nothing is recorded in the snapshot's progress: a keyed backfill is
// small, and its request, which the store keeps until it is done, is what
// makes it resumable.
func runKeys(ctx context.Context, cfg Config, r *reader, t *pipeline.Table, at pglogrepl.LSN, keys []string) (Result, error) {
	res := Result{Table: t, At: at}
	name := t.SourceTable
	cfg.Progress.Start(name, int64(len(keys)), 0)
	for start := 0; start < len(keys); start += keysChunk {
		part := keys[start:min(start+keysChunk, len(keys))]
		parsed := make([]connector.Key, len(part))
		for i, k := range part {
			key, err := pipeline.ParseSourceKey(t.Info, k)
			if err != nil {
				return res, fmt.Errorf("key %s: %w", k, err)
			}
			parsed[i] = key
		}
		found, err := connector.FetchRows(ctx, r.tx, t.Info, parsed)
		if err != nil {
			return res, err
		}
		rows := make([]pipeline.BackfillRow, len(parsed))
		for i, key := range parsed {
			row, ok := found[key.String()]
			rows[i] = pipeline.BackfillRow{Key: key, Row: row, Gone: !ok}
		}
		if err := cfg.Apply.Backfill(ctx, t, rows, at); err != nil {
			return res, err
		}
		res.RowsRead += int64(len(rows))
		cfg.Progress.Add(name, len(rows))
	}
	cfg.Progress.Finish(name)
	cfg.Log.Info().Str("table", t.SourceTable).Str("collection", t.Collection).Int("keys", len(keys)).
		Stringer("snapshot_lsn", at).Msg("backfilled the requested rows")
	return res, nil
}
