package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

// PartitionSet is the recorded leaf partitions of a partitioned table, by
// qualified name; ok is false when none is recorded yet.
func (s *Store) PartitionSet(ctx context.Context, sourceTable string) (leaves []string, ok bool, err error) {
	err = s.db.QueryRow(ctx, `SELECT leaves FROM `+s.q+`.partition_sets WHERE source_table = $1`, sourceTable).Scan(&leaves)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("recorded partitions of %s: %w", sourceTable, err)
	}
	return leaves, true, nil
}

// RecordPartitionSet records the leaf partitions of a partitioned table.
func (s *Store) RecordPartitionSet(ctx context.Context, sourceTable string, leaves []string) error {
	if leaves == nil {
		leaves = []string{}
	}
	_, err := s.db.Exec(ctx, `INSERT INTO `+s.q+`.partition_sets (source_table, leaves) VALUES ($1, $2)
ON CONFLICT (source_table) DO UPDATE SET leaves = EXCLUDED.leaves, seen_at = now()`, sourceTable, leaves)
	if err != nil {
		return fmt.Errorf("record partitions of %s: %w", sourceTable, err)
	}
	return nil
}

// LeafNames are leaves as the qualified names a partition set records.
func LeafNames(leaves []connector.TableName) []string {
	out := make([]string, len(leaves))
	for i, l := range leaves {
		out[i] = l.String()
	}
	slices.Sort(out)
	return out
}

// PartitionChange is how a table's leaf partitions differ from the recorded
// ones.
type PartitionChange struct {
	Attached, Detached []string
}

// Changed reports whether any partition came or went.
func (c PartitionChange) Changed() bool { return len(c.Attached)+len(c.Detached) > 0 }

// ComparePartitions compares the current leaves with the recorded ones;
// both sorted.
func ComparePartitions(recorded, current []string) PartitionChange {
	var c PartitionChange
	for _, l := range current {
		if _, found := slices.BinarySearch(recorded, l); !found {
			c.Attached = append(c.Attached, l)
		}
	}
	for _, l := range recorded {
		if _, found := slices.BinarySearch(current, l); !found {
			c.Detached = append(c.Detached, l)
		}
	}
	return c
}
