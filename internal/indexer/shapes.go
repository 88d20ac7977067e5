package indexer

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/snapshot"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
)

// followShapes compares each mapping's template, metadata and chunking with
// what the last start recorded, and asks for an online backfill of every
// mapping whose shape changed: otherwise the rows that do not change keep
// their old rendering, and the collection mixes two templates for good.
// The request is recorded before the new shape, so a stop in between asks
// again at the next start rather than never.
func (e *Env) followShapes(ctx context.Context, cfg *config.Config, log zerolog.Logger) error {
	requests := snapshot.NewStore(e.Pool, cfg.Postgres.StateSchema, cfg.Postgres.Slot)
	for i, t := range e.Tables {
		m := cfg.Tables[i]
		now := state.MappingShape{Template: m.Template, Metadata: m.Metadata,
			MaxTokens: cfg.Chunking.MaxTokens, Overlap: cfg.Chunking.Overlap}
		old, ok, err := e.State.MappingShape(ctx, t.Collection, t.SourceTable)
		if err != nil {
			return err
		}
		if ok {
			changed, rewrite := state.ShapeChange(old, now)
			if !changed {
				continue
			}
			ref := snapshot.TableRef{Collection: t.Collection, SourceTable: t.SourceTable}
			if rewrite {
				err = requests.EnqueueRewrite(ctx, ref)
			} else {
				_, err = requests.Enqueue(ctx, ref)
			}
			if err != nil {
				return err
			}
			log.Info().Str("table", t.SourceTable).Str("collection", t.Collection).Bool("rewrite_all", rewrite).
				Msg("the mapping's template, metadata or chunking changed since the last start: re-indexing its rows online (rows whose document is unchanged are skipped unless the chunking changed)")
		}
		if err := e.State.SaveMappingShape(ctx, t.Collection, t.SourceTable, now); err != nil {
			return err
		}
	}
	return nil
}
