package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// MappingShape is what shaped a mapping's objects before collections had
// versions (package reindex): what a plain collection of that time was
// built with, read once when it is adopted as a version.
type MappingShape struct {
	Template  string   `json:"template"`
	Metadata  []string `json:"metadata"`
	MaxTokens int      `json:"max_tokens"`
	Overlap   int      `json:"overlap"`
}

// MappingShape returns the shape recorded for a mapping; ok is false when
// none is (the first start with this version).
func (s *Store) MappingShape(ctx context.Context, collection, sourceTable string) (shape MappingShape, ok bool, err error) {
	var raw []byte
	err = s.db.QueryRow(ctx, `SELECT shape FROM `+s.sql.schema+`.mapping_shapes WHERE collection = $1 AND source_table = $2`,
		collection, sourceTable).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return shape, false, nil
	}
	if err != nil {
		return shape, false, fmt.Errorf("read the recorded shape of %s -> %s: %w", sourceTable, collection, err)
	}
	if err := json.Unmarshal(raw, &shape); err != nil {
		return shape, false, fmt.Errorf("read the recorded shape of %s -> %s: %w", sourceTable, collection, err)
	}
	return shape, true, nil
}

// SaveMappingShape records (or replaces) a mapping's shape.
func (s *Store) SaveMappingShape(ctx context.Context, collection, sourceTable string, shape MappingShape) error {
	raw, err := json.Marshal(shape)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, `INSERT INTO `+s.sql.schema+`.mapping_shapes (collection, source_table, shape) VALUES ($1, $2, $3)
ON CONFLICT (collection, source_table) DO UPDATE SET shape = excluded.shape, updated_at = now()`, collection, sourceTable, raw)
	if err != nil {
		return fmt.Errorf("record the shape of %s -> %s: %w", sourceTable, collection, err)
	}
	return nil
}
