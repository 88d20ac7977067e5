package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/jackc/pglogrepl"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
)

// Redrive indexes the current version of dead-lettered rows again (after
// `cdc-indexer deadletters retry`): each row is re-read by key on the worker
// that owns it, on the snapshot lane, as if read at position at (the
// server's WAL position when the retry started, so that a change the stream
// applies after it is never overwritten). A row that fails again is
// dead-lettered again; one indexed is cleared from the dead letters. Rows of
// tables not configured here are left alone. It returns once every row was
// handled.
func (p *Pipeline) Redrive(ctx context.Context, letters []state.DeadLetter, at pglogrepl.LSN) error {
	var wg sync.WaitGroup
	for _, d := range letters {
		t := p.tableFor(d.Collection, d.SourceTable)
		if t == nil {
			continue
		}
		key, err := ParseSourceKey(t.Info, d.SourceKey)
		if err != nil {
			p.log.Warn().Err(err).Str("table", d.SourceTable).Str("key", d.SourceKey).Msg("dead letter with an unreadable key")
			continue
		}
		all := make([]string, len(t.Info.Columns))
		for i, c := range t.Info.Columns {
			all[i] = c.Name
		}
		wg.Add(1)
		it := item{table: t, op: opSnapshot, key: key, row: connector.Row{}, unchanged: all, lsn: Position{LSN: at}, backfill: &wg}
		select {
		case p.backfillQueues[p.route(t, key)] <- it:
		case <-ctx.Done():
			wg.Done()
			return ctx.Err()
		case <-p.stopped:
			wg.Done()
			return p.stopErr()
		}
	}
	return p.awaitRows(ctx, &wg)
}

func (p *Pipeline) tableFor(collection, sourceTable string) *Table {
	for _, mappings := range *p.tables.Load() {
		for _, t := range mappings {
			if t.Collection == collection && t.SourceTable == sourceTable {
				return t
			}
		}
	}
	return nil
}

// ParseSourceKey turns a contract source_key back into the key columns'
// text forms: the text itself for a one-column key, a JSON array otherwise.
func ParseSourceKey(info connector.TableInfo, sourceKey string) (connector.Key, error) {
	if len(info.Key) == 1 {
		return connector.Key{sourceKey}, nil
	}
	var parts []string
	if err := json.Unmarshal([]byte(sourceKey), &parts); err != nil {
		return nil, fmt.Errorf("source_key %q of %s: %w", sourceKey, info.Name, err)
	}
	if len(parts) != len(info.Key) {
		return nil, fmt.Errorf("source_key %q of %s: %d parts for a %d-column key", sourceKey, info.Name, len(parts), len(info.Key))
	}
	return connector.Key(parts), nil
}
