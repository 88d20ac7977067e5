package connector

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// SelectColumns is the select list of every column of the table, in column
// order. Run the query with TextResult among its arguments so that each
// value arrives in its PostgreSQL text form, exactly as the replication
// stream sends it (both come from the type's output function; a ::text cast
// would differ, e.g. it trims the padding of character(n)), then decode each
// row's RawValues with TypeMap.DecodeRow.
func SelectColumns(info *TableInfo) string {
	parts := make([]string, len(info.Columns))
	for i, c := range info.Columns {
		parts[i] = QuoteIdent(c.Name)
	}
	return strings.Join(parts, ", ")
}

// TextResult, passed as the first query argument, makes pgx return every
// result column in text format.
var TextResult = pgx.QueryResultFormats{pgx.TextFormatCode}

// DecodeRow decodes a row read with SelectColumns (raw text values in
// column order, nil for NULL) into the Row and Key a stream Change would
// carry.
func (tm *TypeMap) DecodeRow(info *TableInfo, raw [][]byte) (Row, Key, error) {
	if len(raw) != len(info.Columns) {
		return nil, nil, fmt.Errorf("table %s: got %d values for %d columns", info.Name, len(raw), len(info.Columns))
	}
	row := make(Row, len(raw))
	for i, c := range info.Columns {
		if raw[i] == nil {
			row[c.Name] = tm.Null(c.OID)
		} else {
			row[c.Name] = tm.Decode(c.OID, raw[i])
		}
	}
	key := make(Key, len(info.Key))
	for i, k := range info.Key {
		v, ok := row[k]
		if !ok || v.Null {
			return nil, nil, fmt.Errorf("table %s: no value for primary key column %q", info.Name, k)
		}
		key[i] = v.Text
	}
	return row, key, nil
}

// FetchRows re-reads the current rows with the given primary keys in one
// query, keyed by Key.String(). Values have the same shape as the stream's.
// A key with no row (deleted since) is absent from the map. It is what fills
// unchanged TOASTed columns when the replica identity is not FULL.
//
// db may be a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
func FetchRows(ctx context.Context, db Querier, info TableInfo, keys []Key) (map[string]Row, error) {
	out := make(map[string]Row, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	if len(info.Key) == 0 {
		return nil, fmt.Errorf("table %s: %w", info.Name, ErrNoPrimaryKey)
	}
	uniq := make([]Key, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, key := range keys {
		if len(key) != len(info.Key) {
			return nil, fmt.Errorf("table %s: key %s has %d columns, want %d", info.Name, key, len(key), len(info.Key))
		}
		if s := key.String(); !seen[s] {
			seen[s] = true
			uniq = append(uniq, key)
		}
	}
	// One text array per key column; each element is cast to the column's
	// type so the primary key index can be used.
	args := make([]any, len(info.Key)+1)
	args[0] = TextResult
	cols := make([]string, len(info.Key))
	casts := make([]string, len(info.Key))
	params := make([]string, len(info.Key))
	for i, k := range info.Key {
		c, ok := info.Column(k)
		if !ok {
			return nil, fmt.Errorf("table %s: primary key column %q not among its columns", info.Name, k)
		}
		vals := make([]string, len(uniq))
		for j, key := range uniq {
			vals[j] = key[i]
		}
		args[i+1] = vals
		cols[i] = QuoteIdent(k)
		u := "k" + strconv.Itoa(i)
		casts[i] = "u." + u + "::" + c.TypeName
		params[i] = "$" + strconv.Itoa(i+1) + "::text[]"
	}
	names := make([]string, len(info.Key))
	for i := range names {
		names[i] = "k" + strconv.Itoa(i)
	}
	sql := "SELECT " + SelectColumns(&info) + " FROM " + info.Name.String() +
		" WHERE (" + strings.Join(cols, ", ") + ") IN (SELECT " + strings.Join(casts, ", ") +
		" FROM unnest(" + strings.Join(params, ", ") + ") AS u(" + strings.Join(names, ", ") + "))"

	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("fetch rows of %s: %w", info.Name, err)
	}
	defer rows.Close()
	tm := NewTypeMap([]TableInfo{info})
	for rows.Next() {
		row, key, err := tm.DecodeRow(&info, rows.RawValues())
		if err != nil {
			return nil, err
		}
		out[key.String()] = row
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fetch rows of %s: %w", info.Name, err)
	}
	return out, nil
}
