package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-indexer/cdc-indexer/internal/reindex"
)

// Versions returns the recorded versions of a configured collection, by
// phase: the serving one, the filling one (nil when none) and the retired
// ones.
func (s *Store) Versions(ctx context.Context, collection string) (serving, filling *reindex.Version, retired []reindex.Version, err error) {
	all, err := s.versions(ctx, `WHERE collection = $1`, collection)
	if err != nil {
		return nil, nil, nil, err
	}
	for i := range all {
		switch all[i].Phase {
		case reindex.PhaseServing:
			serving = &all[i]
		case reindex.PhaseFilling:
			filling = &all[i]
		default:
			retired = append(retired, all[i])
		}
	}
	return serving, filling, retired, nil
}

// RetiredDue returns the retired versions whose retention has passed.
func (s *Store) RetiredDue(ctx context.Context) ([]reindex.Version, error) {
	return s.versions(ctx, `WHERE phase = 'retired' AND retire_at <= now()`)
}

func (s *Store) versions(ctx context.Context, where string, args ...any) ([]reindex.Version, error) {
	rows, err := s.db.Query(ctx, `SELECT collection, version, physical, phase, fingerprint, spec, backfills
FROM `+s.sql.schema+`.collection_versions `+where+` ORDER BY collection, version`, args...)
	if err != nil {
		return nil, fmt.Errorf("read collection versions: %w", err)
	}
	var out []reindex.Version
	var v reindex.Version
	var raw []byte
	_, err = pgx.ForEachRow(rows, []any{&v.Collection, &v.Number, &v.Physical, &v.Phase, &v.Fingerprint, &raw, &v.Backfills}, func() error {
		v.Spec = reindex.Spec{}
		if err := json.Unmarshal(raw, &v.Spec); err != nil {
			return fmt.Errorf("version %s: spec: %w", v.Physical, err)
		}
		out = append(out, v)
		v.Backfills = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read collection versions: %w", err)
	}
	return out, nil
}

// AddVersion records a new version in its phase (serving or filling); the
// number must be unused.
func (s *Store) AddVersion(ctx context.Context, v reindex.Version) error {
	raw, err := json.Marshal(v.Spec.Normalize())
	if err != nil {
		return fmt.Errorf("version %s: spec: %w", v.Physical, err)
	}
	_, err = s.db.Exec(ctx, `INSERT INTO `+s.sql.schema+`.collection_versions (collection, version, physical, phase, fingerprint, spec)
VALUES ($1, $2, $3, $4, $5, $6)`, v.Collection, v.Number, v.Physical, v.Phase, v.Fingerprint, raw)
	if err != nil {
		return fmt.Errorf("record version %s of %s: %w", v.Physical, v.Collection, err)
	}
	return nil
}

// NextVersion is the number a new version of collection gets: one above
// every number recorded, retired ones included (their collections may
// still exist).
func (s *Store) NextVersion(ctx context.Context, collection string) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT COALESCE(max(version), 0) + 1 FROM `+s.sql.schema+`.collection_versions WHERE collection = $1`, collection).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("number a new version of %s: %w", collection, err)
	}
	return n, nil
}

// SetBackfills records the backfill requests that fill a version.
func (s *Store) SetBackfills(ctx context.Context, physical string, ids []int64) error {
	if ids == nil {
		ids = []int64{}
	}
	if _, err := s.db.Exec(ctx, `UPDATE `+s.sql.schema+`.collection_versions SET backfills = $2 WHERE physical = $1`, physical, ids); err != nil {
		return fmt.Errorf("record the backfills of %s: %w", physical, err)
	}
	return nil
}

// RecordSwitch makes the filling version of collection the serving one and
// retires the one that served, to be deleted after retention. The retired
// version's dead letters go at once: its rows are not served any more, and
// the serving version has dead letters of its own for rows it cannot index.
func (s *Store) RecordSwitch(ctx context.Context, collection string, retention time.Duration) error {
	_, err := s.db.Exec(ctx, `WITH switched AS (
    UPDATE `+s.sql.schema+`.collection_versions
    SET phase = CASE phase WHEN 'serving' THEN 'retired' ELSE 'serving' END,
        switched_at = CASE phase WHEN 'filling' THEN now() ELSE switched_at END,
        retire_at = CASE phase WHEN 'serving' THEN now() + $2 * interval '1 microsecond' ELSE NULL END
    WHERE collection = $1 AND phase IN ('serving', 'filling')
    RETURNING physical, phase)
DELETE FROM `+s.sql.schema+`.dead_letters WHERE collection IN (SELECT physical FROM switched WHERE phase = 'retired')`,
		collection, retention.Microseconds())
	if err != nil {
		return fmt.Errorf("record the switch of %s: %w", collection, err)
	}
	return nil
}

// ForgetVersion deletes a version's record and everything the state holds
// for its collection: its rows, dead letters, backfills and their
// progress, its recorded model and shapes.
func (s *Store) ForgetVersion(ctx context.Context, physical string) error {
	return pgx.BeginFunc(ctx, s.db.(interface {
		Begin(context.Context) (pgx.Tx, error)
	}), func(tx pgx.Tx) error {
		for _, table := range []string{"documents", "dead_letters", "backfill_requests", "snapshot_progress", "collections", "mapping_shapes", "collection_versions"} {
			col := "collection"
			if table == "collection_versions" {
				col = "physical"
			}
			if _, err := tx.Exec(ctx, `DELETE FROM `+s.sql.schema+`.`+table+` WHERE `+col+` = $1`, physical); err != nil {
				return fmt.Errorf("forget version %s: %s: %w", physical, table, err)
			}
		}
		return nil
	})
}

// RequestReindex records that collection is to be rebuilt; the running
// connector starts the rebuild.
func (s *Store) RequestReindex(ctx context.Context, collection string) error {
	_, err := s.db.Exec(ctx, `INSERT INTO `+s.sql.schema+`.reindex_requests (collection) VALUES ($1) ON CONFLICT DO NOTHING`, collection)
	if err != nil {
		return fmt.Errorf("request a reindex of %s: %w", collection, err)
	}
	return nil
}

// ReindexRequested reports whether a rebuild of collection was asked for.
func (s *Store) ReindexRequested(ctx context.Context, collection string) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+s.sql.schema+`.reindex_requests WHERE collection = $1)`, collection).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("read reindex requests: %w", err)
	}
	return ok, nil
}

// ConsumeReindexRequest forgets the request for collection.
func (s *Store) ConsumeReindexRequest(ctx context.Context, collection string) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM `+s.sql.schema+`.reindex_requests WHERE collection = $1`, collection); err != nil {
		return fmt.Errorf("consume the reindex request of %s: %w", collection, err)
	}
	return nil
}
