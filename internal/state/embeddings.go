package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// LookupEmbeddings returns the cached vectors of model among keys (SHA-256
// of chunk texts), in one statement, and marks them used: the last-use
// time of an entry is refreshed at most once an hour, so that lookups do
// not turn into a write per hit.
func (s *Store) LookupEmbeddings(ctx context.Context, model string, keys [][32]byte) (map[[32]byte][]float32, error) {
	out := make(map[[32]byte][]float32, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	q := s.sql.schema
	hashes := make([][]byte, len(keys))
	for i := range keys {
		hashes[i] = keys[i][:]
	}
	// One primary-key probe per hash, and the touch by row address: see
	// keyLookup in store.go. A touch that loses a race with a concurrent
	// one is skipped, which is harmless.
	rows, err := s.db.Query(ctx, `WITH hit AS (
    SELECT c.ctid, c.text_hash, c.vector, c.last_used
    FROM unnest($2::bytea[]) AS k(text_hash)
    CROSS JOIN LATERAL (
        SELECT ctid, * FROM `+q+`.embedding_cache c
        WHERE c.model = $1 AND c.text_hash = k.text_hash
        OFFSET 0
    ) c
), touched AS (
    UPDATE `+q+`.embedding_cache c SET last_used = now()
    WHERE c.ctid = ANY(ARRAY(SELECT ctid FROM hit WHERE last_used < now() - interval '1 hour'))
)
SELECT text_hash, vector FROM hit`, model, hashes)
	if err != nil {
		return nil, fmt.Errorf("look up cached embeddings: %w", err)
	}
	var hash, raw []byte
	_, err = pgx.ForEachRow(rows, []any{&hash, &raw}, func() error {
		if len(hash) != 32 {
			return fmt.Errorf("text hash of %d bytes", len(hash))
		}
		v, err := decodeVector(raw)
		if err != nil {
			return err
		}
		out[[32]byte(hash)] = v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up cached embeddings: %w", err)
	}
	return out, nil
}

// SaveEmbeddings stores vectors of model, keys[i] -> vecs[i], in one
// statement; an entry already present is only marked used.
func (s *Store) SaveEmbeddings(ctx context.Context, model string, keys [][32]byte, vecs [][]float32) error {
	if len(keys) != len(vecs) {
		return fmt.Errorf("save embeddings: %d keys for %d vectors", len(keys), len(vecs))
	}
	if len(keys) == 0 {
		return nil
	}
	hashes := make([][]byte, len(keys))
	raws := make([][]byte, len(keys))
	for i := range keys {
		hashes[i] = keys[i][:]
		raws[i] = encodeVector(vecs[i])
	}
	_, err := s.db.Exec(ctx, `INSERT INTO `+s.sql.schema+`.embedding_cache AS c (model, text_hash, vector, last_used)
SELECT $1, u.text_hash, u.vector, now() FROM unnest($2::bytea[], $3::bytea[]) AS u(text_hash, vector)
ON CONFLICT (model, text_hash) DO UPDATE SET last_used = excluded.last_used`, model, hashes, raws)
	if err != nil {
		return fmt.Errorf("save embeddings: %w", err)
	}
	return nil
}

// PruneEmbeddings deletes the least recently used cache entries beyond
// keep, and returns how many it deleted.
func (s *Store) PruneEmbeddings(ctx context.Context, keep int64) (int64, error) {
	q := s.sql.schema
	tag, err := s.db.Exec(ctx, `DELETE FROM `+q+`.embedding_cache c USING (
    SELECT model, text_hash FROM `+q+`.embedding_cache ORDER BY last_used
    LIMIT greatest((SELECT count(*) FROM `+q+`.embedding_cache) - $1, 0)
) old WHERE c.model = old.model AND c.text_hash = old.text_hash`, keep)
	if err != nil {
		return 0, fmt.Errorf("prune embedding cache: %w", err)
	}
	return tag.RowsAffected(), nil
}

// CountEmbeddings returns how many vectors the cache holds.
func (s *Store) CountEmbeddings(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM `+s.sql.schema+`.embedding_cache`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count cached embeddings: %w", err)
	}
	return n, nil
}

func encodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func decodeVector(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("vector of %d bytes is not float32s", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// CollectionModel is the vector space a collection was written in.
type CollectionModel struct {
	Collection string
	ModelID    string
	Dimensions int // 0 when Weaviate's vectorizer makes the vectors
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// ErrNoCollectionModel is returned by CollectionModel for a collection
// never recorded.
var ErrNoCollectionModel = errors.New("no model recorded for the collection")

// CollectionModel returns what was recorded for collection, or
// ErrNoCollectionModel.
func (s *Store) CollectionModel(ctx context.Context, collection string) (CollectionModel, error) {
	c := CollectionModel{Collection: collection}
	var dims int32
	err := s.db.QueryRow(ctx, `SELECT model_id, dimensions, created_at, updated_at FROM `+s.sql.schema+`.collections WHERE collection = $1`,
		collection).Scan(&c.ModelID, &dims, &c.CreatedAt, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, ErrNoCollectionModel
	}
	if err != nil {
		return c, fmt.Errorf("read model of collection %s: %w", collection, err)
	}
	c.Dimensions = int(dims)
	return c, nil
}

// SaveCollectionModel records (or replaces) the vector space of a
// collection.
func (s *Store) SaveCollectionModel(ctx context.Context, c CollectionModel) error {
	_, err := s.db.Exec(ctx, `INSERT INTO `+s.sql.schema+`.collections AS c (collection, model_id, dimensions)
VALUES ($1, $2, $3)
ON CONFLICT (collection) DO UPDATE SET model_id = excluded.model_id, dimensions = excluded.dimensions, updated_at = now()`,
		c.Collection, c.ModelID, c.Dimensions)
	if err != nil {
		return fmt.Errorf("record model of collection %s: %w", c.Collection, err)
	}
	return nil
}

// CollectionModels lists every recorded collection, by name.
func (s *Store) CollectionModels(ctx context.Context) ([]CollectionModel, error) {
	rows, err := s.db.Query(ctx, `SELECT collection, model_id, dimensions, created_at, updated_at FROM `+s.sql.schema+`.collections ORDER BY collection`)
	if err != nil {
		return nil, fmt.Errorf("list collection models: %w", err)
	}
	var out []CollectionModel
	var c CollectionModel
	var dims int32
	_, err = pgx.ForEachRow(rows, []any{&c.Collection, &c.ModelID, &dims, &c.CreatedAt, &c.UpdatedAt}, func() error {
		c.Dimensions = int(dims)
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list collection models: %w", err)
	}
	return out, nil
}

// EmbeddingUsage is what was sent to the embedding provider for one model
// and source table since the state schema was created.
type EmbeddingUsage struct {
	Model       string
	SourceTable string
	Texts       int64   // texts sent (cache hits excluded)
	Tokens      int64   // their cl100k_base tokens
	Cost        float64 // at embedding.price_per_million_tokens when sent
	UpdatedAt   time.Time
}

// AddEmbeddingUsage adds to the usage of a model and table.
func (s *Store) AddEmbeddingUsage(ctx context.Context, model, sourceTable string, texts, tokens int64, cost float64) error {
	_, err := s.db.Exec(ctx, `INSERT INTO `+s.sql.schema+`.embedding_usage AS u (model, source_table, texts, tokens, cost)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (model, source_table) DO UPDATE SET
    texts = u.texts + excluded.texts, tokens = u.tokens + excluded.tokens,
    cost = u.cost + excluded.cost, updated_at = now()`, model, sourceTable, texts, tokens, cost)
	if err != nil {
		return fmt.Errorf("record embedding usage: %w", err)
	}
	return nil
}

// EmbeddingUsages lists the usage of every model and table.
func (s *Store) EmbeddingUsages(ctx context.Context) ([]EmbeddingUsage, error) {
	rows, err := s.db.Query(ctx, `SELECT model, source_table, texts, tokens, cost, updated_at FROM `+s.sql.schema+`.embedding_usage ORDER BY model, source_table`)
	if err != nil {
		return nil, fmt.Errorf("list embedding usage: %w", err)
	}
	var out []EmbeddingUsage
	var u EmbeddingUsage
	_, err = pgx.ForEachRow(rows, []any{&u.Model, &u.SourceTable, &u.Texts, &u.Tokens, &u.Cost, &u.UpdatedAt}, func() error {
		out = append(out, u)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list embedding usage: %w", err)
	}
	return out, nil
}
