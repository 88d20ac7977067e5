// Package state keeps the connector's own state in PostgreSQL, in the tables
// that package migrations creates in the state schema: the checkpoint of each
// slot and, for every indexed row, what Weaviate holds for it.
package state

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

// DB is what the store runs its statements on: a *pgxpool.Pool, a pgx.Tx or
// a *pgx.Conn.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store reads and writes the state tables of one schema. Each method is one
// statement, hence one round trip; it is safe for concurrent use when its DB
// is (a pool is, a transaction is not).
type Store struct {
	db  DB
	sql statements
}

// NewStore returns a store over pool for the tables in schema, which must
// have been migrated (migrations.Apply).
func NewStore(pool *pgxpool.Pool, schema string) *Store {
	return &Store{db: pool, sql: newStatements(connector.QuoteIdent(schema))}
}

// WithTx returns a store that runs its statements in tx, so a caller can make
// several writes (documents and checkpoint, say) atomic.
func (s *Store) WithTx(tx pgx.Tx) *Store {
	return &Store{db: tx, sql: s.sql}
}

// statements are built once per store: the schema is fixed, and identical
// texts let pgx reuse its prepared statements.
type statements struct {
	schema          string // quoted state schema
	loadCheckpoint  string
	saveCheckpoint  string
	beginRun        string
	markCleanStop   string
	lookupDocuments string
	saveDocuments   string
	deleteDocuments string
	applyDocuments  string
	deleteTable     string
}

// upsertDocuments inserts or replaces rows given as parallel arrays
// $first..$first+4 (keys, hashes, chunk counts, LSNs as text, tenants) for collection
// $1 and table $2. Text LSNs avoid depending on a pg_lsn codec.
func upsertDocuments(q string, first int) string {
	return fmt.Sprintf(`INSERT INTO %[1]s.documents AS d
    (collection, source_table, source_key, content_hash, chunk_count, source_lsn, tenant, updated_at)
SELECT $1, $2, u.source_key, u.content_hash, u.chunk_count, u.source_lsn::pg_lsn, NULLIF(u.tenant, ''), now()
FROM unnest($%[2]d::text[], $%[3]d::text[], $%[4]d::int4[], $%[5]d::text[], $%[6]d::text[])
    AS u(source_key, content_hash, chunk_count, source_lsn, tenant)
ON CONFLICT (collection, source_table, source_key) DO UPDATE SET
    content_hash = excluded.content_hash,
    chunk_count  = excluded.chunk_count,
    source_lsn   = excluded.source_lsn,
    tenant       = excluded.tenant,
    updated_at   = excluded.updated_at`, q, first, first+1, first+2, first+3, first+4)
}

// keyLookup: the lookups of many keys are written as one probe of the
// primary key per key (a LATERAL subquery the planner cannot flatten, for
// the OFFSET 0) rather than as "source_key = ANY($3)". Until a state table
// is first analyzed, the planner takes "collection = $1 AND source_table =
// $2" for a selective condition, when it matches every row of the table,
// and plans the ANY form as a scan of that whole index range with the keys
// as a filter: 44 ms for 250 keys at 200,000 rows, growing with the table,
// against 1.5 ms for the probes. A state table grows fastest exactly when
// it is new (the first snapshot), before autovacuum has analyzed it.
func newStatements(q string) statements {
	return statements{
		schema:         q,
		loadCheckpoint: `SELECT confirmed_lsn::text FROM ` + q + `.checkpoint WHERE slot = $1`,
		// GREATEST: a late or replayed save never moves the checkpoint back.
		saveCheckpoint: `INSERT INTO ` + q + `.checkpoint AS c (slot, confirmed_lsn, updated_at)
VALUES ($1, $2::text::pg_lsn, now())
ON CONFLICT (slot) DO UPDATE SET
    confirmed_lsn = GREATEST(c.confirmed_lsn, excluded.confirmed_lsn),
    updated_at    = excluded.updated_at`,
		// The old value, read under the row lock the update takes.
		beginRun: `UPDATE ` + q + `.checkpoint c SET clean_stop = false
FROM (SELECT slot, clean_stop FROM ` + q + `.checkpoint WHERE slot = $1 FOR UPDATE) old
WHERE c.slot = old.slot
RETURNING old.clean_stop`,
		markCleanStop: `UPDATE ` + q + `.checkpoint SET clean_stop = true WHERE slot = $1`,
		// One primary-key probe per key (keyLookup).
		lookupDocuments: `SELECT d.source_key, d.content_hash, d.chunk_count, d.source_lsn::text, coalesce(d.tenant, '')
FROM unnest($3::text[]) AS k(source_key)
CROSS JOIN LATERAL (
    SELECT * FROM ` + q + `.documents d
    WHERE d.collection = $1 AND d.source_table = $2 AND d.source_key = k.source_key
    OFFSET 0
) d`,
		saveDocuments: upsertDocuments(q, 3),
		deleteDocuments: `DELETE FROM ` + q + `.documents
WHERE collection = $1 AND source_table = $2 AND source_key = ANY($3::text[])`,
		// Both in one statement: one round trip, one atomic effect. The
		// keys of $3 and $4 are disjoint (ApplyDocuments sees to it), so the
		// two parts never touch the same row.
		applyDocuments: `WITH deleted AS (
    DELETE FROM ` + q + `.documents
    WHERE collection = $1 AND source_table = $2 AND source_key = ANY($3::text[])
)
` + upsertDocuments(q, 4),
		deleteTable: `DELETE FROM ` + q + `.documents WHERE collection = $1 AND source_table = $2`,
	}
}
