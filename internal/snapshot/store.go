package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

// Store keeps the snapshot's bookkeeping in the state schema: the progress
// of each table's key ranges, the backfill requests of the running
// connector, and the purge of tombstones.
type Store struct {
	db   *pgxpool.Pool
	q    string // quoted state schema
	slot string // whose backfill requests this store enqueues, claims and requeues
}

// NewStore returns a store over pool for the state schema, which must be
// migrated, for the connector streaming slot: connectors of other slots
// may share the schema, each with its own tables and backfill requests.
func NewStore(pool *pgxpool.Pool, schema, slot string) *Store {
	return &Store{db: pool, q: connector.QuoteIdent(schema), slot: slot}
}

// Part is one key range of a table, read in primary-key order by one reader
// at a time: the keys after Lower up to and including Upper (nil: no bound).
type Part struct {
	Collection  string
	SourceTable string
	Index       int
	Lower       connector.Key
	Upper       connector.Key
	Last        connector.Key // last key indexed; nil when none yet
	RowsDone    int64
	Done        bool
}

func keyJSON(k connector.Key) *string {
	if k == nil {
		return nil
	}
	b, _ := json.Marshal([]string(k))
	s := string(b)
	return &s
}

func parseKey(s *string) (connector.Key, error) {
	if s == nil {
		return nil, nil
	}
	var k []string
	if err := json.Unmarshal([]byte(*s), &k); err != nil {
		return nil, err
	}
	return connector.Key(k), nil
}

// Parts returns the recorded parts of a table in a collection, in order.
func (s *Store) Parts(ctx context.Context, collection, sourceTable string) ([]Part, error) {
	rows, err := s.db.Query(ctx, `SELECT part, lower_key::text, upper_key::text, last_key::text, rows_done, done
FROM `+s.q+`.snapshot_progress WHERE collection = $1 AND source_table = $2 ORDER BY part`, collection, sourceTable)
	if err != nil {
		return nil, fmt.Errorf("read snapshot progress of %s: %w", sourceTable, err)
	}
	var out []Part
	var lower, upper, last *string
	p := Part{Collection: collection, SourceTable: sourceTable}
	_, err = pgx.ForEachRow(rows, []any{&p.Index, &lower, &upper, &last, &p.RowsDone, &p.Done}, func() error {
		var err error
		q := p
		if q.Lower, err = parseKey(lower); err != nil {
			return err
		}
		if q.Upper, err = parseKey(upper); err != nil {
			return err
		}
		if q.Last, err = parseKey(last); err != nil {
			return err
		}
		out = append(out, q)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read snapshot progress of %s: %w", sourceTable, err)
	}
	return out, nil
}

// StartParts replaces the recorded parts of a table with fresh ones, read
// from the snapshot at `at`.
func (s *Store) StartParts(ctx context.Context, parts []Part, at pglogrepl.LSN) error {
	if len(parts) == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM `+s.q+`.snapshot_progress WHERE collection = $1 AND source_table = $2`,
			parts[0].Collection, parts[0].SourceTable); err != nil {
			return fmt.Errorf("reset snapshot progress of %s: %w", parts[0].SourceTable, err)
		}
		for _, p := range parts {
			_, err := tx.Exec(ctx, `INSERT INTO `+s.q+`.snapshot_progress
    (collection, source_table, part, lower_key, upper_key, started_lsn, snapshot_lsn)
VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6::text::pg_lsn, $6::text::pg_lsn)`,
				p.Collection, p.SourceTable, p.Index, keyJSON(p.Lower), keyJSON(p.Upper), at.String())
			if err != nil {
				return fmt.Errorf("record snapshot parts of %s: %w", p.SourceTable, err)
			}
		}
		return nil
	})
}

// SaveChunk records that the rows of part up to last (n of them) are
// indexed, read at `at`, and whether the part is finished.
func (s *Store) SaveChunk(ctx context.Context, p *Part, last connector.Key, n int, done bool, at pglogrepl.LSN) error {
	lastJSON := keyJSON(last)
	if last == nil {
		lastJSON = keyJSON(p.Last)
	}
	_, err := s.db.Exec(ctx, `UPDATE `+s.q+`.snapshot_progress
SET last_key = $4::jsonb, rows_done = rows_done + $5, done = $6, snapshot_lsn = $7::text::pg_lsn, updated_at = now()
WHERE collection = $1 AND source_table = $2 AND part = $3`,
		p.Collection, p.SourceTable, p.Index, lastJSON, int64(n), done, at.String())
	if err != nil {
		return fmt.Errorf("record snapshot progress of %s: %w", p.SourceTable, err)
	}
	if last != nil {
		p.Last = last
	}
	p.RowsDone += int64(n)
	p.Done = done
	return nil
}

// ForgetProgress removes the progress of every table: a new slot makes it
// meaningless (the changes between an earlier read and the new slot's start
// were never streamed to it).
func (s *Store) ForgetProgress(ctx context.Context) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM `+s.q+`.snapshot_progress`); err != nil {
		return fmt.Errorf("reset snapshot progress: %w", err)
	}
	return nil
}

