package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// LoadCheckpoint returns the position last saved for slot; found is false
// when none was.
func (s *Store) LoadCheckpoint(ctx context.Context, slot string) (lsn pglogrepl.LSN, found bool, err error) {
	var text string
	err = s.db.QueryRow(ctx, s.sql.loadCheckpoint, slot).Scan(&text)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("load checkpoint of slot %s: %w", slot, err)
	}
	lsn, err = pglogrepl.ParseLSN(text)
	if err != nil {
		return 0, false, fmt.Errorf("load checkpoint of slot %s: %w", slot, err)
	}
	return lsn, true, nil
}

// SaveCheckpoint records lsn for slot. The checkpoint never moves backwards:
// saving a position before the stored one changes nothing.
func (s *Store) SaveCheckpoint(ctx context.Context, slot string, lsn pglogrepl.LSN) error {
	if _, err := s.db.Exec(ctx, s.sql.saveCheckpoint, slot, lsn.String()); err != nil {
		return fmt.Errorf("save checkpoint %s of slot %s: %w", lsn, slot, err)
	}
	return nil
}

// BeginRun marks the run of slot that starts now as not yet stopped cleanly
// and reports whether the previous one did (MarkCleanStop). Without a saved
// checkpoint it reports false: nothing says the state is complete.
func (s *Store) BeginRun(ctx context.Context, slot string) (previousStoppedCleanly bool, err error) {
	err = s.db.QueryRow(ctx, s.sql.beginRun, slot).Scan(&previousStoppedCleanly)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("begin run of slot %s: %w", slot, err)
	}
	return previousStoppedCleanly, nil
}

// MarkCleanStop records that the run of slot stopped with everything
// Weaviate acknowledged recorded in the state, so that the next run may
// trust the state from its first change on.
func (s *Store) MarkCleanStop(ctx context.Context, slot string) error {
	if _, err := s.db.Exec(ctx, s.sql.markCleanStop, slot); err != nil {
		return fmt.Errorf("mark clean stop of slot %s: %w", slot, err)
	}
	return nil
}
