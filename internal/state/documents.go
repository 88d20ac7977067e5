package state

import (
	"context"
	"fmt"
	"math"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// DocState is what Weaviate holds for one source row: the hash of its
// rendered document (so an unchanged row is skipped, also after a restart),
// how many chunks it has (so chunks past a new, smaller count are removed)
// and the LSN of the change that wrote it.
type DocState struct {
	SourceKey   string
	ContentHash string
	ChunkCount  int
	LSN         pglogrepl.LSN
	// Tenant is the Weaviate tenant holding the row's objects ("" for a
	// collection without tenants).
	Tenant string
}

// LookupDocuments returns the stored state of the given keys of a table in a
// collection, keyed by source key; keys never written are absent.
func (s *Store) LookupDocuments(ctx context.Context, collection, sourceTable string, keys []string) (map[string]DocState, error) {
	out := make(map[string]DocState, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := s.db.Query(ctx, s.sql.lookupDocuments, collection, sourceTable, keys)
	if err != nil {
		return nil, fmt.Errorf("look up documents of %s in %s: %w", sourceTable, collection, err)
	}
	var (
		d      DocState
		chunks int32
		lsn    string
	)
	_, err = pgx.ForEachRow(rows, []any{&d.SourceKey, &d.ContentHash, &chunks, &lsn, &d.Tenant}, func() error {
		parsed, err := pglogrepl.ParseLSN(lsn)
		if err != nil {
			return err
		}
		d.ChunkCount, d.LSN = int(chunks), parsed
		out[d.SourceKey] = d
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up documents of %s in %s: %w", sourceTable, collection, err)
	}
	return out, nil
}

// SaveDocuments inserts or replaces the state of docs in one statement. When
// a key occurs more than once the last occurrence wins, as if the saves had
// been made in order.
func (s *Store) SaveDocuments(ctx context.Context, collection, sourceTable string, docs []DocState) error {
	return s.ApplyDocuments(ctx, collection, sourceTable, docs, nil)
}

// DeleteDocuments forgets the given keys.
func (s *Store) DeleteDocuments(ctx context.Context, collection, sourceTable string, keys []string) error {
	return s.ApplyDocuments(ctx, collection, sourceTable, nil, keys)
}

// ApplyDocuments records one flush of a table in a collection in a single
// statement: the upserts are saved and the deletes forgotten, atomically. A
// key in both lists ends up saved (the deletion is taken as earlier); a
// caller whose deletion came last must leave the key out of upserts. Upserts
// sharing a key keep the last.
func (s *Store) ApplyDocuments(ctx context.Context, collection, sourceTable string, upserts []DocState, deletes []string) error {
	cols, err := columns(upserts)
	if err != nil {
		return fmt.Errorf("save documents of %s in %s: %w", sourceTable, collection, err)
	}
	deletes = without(deletes, cols.saved)

	var sql string
	var args []any
	switch {
	case len(cols.keys) == 0 && len(deletes) == 0:
		return nil
	case len(cols.keys) == 0:
		sql, args = s.sql.deleteDocuments, []any{collection, sourceTable, deletes}
	case len(deletes) == 0:
		sql, args = s.sql.saveDocuments, []any{collection, sourceTable, cols.keys, cols.hashes, cols.chunks, cols.lsns, cols.tenants}
	default:
		sql, args = s.sql.applyDocuments, []any{collection, sourceTable, deletes, cols.keys, cols.hashes, cols.chunks, cols.lsns, cols.tenants}
	}
	if _, err := s.db.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("write documents of %s in %s: %w", sourceTable, collection, err)
	}
	return nil
}

// DeleteTable forgets every row of a table in a collection (a TRUNCATE).
func (s *Store) DeleteTable(ctx context.Context, collection, sourceTable string) error {
	if _, err := s.db.Exec(ctx, s.sql.deleteTable, collection, sourceTable); err != nil {
		return fmt.Errorf("delete documents of %s in %s: %w", sourceTable, collection, err)
	}
	return nil
}

// docColumns are upserts as the parallel arrays the statement unnests.
type docColumns struct {
	keys, hashes, lsns, tenants []string
	chunks                      []int32
	saved                       map[string]bool
}

// columns turns docs into arrays, one entry per key with the last
// occurrence's values: one INSERT ... ON CONFLICT cannot update a row twice.
func columns(docs []DocState) (docColumns, error) {
	last := make(map[string]int, len(docs))
	for i, d := range docs {
		last[d.SourceKey] = i
	}
	c := docColumns{
		keys:    make([]string, 0, len(last)),
		hashes:  make([]string, 0, len(last)),
		lsns:    make([]string, 0, len(last)),
		tenants: make([]string, 0, len(last)),
		chunks:  make([]int32, 0, len(last)),
		saved:   make(map[string]bool, len(last)),
	}
	for i, d := range docs {
		if last[d.SourceKey] != i {
			continue
		}
		if d.ChunkCount < 0 || d.ChunkCount > math.MaxInt32 {
			return docColumns{}, fmt.Errorf("key %s: chunk count %d out of range", d.SourceKey, d.ChunkCount)
		}
		c.keys = append(c.keys, d.SourceKey)
		c.hashes = append(c.hashes, d.ContentHash)
		c.chunks = append(c.chunks, int32(d.ChunkCount))
		c.lsns = append(c.lsns, d.LSN.String())
		c.tenants = append(c.tenants, d.Tenant)
		c.saved[d.SourceKey] = true
	}
	return c, nil
}

// without returns keys minus those in drop, reusing keys' array only when
// nothing is dropped.
func without(keys []string, drop map[string]bool) []string {
	if len(drop) == 0 {
		return keys
	}
	var out []string
	for _, k := range keys {
		if !drop[k] {
			out = append(out, k)
		}
	}
	return out
}
