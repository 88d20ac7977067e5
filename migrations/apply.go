package migrations

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

// unlockTimeout bounds the unlock after ctx has been cancelled; if the
// connection is gone the server has released the lock anyway.
const unlockTimeout = 5 * time.Second

// DB is what Apply runs on: a *pgx.Conn, a *pgxpool.Conn or a
// *pgxpool.Pool (of which Apply holds one connection for the whole run).
type DB interface {
	Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error)
}

// Apply brings the state schema up to date: it creates the schema, then,
// holding an advisory lock so that concurrent callers (two connectors
// starting at once) wait for each other, applies every migration not yet
// recorded in <schema>.schema_migrations, each in its own transaction. It is
// idempotent.
func Apply(ctx context.Context, db DB, schema string) error {
	all, err := All()
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	// The lock is a session lock: everything must run on one connection.
	switch db := db.(type) {
	case *pgx.Conn:
		return apply(ctx, db, schema, all)
	case *pgxpool.Conn:
		return apply(ctx, db.Conn(), schema, all)
	case *pgxpool.Pool:
		c, err := db.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("migrations: acquire connection: %w", err)
		}
		defer c.Release()
		return apply(ctx, c.Conn(), schema, all)
	}
	return fmt.Errorf("migrations: cannot apply on a %T: want *pgx.Conn, *pgxpool.Conn or *pgxpool.Pool", db)
}

func apply(ctx context.Context, conn *pgx.Conn, schema string, all []Migration) (err error) {
	if schema == "" {
		return errors.New("migrations: empty schema name")
	}
	q := connector.QuoteIdent(schema)
	key := LockKey(schema)

	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return fmt.Errorf("migrations: lock schema %s: %w", q, err)
	}
	defer func() {
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		if _, uerr := conn.Exec(unlockCtx, "SELECT pg_advisory_unlock($1)", key); uerr != nil && err == nil {
			err = fmt.Errorf("migrations: unlock schema %s: %w", q, uerr)
		}
	}()

	// Under the lock, so concurrent callers cannot race into a unique
	// violation on the catalog.
	if err := createSchema(ctx, conn, schema, q); err != nil {
		return err
	}

	applied, err := appliedVersions(ctx, conn, q)
	if err != nil {
		return err
	}
	for _, m := range all {
		if applied[m.Version] {
			continue
		}
		if err := applyOne(ctx, conn, q, schema, m); err != nil {
			return err
		}
	}
	return nil
}

// LockKey is the advisory lock key that serialises migrations of schema:
// fixed for a schema, distinct (with overwhelming probability) between
// schemas, so connectors with different state schemas do not wait for each
// other.
func LockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("cdc-indexer migrations\x00" + schema))
	return int64(h.Sum64())
}

func createSchema(ctx context.Context, conn *pgx.Conn, schema, q string) error {
	// CREATE ... IF NOT EXISTS needs the CREATE privilege even when the
	// object exists; a connector whose state schema an administrator set up
	// for it must not need that privilege, so look first.
	var schemaExists, tableExists bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
       to_regclass($2) IS NOT NULL`, schema, q+".schema_migrations").Scan(&schemaExists, &tableExists)
	if err != nil {
		return fmt.Errorf("migrations: look up schema %s: %w", q, err)
	}
	if !schemaExists {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA "+q); err != nil {
			return fmt.Errorf("migrations: create schema %s: %w", q, err)
		}
	}
	if !tableExists {
		_, err := conn.Exec(ctx, `CREATE TABLE `+q+`.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`)
		if err != nil {
			return fmt.Errorf("migrations: create %s.schema_migrations: %w", q, err)
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, conn *pgx.Conn, q string) (map[int]bool, error) {
	rows, err := conn.Query(ctx, "SELECT version FROM "+q+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("migrations: read %s.schema_migrations: %w", q, err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("migrations: read %s.schema_migrations: %w", q, err)
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[int(v)] = true
	}
	return applied, nil
}

func applyOne(ctx context.Context, conn *pgx.Conn, q, schema string, m Migration) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Without arguments pgx uses the simple protocol, which runs a
		// file of several statements in one call.
		if _, err := tx.Exec(ctx, m.SQL(schema)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO "+q+".schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrations: apply %04d_%s to schema %s: %w", m.Version, m.Name, q, err)
	}
	return nil
}
