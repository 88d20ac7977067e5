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
