package state

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// DeadLetter is a row that could not be indexed: its change was
// acknowledged without reaching Weaviate, and the row's objects were removed
// from the index (so the index never serves an outdated version of it).
type DeadLetter struct {
	ID          int64
	Collection  string
	SourceTable string // contract's source_table
	SourceKey   string // contract's source_key
	LSN         pglogrepl.LSN
	Error       string
	// Attempts counts the attempts to index the row, over every time it
	// was dead-lettered. Zero means a retry was requested (RetryDeadLetters)
	// and has not been carried out yet.
	Attempts      int
	FirstFailedAt time.Time
	LastFailedAt  time.Time
}

// RetryRequested reports whether `cdc-indexer deadletters retry` asked for
// the row to be indexed again.
func (d DeadLetter) RetryRequested() bool { return d.Attempts == 0 }

// DeadLetterFilter selects dead letters; the zero value selects all. Set
// fields must all match.
type DeadLetterFilter struct {
	Collection  string
	SourceTable string
	SourceKeys  []string
	IDs         []int64
	// RetryRequested selects only those waiting for a requested retry.
	RetryRequested bool
}

func (f DeadLetterFilter) where(first int) (string, []any) {
	cond := "TRUE"
	var args []any
	add := func(expr string, v any) {
		args = append(args, v)
		cond += fmt.Sprintf(" AND "+expr, first+len(args)-1)
	}
	if f.Collection != "" {
		add("collection = $%d", f.Collection)
	}
	if f.SourceTable != "" {
		add("source_table = $%d", f.SourceTable)
	}
	if f.SourceKeys != nil {
		add("source_key = ANY($%d::text[])", f.SourceKeys)
	}
	if f.IDs != nil {
		add("id = ANY($%d::int8[])", f.IDs)
	}
	if f.RetryRequested {
		cond += " AND attempts = 0"
	}
	return cond, args
}

// RecordDeadLetters records rows of a table in a collection as dead
// letters, one statement for all. A row already recorded keeps its id and
// first failure time; its LSN and error are replaced and its attempts added
// up.
func (s *Store) RecordDeadLetters(ctx context.Context, collection, sourceTable string, letters []DeadLetter) error {
	if len(letters) == 0 {
		return nil
	}
	// One entry per key: ON CONFLICT cannot update a row twice.
	last := make(map[string]int, len(letters))
	for i, d := range letters {
		last[d.SourceKey] = i
	}
	var keys, lsns, errs []string
	var attempts []int32
	for i, d := range letters {
		if last[d.SourceKey] != i {
			continue
		}
		keys = append(keys, d.SourceKey)
		lsns = append(lsns, d.LSN.String())
		errs = append(errs, d.Error)
		attempts = append(attempts, int32(max(d.Attempts, 1)))
	}
	q := s.sql.schema
	sql := `INSERT INTO ` + q + `.dead_letters AS d
    (collection, source_table, source_key, lsn, error, attempts, first_failed_at, last_failed_at)
SELECT $1, $2, u.source_key, u.lsn::pg_lsn, u.error, u.attempts, now(), now()
FROM unnest($3::text[], $4::text[], $5::text[], $6::int4[]) AS u(source_key, lsn, error, attempts)
ON CONFLICT (collection, source_table, source_key) DO UPDATE SET
    lsn            = excluded.lsn,
    error          = excluded.error,
    attempts       = d.attempts + excluded.attempts,
    last_failed_at = excluded.last_failed_at`
	if _, err := s.db.Exec(ctx, sql, collection, sourceTable, keys, lsns, errs, attempts); err != nil {
		return fmt.Errorf("record %d dead letters of %s in %s: %w", len(keys), sourceTable, collection, err)
	}
	return nil
}

// ClearDeadLetters forgets the dead letters of the given keys (the rows were
// indexed or removed since) and returns how many there were.
func (s *Store) ClearDeadLetters(ctx context.Context, collection, sourceTable string, keys []string) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	return s.PurgeDeadLetters(ctx, DeadLetterFilter{Collection: collection, SourceTable: sourceTable, SourceKeys: keys})
}

// DeadLetters lists the dead letters, oldest first.
func (s *Store) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	return s.FindDeadLetters(ctx, DeadLetterFilter{})
}

// FindDeadLetters lists the dead letters f selects, oldest first.
func (s *Store) FindDeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	cond, args := f.where(1)
	rows, err := s.db.Query(ctx, `SELECT id, collection, source_table, source_key, COALESCE(lsn::text, '0/0'),
    COALESCE(error, ''), attempts, first_failed_at, last_failed_at
FROM `+s.sql.schema+`.dead_letters WHERE `+cond+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	var out []DeadLetter
	var d DeadLetter
	var lsn string
	var attempts int32
	_, err = pgx.ForEachRow(rows, []any{&d.ID, &d.Collection, &d.SourceTable, &d.SourceKey, &lsn, &d.Error, &attempts, &d.FirstFailedAt, &d.LastFailedAt}, func() error {
		parsed, err := pglogrepl.ParseLSN(lsn)
		if err != nil {
			return err
		}
		d.LSN, d.Attempts = parsed, int(attempts)
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

// CountDeadLetters counts the dead letters f selects.
func (s *Store) CountDeadLetters(ctx context.Context, f DeadLetterFilter) (int64, error) {
	cond, args := f.where(1)
	var n int64
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM `+s.sql.schema+`.dead_letters WHERE `+cond, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	return n, nil
}

// RequestDeadLetterRetry marks the dead letters f selects for a retry: the
// running (or next) `cdc-indexer run` re-reads each row by key and indexes
// its current version. It returns how many were marked.
func (s *Store) RequestDeadLetterRetry(ctx context.Context, f DeadLetterFilter) (int64, error) {
	cond, args := f.where(1)
	tag, err := s.db.Exec(ctx, `UPDATE `+s.sql.schema+`.dead_letters SET attempts = 0 WHERE `+cond, args...)
	if err != nil {
		return 0, fmt.Errorf("request retry of dead letters: %w", err)
	}
	return tag.RowsAffected(), nil
}

// PurgeDeadLetters deletes the dead letters f selects and returns how many.
// The rows stay out of the index until their next change.
func (s *Store) PurgeDeadLetters(ctx context.Context, f DeadLetterFilter) (int64, error) {
	cond, args := f.where(1)
	tag, err := s.db.Exec(ctx, `DELETE FROM `+s.sql.schema+`.dead_letters WHERE `+cond, args...)
	if err != nil {
		return 0, fmt.Errorf("delete dead letters: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DeleteCheckpoint forgets the checkpoint of slot, e.g. after the slot was
// dropped and the tables snapshotted again into a new one.
func (s *Store) DeleteCheckpoint(ctx context.Context, slot string) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM `+s.sql.schema+`.checkpoint WHERE slot = $1`, slot); err != nil {
		return fmt.Errorf("delete checkpoint of slot %s: %w", slot, err)
	}
	return nil
}
