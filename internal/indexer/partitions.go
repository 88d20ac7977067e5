package indexer

import (
	"context"
	"time"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/snapshot"
)

// partitionPoll is how often the running connector compares the partitions
// of its partitioned tables with the recorded ones.
var partitionPoll = 5 * time.Second

// partitionWatch notices partitions attached to or detached from the
// configured partitioned tables. Neither writes a row change to the WAL,
// yet each changes the parent's rows: the watch backfills every mapping of
// the parent then, and the backfill (a fresh snapshot, behind the live
// changes) indexes the attached rows and removes the detached ones. A
// change made while the connector was stopped is found at the next start,
// against the set the last snapshot or watch recorded.
type partitionWatch struct {
	tables []connector.TableName // the partitioned ones among the configured
	next   time.Time
}

// newPartitionWatch finds the configured tables that are partitioned.
func (b *backfiller) newPartitionWatch(ctx context.Context) *partitionWatch {
	seen := map[connector.TableName]bool{}
	var names []connector.TableName
	for _, t := range b.pipe.Tables() {
		if !seen[t.Info.Name] {
			seen[t.Info.Name] = true
			names = append(names, t.Info.Name)
		}
	}
	parts, err := connector.Partitioned(ctx, b.env.Pool, names)
	if err != nil {
		b.log.Warn().Err(err).Msg("finding partitioned tables; partitions attached or detached while streaming are not followed")
	}
	return &partitionWatch{tables: parts}
}

// checkPartitions compares, when due, each partitioned table's leaves with the
// recorded ones and asks for a backfill of every mapping of a table whose
// leaves changed, before recording the new set (a crash in between asks
// again, which is harmless).
func (b *backfiller) checkPartitions(ctx context.Context, w *partitionWatch) {
	if len(w.tables) == 0 || time.Now().Before(w.next) {
		return
	}
	w.next = time.Now().Add(partitionPoll)
	for _, name := range w.tables {
		leaves, err := connector.Leaves(ctx, b.env.Pool, name)
		if err != nil {
			b.log.Warn().Err(err).Msg("reading partitions")
			continue
		}
		current := snapshot.LeafNames(leaves)
		recorded, ok, err := b.store.PartitionSet(ctx, name.String())
		if err != nil {
			b.log.Warn().Err(err).Msg("reading partitions")
			continue
		}
		change := snapshot.ComparePartitions(recorded, current)
		if ok && !change.Changed() {
			continue
		}
		if ok {
			for _, t := range b.pipe.Tables() {
				if t.Info.Name != name {
					continue
				}
				if _, err := b.store.Enqueue(ctx, snapshot.TableRef{Collection: t.Collection, SourceTable: t.SourceTable}); err != nil {
					b.log.Warn().Err(err).Msg("asking for the backfill of a table whose partitions changed")
					return
				}
			}
			b.log.Info().Stringer("table", name).Strs("attached", change.Attached).Strs("detached", change.Detached).
				Msg("partitions attached or detached (no row changes in the WAL): backfilling the table")
		}
		if err := b.store.RecordPartitionSet(ctx, name.String(), current); err != nil {
			b.log.Warn().Err(err).Msg("recording partitions")
		}
	}
}
