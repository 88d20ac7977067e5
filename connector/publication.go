package connector

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PublicationComment marks a publication the connector created.
const PublicationComment = "created by cdc-indexer"

// EnsurePublication makes sure the publication exists and publishes every
// given table. A missing publication is created for exactly these tables;
// an existing one gets the missing tables added and keeps whatever else it
// publishes. A publication FOR ALL TABLES is left alone.
//
// Publications are created WITH (publish_via_partition_root = true): a
// partitioned table is configured by its parent's name, and without that
// option pgoutput reports its changes under the names of the leaf
// partitions. An existing publication without the option is refused when it
// would carry a configured partitioned table: its changes would not match
// the configuration, and switching the option now would not help the WAL
// already written under the old setting (pgoutput reads the publication as
// it was when each change was written).
func EnsurePublication(ctx context.Context, db Querier, name string, tables []TableName) error {
	if name == "" {
		return fmt.Errorf("publication name is empty")
	}
	if len(tables) == 0 {
		return fmt.Errorf("publication %s: no tables", QuoteIdent(name))
	}
	var allTables, viaRoot bool
	const read = `SELECT puballtables, pubviaroot FROM pg_catalog.pg_publication WHERE pubname = $1`
	err := db.QueryRow(ctx, read, name).Scan(&allTables, &viaRoot)
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = db.Exec(ctx, "CREATE PUBLICATION "+QuoteIdent(name)+" FOR TABLE "+tableList(tables)+" WITH (publish_via_partition_root = true)")
		if err == nil {
			// Marked, so that teardown drops only a publication the
			// connector created, never one an operator made.
			if _, err := db.Exec(ctx, "COMMENT ON PUBLICATION "+QuoteIdent(name)+" IS '"+PublicationComment+"'"); err != nil {
				return fmt.Errorf("mark publication %s as the connector's: %w", QuoteIdent(name), err)
			}
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42710" { // duplicate_object: created concurrently
			return fmt.Errorf("create publication %s: %w", QuoteIdent(name), err)
		}
		err = db.QueryRow(ctx, read, name).Scan(&allTables, &viaRoot)
	}
	if err != nil {
		return fmt.Errorf("publication %s: %w", QuoteIdent(name), err)
	}
	if !viaRoot {
		parts, err := Partitioned(ctx, db, tables)
		if err != nil {
			return err
		}
		if len(parts) > 0 {
			return fmt.Errorf("publication %s publishes partitioned table %s under its partitions' names (publish_via_partition_root is off), so its changes would be missed: stop writing to it, let the connector catch up, then run ALTER PUBLICATION %s SET (publish_via_partition_root = true); or give postgres.publication the name of a new publication and re-snapshot",
				QuoteIdent(name), parts[0], QuoteIdent(name))
		}
	}
	if allTables {
		return nil
	}

	missing, err := unpublished(ctx, db, name, tables)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := db.Exec(ctx, "ALTER PUBLICATION "+QuoteIdent(name)+" ADD TABLE "+tableList(missing)); err != nil {
		return fmt.Errorf("add tables to publication %s: %w", QuoteIdent(name), err)
	}
	return nil
}

// PublishedTables returns the tables the publication publishes by name. It
// reads the publication's own members (pg_publication_rel) besides
// pg_publication_tables: the latter lists a partitioned member's leaf
// partitions instead of itself when publish_via_partition_root is off, and
// adding the parent again would fail.
func PublishedTables(ctx context.Context, db Querier, name string) (map[TableName]bool, error) {
	rows, err := db.Query(ctx, `
SELECT n.nspname, c.relname FROM pg_catalog.pg_publication_rel pr
JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE p.pubname = $1
UNION
SELECT schemaname, tablename FROM pg_catalog.pg_publication_tables WHERE pubname = $1`, name)
	if err != nil {
		return nil, fmt.Errorf("publication %s tables: %w", QuoteIdent(name), err)
	}
	have := map[TableName]bool{}
	var t TableName
	_, err = pgx.ForEachRow(rows, []any{&t.Schema, &t.Name}, func() error {
		have[t] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("publication %s tables: %w", QuoteIdent(name), err)
	}
	return have, nil
}

// unpublished returns the tables the publication does not publish yet.
func unpublished(ctx context.Context, db Querier, name string, tables []TableName) ([]TableName, error) {
	have, err := PublishedTables(ctx, db, name)
	if err != nil {
		return nil, err
	}
	var missing []TableName
	seen := map[TableName]bool{}
	for _, t := range tables {
		if !have[t] && !seen[t] {
			missing = append(missing, t)
			seen[t] = true
		}
	}
	return missing, nil
}

func tableList(tables []TableName) string {
	seen := map[TableName]bool{}
	parts := make([]string, 0, len(tables))
	for _, t := range tables {
		if !seen[t] {
			parts = append(parts, t.String())
			seen[t] = true
		}
	}
	return strings.Join(parts, ", ")
}
