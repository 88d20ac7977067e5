package indexer

import (
	"context"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/migrations"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// Env is everything a command needs once the configuration has been checked
// against the live database and Weaviate.
type Env struct {
	Pool     *pgxpool.Pool
	State    *state.Store
	Sink     *sink.Weaviate
	Tables   []*pipeline.Table
	Infos    []connector.TableInfo
	Embedder embedding.Embedder // nil when Weaviate vectorizes
	Chunker  *transform.Chunker
	slot     string
}

// prepare connects, checks every table against its mapping, applies the
// state schema's migrations, makes sure each collection, the publication and
// the slot exist. Every failure names the configuration key it concerns.
func prepare(ctx context.Context, cfg *config.Config, log zerolog.Logger) (_ *Env, err error) {
	e, err := prepareWithoutSlot(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if err := e.requireSlotOrFirstStart(ctx, cfg); err != nil {
		return nil, err
	}
	if err := ensureSlot(ctx, cfg.Postgres.DSN, cfg.Postgres.Slot, log); err != nil {
		return nil, fmt.Errorf("postgres.slot: %w", err)
	}
	return e, nil
}

// describe connects to PostgreSQL and checks every table against its
// mapping. It writes nothing (no state schema, collection, publication or
// slot) and does not contact Weaviate: what a dry run needs.
func describe(ctx context.Context, cfg *config.Config, log zerolog.Logger) (_ *Env, err error) {
	e := &Env{slot: cfg.Postgres.Slot}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	e.Pool, err = pgxpool.New(ctx, cfg.Postgres.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres.dsn: %w", err)
	}
	if err := e.Pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("postgres.dsn: cannot connect to %s: %w", config.RedactDSN(cfg.Postgres.DSN), err)
	}

	if e.Embedder, err = newEmbedder(cfg.Embedding, log); err != nil {
		return nil, err
	}
	modelID := EmbeddingModelID(cfg.Embedding) // embedding.go
	if e.Chunker, err = transform.NewChunker(cfg.Chunking.MaxTokens, cfg.Chunking.Overlap); err != nil {
		return nil, fmt.Errorf("chunking: %w", err)
	}

	names := make([]connector.TableName, len(cfg.Tables))
	for i, t := range cfg.Tables {
		if names[i], err = connector.ParseTableName(t.Table); err != nil {
			return nil, fmt.Errorf("tables[%d].table: %w", i, err)
		}
	}
	for i, name := range names {
		infos, err := connector.DescribeTables(ctx, e.Pool, []connector.TableName{name})
		if err != nil {
			return nil, fmt.Errorf("tables[%d].table: %w", i, err)
		}
		info := infos[0]
		if err := connector.CheckReplicaIdentity(ctx, e.Pool, info); err != nil {
			return nil, fmt.Errorf("tables[%d].table: %w", i, err)
		}
		t := cfg.Tables[i]
		r, err := transform.NewRenderer(info, t.Collection, t.Template, t.Metadata, modelID)
		if err != nil {
			return nil, fmt.Errorf("tables[%d]: %w", i, err)
		}
		if t.Tenant != "" {
			if err := r.WithTenant(info, t.Tenant); err != nil {
				return nil, fmt.Errorf("tables[%d].tenant: %w", i, err)
			}
		}
		e.Infos = append(e.Infos, info)
		e.Tables = append(e.Tables, pipeline.NewTable(info, t.Collection, r))
	}
	return e, nil
}

// prepareWithoutSlot is prepare except for the slot: `snapshot` creates a
// missing slot itself, with an exported snapshot.
func prepareWithoutSlot(ctx context.Context, cfg *config.Config, log zerolog.Logger) (_ *Env, err error) {
	e, err := describe(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	names := make([]connector.TableName, len(e.Infos))
	for i, info := range e.Infos {
		names[i] = info.Name
	}
	if err := migrations.Apply(ctx, e.Pool, cfg.Postgres.StateSchema); err != nil {
		return nil, fmt.Errorf("postgres.state_schema: migrate %s: %w", cfg.Postgres.StateSchema, err)
	}
	e.State = state.NewStore(e.Pool, cfg.Postgres.StateSchema)
	e.Embedder = withCache(e.Embedder, cfg.Embedding, e.State, log) // embedding.go

	e.Sink, err = sink.New(ctx, cfg.Weaviate.SinkConfig())
	if err != nil {
		return nil, fmt.Errorf("weaviate: %w", err)
	}
	if err := e.Sink.Ready(ctx); err != nil {
		return nil, fmt.Errorf("weaviate.url: %w", err)
	}
	// Each configured collection is an alias over versions; a changed
	// mapping starts a reindex (versions.go). The pipeline's mappings are
	// those of every serving and filling version.
	if e.Tables, err = newVersions(e, cfg, log).settle(ctx); err != nil {
		return nil, fmt.Errorf("tables[].collection: %w", err)
	}

	if err := connector.EnsurePublication(ctx, e.Pool, cfg.Postgres.Publication, names); err != nil {
		return nil, fmt.Errorf("postgres.publication: %w", err)
	}
	return e, nil
}

func ensureSlot(ctx context.Context, dsn, slot string, log zerolog.Logger) error {
	conn, err := connector.ConnectReplication(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	created, at, err := connector.EnsureSlot(ctx, conn, slot)
	if err != nil {
		return err
	}
	if created {
		log.Info().Str("slot", slot).Stringer("consistent_point", at).Msg("created replication slot")
	}
	return nil
}

func newEmbedder(c config.Embedding, log zerolog.Logger) (embedding.Embedder, error) {
	return buildEmbedder(c, log) // embedding.go
}

// fetch re-reads rows for unchanged TOAST values.
func (e *Env) fetch(ctx context.Context, info connector.TableInfo, keys []connector.Key) (map[string]connector.Row, error) {
	return connector.FetchRows(ctx, e.Pool, info, keys)
}

// Close releases the connections.
func (e *Env) Close() {
	if e.Sink != nil {
		e.Sink.Close()
	}
	if e.Pool != nil {
		e.Pool.Close()
	}
}

// walEnd is the server's current WAL write position.
func (e *Env) walEnd(ctx context.Context) (pglogrepl.LSN, error) {
	var text string
	if err := e.Pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&text); err != nil {
		return 0, fmt.Errorf("postgres: read the WAL end: %w", err)
	}
	lsn, err := pglogrepl.ParseLSN(text)
	if err != nil {
		return 0, fmt.Errorf("postgres: parse the WAL end %q: %w", text, err)
	}
	return lsn, nil
}

// pipelineConfig is the pipeline's tuning from the configuration, the one
// place that maps the pipeline.* keys, for `run`, `snapshot` and the bench.
func pipelineConfig(cfg *config.Config) pipeline.Config {
	return pipeline.Config{
		Workers: cfg.Pipeline.Workers, QueueSize: cfg.Pipeline.QueueSize,
		MemoryBudget: cfg.Pipeline.MemoryBudgetBytes(),
		MaxBatch:     cfg.Pipeline.MaxBatch, MaxWait: cfg.Pipeline.MaxWait,
		EmbedBatch: cfg.Embedding.BatchSize,
	}
}

// existingState is the state store of schema when its tables exist (a
// connector ran here before), else nil: for commands that create nothing
// (a dry run, verify).
func (e *Env) existingState(ctx context.Context, schema string) (*state.Store, error) {
	var exists bool
	if err := e.Pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, connector.QuoteIdent(schema)+".documents").Scan(&exists); err != nil {
		return nil, fmt.Errorf("postgres.state_schema: %w", err)
	}
	if !exists {
		return nil, nil
	}
	return state.NewStore(e.Pool, schema), nil
}
