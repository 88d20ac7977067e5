package connector

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// EnsurePublication makes sure the publication exists and publishes every
// given table. A missing publication is created for exactly these tables;
// an existing one gets the missing tables added and keeps whatever else it
// publishes. A publication FOR ALL TABLES is left alone.
func EnsurePublication(ctx context.Context, db Querier, name string, tables []TableName) error {
	if name == "" {
		return fmt.Errorf("publication name is empty")
	}
	if len(tables) == 0 {
		return fmt.Errorf("publication %s: no tables", QuoteIdent(name))
	}
	var allTables bool
	err := db.QueryRow(ctx, `SELECT puballtables FROM pg_catalog.pg_publication WHERE pubname = $1`, name).Scan(&allTables)
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = db.Exec(ctx, "CREATE PUBLICATION "+QuoteIdent(name)+" FOR TABLE "+tableList(tables))
		if err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42710" { // duplicate_object: created concurrently
			return fmt.Errorf("create publication %s: %w", QuoteIdent(name), err)
		}
		err = db.QueryRow(ctx, `SELECT puballtables FROM pg_catalog.pg_publication WHERE pubname = $1`, name).Scan(&allTables)
	}
	if err != nil {
		return fmt.Errorf("publication %s: %w", QuoteIdent(name), err)
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

// unpublished returns the tables the publication does not publish yet.
func unpublished(ctx context.Context, db Querier, name string, tables []TableName) ([]TableName, error) {
	rows, err := db.Query(ctx, `
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
