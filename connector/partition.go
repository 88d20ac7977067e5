package connector

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// A partitioned table is configured by its parent's name. With
// publish_via_partition_root its row changes arrive under that name, but
// attaching a partition that already holds rows, or detaching one, writes no
// row change to the WAL at all: the parent's rows change without a single
// change to stream. Leaves lets the running connector notice such a change of
// the partition set and backfill the parent.

// Partitioned returns those of tables that are partitioned (their rows live
// in partitions).
func Partitioned(ctx context.Context, db Querier, tables []TableName) ([]TableName, error) {
	var out []TableName
	for _, t := range tables {
		var kind string
		err := db.QueryRow(ctx, `SELECT c.relkind::text FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`, t.Schema, t.Name).Scan(&kind)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", t, err)
		}
		if kind == "p" {
			out = append(out, t)
		}
	}
	return out, nil
}

// Leaves returns the leaf partitions of a partitioned table, the tables
// that hold its rows, in name order; none for a table that is not
// partitioned or does not exist.
func Leaves(ctx context.Context, db Querier, t TableName) ([]TableName, error) {
	rows, err := db.Query(ctx, `
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class p
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
CROSS JOIN LATERAL pg_catalog.pg_partition_tree(p.oid) tree
JOIN pg_catalog.pg_class c ON c.oid = tree.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE pn.nspname = $1 AND p.relname = $2 AND p.relkind = 'p' AND tree.isleaf
ORDER BY 1, 2`, t.Schema, t.Name)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", t, err)
	}
	leaves, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableName, error) {
		var l TableName
		err := r.Scan(&l.Schema, &l.Name)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", t, err)
	}
	return leaves, nil
}