// IndexedKeys returns up to limit source keys of a table that the state
// holds a document for (tombstones aside), in key order, after `after`
// (nil: from the first).
func (s *Store) IndexedKeys(ctx context.Context, collection, sourceTable string, after *string, limit int) ([]string, error) {
	cond := ""
	args := []any{collection, sourceTable, limit}
	if after != nil {
		cond = " AND source_key > $4"
		args = append(args, *after)
	}
	rows, err := s.db.Query(ctx, `SELECT source_key FROM `+s.q+`.documents
WHERE collection = $1 AND source_table = $2 AND content_hash <> ''`+cond+`
ORDER BY source_key LIMIT $3`, args...)
	if err != nil {
		return nil, fmt.Errorf("read indexed keys of %s: %w", sourceTable, err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read indexed keys of %s: %w", sourceTable, err)
	}
	return keys, nil
}

// TableRef names a table mapping: its collection and source_table. In a
// backfill request, Keys limits it to the rows with those source keys (nil:
// the whole table).
type TableRef struct {
	Collection  string
	SourceTable string
	Keys        []string
}

// Unfinished lists the tables whose snapshot started and did not finish.
func (s *Store) Unfinished(ctx context.Context) ([]TableRef, error) {
	rows, err := s.db.Query(ctx, `SELECT DISTINCT collection, source_table FROM `+s.q+`.snapshot_progress
WHERE NOT done ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("read snapshot progress: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableRef, error) {
		var t TableRef
		err := r.Scan(&t.Collection, &t.SourceTable)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("read snapshot progress: %w", err)
	}
	return out, nil
}

// PurgeTombstones removes the tombstones (state rows of removed source rows)
// of the given tables and returns how many it removed. Tombstones only let a
// backfill that read a row before its removal tell that its copy is stale,
// so the caller must make sure no backfill is in flight: every later
// backfill reads a snapshot that already includes those removals.
func (s *Store) PurgeTombstones(ctx context.Context, tables []TableRef) (int64, error) {
	var n int64
	for _, t := range tables {
		tag, err := s.db.Exec(ctx, `DELETE FROM `+s.q+`.documents
WHERE collection = $1 AND source_table = $2 AND content_hash = ''`, t.Collection, t.SourceTable)
		if err != nil {
			return n, fmt.Errorf("purge tombstones of %s: %w", t.SourceTable, err)
		}
		n += tag.RowsAffected()
	}
	return n, nil
}

// Request is a backfill asked of the running connector.
type Request struct {
	ID          int64
	Collection  string
	SourceTable string
	Status      string // pending, running, done or failed
	RowsTotal   int64
	RowsDone    int64
	Error       string
}

// Request statuses.
const (
	StatusPending = "pending"
	StatusRunning = "running"
	StatusDone    = "done"
	StatusFailed  = "failed"
)

// Enqueue asks the running connector to backfill a table, and returns the
// request's id.
func (s *Store) Enqueue(ctx context.Context, t TableRef) (int64, error) {
	var id int64
	err := s.db.QueryRow(ctx, `INSERT INTO `+s.q+`.backfill_requests (collection, source_table, slot, keys)
VALUES ($1, $2, $3, $4) RETURNING id`, t.Collection, t.SourceTable, s.slot, t.Keys).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("request backfill of %s: %w", t.SourceTable, err)
	}
	return id, nil
}

// EnqueueIfIdle asks for a backfill of t unless one is already pending or
// running; it reports whether it added one.
func (s *Store) EnqueueIfIdle(ctx context.Context, t TableRef) (bool, error) {
	tag, err := s.db.Exec(ctx, `INSERT INTO `+s.q+`.backfill_requests (collection, source_table, slot)
SELECT $1, $2, $3 WHERE NOT EXISTS (
    SELECT 1 FROM `+s.q+`.backfill_requests
    WHERE collection = $1 AND source_table = $2 AND status IN ('pending', 'running') AND keys IS NULL)`, t.Collection, t.SourceTable, s.slot)
	if err != nil {
		return false, fmt.Errorf("request backfill of %s: %w", t.SourceTable, err)
	}
	return tag.RowsAffected() > 0, nil
}

// EnqueueUnlessPending asks for a backfill of t unless one is pending: a
// pending request reads the table later than now anyway, while a running
// one may have read it before the caller's reason to ask arose.
func (s *Store) EnqueueUnlessPending(ctx context.Context, t TableRef) error {
	_, err := s.db.Exec(ctx, `INSERT INTO `+s.q+`.backfill_requests (collection, source_table, slot)
SELECT $1, $2, $3 WHERE NOT EXISTS (
    SELECT 1 FROM `+s.q+`.backfill_requests
    WHERE collection = $1 AND source_table = $2 AND slot = $3 AND status = 'pending' AND keys IS NULL)`, t.Collection, t.SourceTable, s.slot)
	if err != nil {
		return fmt.Errorf("request backfill of %s: %w", t.SourceTable, err)
	}
	return nil
}

// Claim takes the oldest pending request of this store's slot and, with
// it, every other pending request of the same table (one backfill serves
// them all), marking them running. It returns nil when nothing is pending.
// The claimed ref's Keys are the union of the requests' keys, or nil when
// one of them asks for the whole table.
func (s *Store) Claim(ctx context.Context) (*TableRef, []int64, error) {
	var ref TableRef
	var ids []int64
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT collection, source_table FROM `+s.q+`.backfill_requests
WHERE status = 'pending' AND (slot = $1 OR slot IS NULL) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`, s.slot).Scan(&ref.Collection, &ref.SourceTable)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE `+s.q+`.backfill_requests
SET status = 'running', started_at = now()
WHERE status = 'pending' AND collection = $1 AND source_table = $2 AND (slot = $3 OR slot IS NULL) RETURNING id, keys`, ref.Collection, ref.SourceTable, s.slot)
		if err != nil {
			return err
		}
		whole := false
		seen := map[string]bool{}
		for rows.Next() {
			var id int64
			var keys []string
			if err := rows.Scan(&id, &keys); err != nil {
				return err
			}
			ids = append(ids, id)
			whole = whole || keys == nil
			for _, k := range keys {
				if !seen[k] {
					seen[k] = true
					ref.Keys = append(ref.Keys, k)
				}
			}
		}
		if whole {
			ref.Keys = nil
		}
		return rows.Err()
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("claim backfill request: %w", err)
	}
	return &ref, ids, nil
}

// Report records the progress of running requests.
func (s *Store) Report(ctx context.Context, ids []int64, done, total int64, at pglogrepl.LSN) error {
	_, err := s.db.Exec(ctx, `UPDATE `+s.q+`.backfill_requests
SET rows_done = GREATEST(rows_done, $2), rows_total = $3, snapshot_lsn = $4::text::pg_lsn WHERE id = ANY($1)`, ids, done, total, at.String())
	if err != nil {
		return fmt.Errorf("report backfill progress: %w", err)
	}
	return nil
}

// Finish marks requests done, or failed with cause.
func (s *Store) Finish(ctx context.Context, ids []int64, cause error) error {
	status, msg := StatusDone, (*string)(nil)
	if cause != nil {
		status = StatusFailed
		m := cause.Error()
		msg = &m
	}
	_, err := s.db.Exec(ctx, `UPDATE `+s.q+`.backfill_requests
SET status = $2, error = $3, finished_at = now() WHERE id = ANY($1)`, ids, status, msg)
	if err != nil {
		return fmt.Errorf("finish backfill request: %w", err)
	}
	return nil
}

// Requeue puts requests left running by a connector that stopped back to
// pending. Only the holder of the slot's lock may call it: no other process
// can be serving them.
func (s *Store) Requeue(ctx context.Context) (int64, error) {
	tag, err := s.db.Exec(ctx, `UPDATE `+s.q+`.backfill_requests
SET status = 'pending', started_at = NULL WHERE status = 'running' AND (slot = $1 OR slot IS NULL)`, s.slot)
	if err != nil {
		return 0, fmt.Errorf("requeue backfill requests: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Requests returns the given requests, by id.
func (s *Store) Requests(ctx context.Context, ids []int64) (map[int64]Request, error) {
	rows, err := s.db.Query(ctx, `SELECT id, collection, source_table, status, COALESCE(rows_total, -1), rows_done, COALESCE(error, '')
FROM `+s.q+`.backfill_requests WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read backfill requests: %w", err)
	}
	out := map[int64]Request{}
	var r Request
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Collection, &r.SourceTable, &r.Status, &r.RowsTotal, &r.RowsDone, &r.Error}, func() error {
		out[r.ID] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read backfill requests: %w", err)
	}
	return out, nil
}
