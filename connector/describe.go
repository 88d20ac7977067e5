package connector

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what the connector needs of a normal (non-replication)
// connection. *pgx.Conn, *pgxpool.Pool, *pgxpool.Conn and pgx.Tx satisfy it.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const describeTableSQL = `
SELECT c.oid, c.relreplident::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`

// The base type of a domain is found by following typbasetype until a type
// that is not a domain (a domain may be over another domain).
const describeColumnsSQL = `
WITH RECURSIVE cols AS (
	SELECT a.attnum, a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod) AS typname, a.attnotnull,
		a.attgenerated <> '' AS generated
	FROM pg_catalog.pg_attribute a
	WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
), chain AS (
	SELECT attnum, atttypid AS typid, 0 AS depth FROM cols
	UNION ALL
	SELECT ch.attnum, t.typbasetype, ch.depth + 1
	FROM chain ch JOIN pg_catalog.pg_type t ON t.oid = ch.typid
	WHERE t.typtype = 'd' AND ch.depth < 100
)
SELECT c.attname, c.atttypid, b.oid, c.typname, b.typcategory::text,
	CASE WHEN b.typcategory = 'A' AND b.typlen = -1 THEN b.typelem ELSE 0 END,
	c.attnotnull, c.generated
FROM cols c
JOIN LATERAL (
	SELECT t.oid, t.typcategory, t.typlen, t.typelem
	FROM chain ch JOIN pg_catalog.pg_type t ON t.oid = ch.typid
	WHERE ch.attnum = c.attnum AND t.typtype <> 'd'
	ORDER BY ch.depth LIMIT 1
) b ON true
ORDER BY c.attnum`

const describeKeySQL = `
SELECT a.attname
FROM pg_catalog.pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisprimary
ORDER BY k.ord`

// ErrNoPrimaryKey is wrapped by DescribeTables' error for a table without a
// primary key.
var ErrNoPrimaryKey = errors.New("no primary key")

// ErrTableNotFound is wrapped by DescribeTables' error for a missing table.
var ErrTableNotFound = errors.New("does not exist")

// DescribeTables reads the catalog description of each table: its columns in
// attnum order, its primary key in key order and its replica identity. A
// missing table or one without a primary key is an error naming the table.
func DescribeTables(ctx context.Context, db Querier, tables []TableName) ([]TableInfo, error) {
	infos := make([]TableInfo, 0, len(tables))
	for _, t := range tables {
		info, err := describeTable(ctx, db, t)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

func describeTable(ctx context.Context, db Querier, t TableName) (TableInfo, error) {
	info := TableInfo{Name: t}
	var relid uint32
	var replident string
	err := db.QueryRow(ctx, describeTableSQL, t.Schema, t.Name).Scan(&relid, &replident)
	if errors.Is(err, pgx.ErrNoRows) {
		return info, fmt.Errorf("table %s %w", t, ErrTableNotFound)
	}
	if err != nil {
		return info, fmt.Errorf("describe table %s: %w", t, err)
	}
	info.OID = relid
	if replident != "" {
		info.ReplicaIdentity = replident[0]
	}

	rows, err := db.Query(ctx, describeColumnsSQL, relid)
	if err != nil {
		return info, fmt.Errorf("describe columns of %s: %w", t, err)
	}
	for rows.Next() {
		var c Column
		var category string
		if err := rows.Scan(&c.Name, &c.OID, &c.BaseOID, &c.TypeName, &category, &c.ElemOID, &c.NotNull, &c.Generated); err != nil {
			rows.Close()
			return info, fmt.Errorf("describe columns of %s: %w", t, err)
		}
		if category != "" {
			c.Category = category[0]
		}
		info.Columns = append(info.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return info, fmt.Errorf("describe columns of %s: %w", t, err)
	}

	rows, err = db.Query(ctx, describeKeySQL, relid)
	if err != nil {
		return info, fmt.Errorf("describe primary key of %s: %w", t, err)
	}
	info.Key, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return info, fmt.Errorf("describe primary key of %s: %w", t, err)
	}
	if len(info.Key) == 0 {
		return info, fmt.Errorf("table %s has %w: cdc-indexer needs a primary key to identify its rows", t, ErrNoPrimaryKey)
	}
	return info, nil
}
