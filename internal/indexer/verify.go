package indexer

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/internal/verify"
	"github.com/cdc-indexer/cdc-indexer/sink"
)

// OpenVerify prepares what `verify` reads, without writing anything: the
// mappings as the pipeline renders them, PostgreSQL and Weaviate. Close the
// Env when done.
func OpenVerify(ctx context.Context, cfg *config.Config, log zerolog.Logger) (*Env, verify.Deps, error) {
	env, err := describe(ctx, cfg, log)
	if err != nil {
		return nil, verify.Deps{}, err
	}
	if env.Sink, err = sink.New(ctx, cfg.Weaviate.SinkConfig()); err != nil {
		env.Close()
		return nil, verify.Deps{}, fmt.Errorf("weaviate: %w", err)
	}
	if err := env.Sink.Ready(ctx); err != nil {
		env.Close()
		return nil, verify.Deps{}, fmt.Errorf("weaviate.url: %w", err)
	}
	// The state is compared too once it exists (verify creates nothing).
	if env.State, err = env.existingState(ctx, cfg.Postgres.StateSchema); err != nil {
		env.Close()
		return nil, verify.Deps{}, err
	}
	// What applications query is each collection's serving version, built
	// with its own spec: that is what is compared.
	if env.State != nil {
		if env.Tables, err = newVersions(env, cfg, log).servingTables(ctx, env.Tables); err != nil {
			env.Close()
			return nil, verify.Deps{}, err
		}
	}
	return env, env.verifyDeps(cfg), nil
}

func (e *Env) verifyDeps(cfg *config.Config) verify.Deps {
	d := verify.Deps{DSN: cfg.Postgres.DSN, Slot: cfg.Postgres.Slot, Pool: e.Pool, Tables: e.Tables,
		Chunker: e.Chunker, Sink: e.Sink, State: e.State, Dimensions: cfg.Embedding.Dimensions}
	if cfg.Embedding.Provider == config.ProviderNone {
		d.Dimensions = 0 // Weaviate's vectorizer decides
	}
	return d
}

// verifyPeriodically runs a verification every verify.interval while `run`
// streams (off when 0), of the next verify.sample slice of every mapping's
// keys, and exports its counts as cdc_indexer_verify_* metrics. It only
// reports: a repair is `cdc-indexer verify --repair`.
func (e *Env) verifyPeriodically(ctx context.Context, cfg *config.Config, m *metrics.Metrics, log zerolog.Logger) {
	every := cfg.Verify.Interval
	if every <= 0 {
		return
	}
	deps := e.verifyDeps(cfg)
	sample := verify.Sample{Fraction: cfg.Verify.Sample}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		start := time.Now()
		report, err := verify.Run(ctx, deps, verify.Options{Sample: sample}, zerolog.Nop())
		sample = sample.Next()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Msg("periodic verification failed")
				m.VerifyRuns.WithLabelValues("error").Inc()
			}
			continue
		}
		for _, r := range report.Mappings {
			m.ObserveVerify(r.Table, r.Collection, map[string]int64{"rows": r.Rows, "missing": r.Missing, "stale": r.Stale,
				"extra": r.Extra, "duplicate": r.Duplicate, "state": r.StateMismatch})
			ev := log.Info()
			if r.Drift() > 0 {
				ev = log.Warn()
			}
			ev.Str("table", r.Table).Str("collection", r.Collection).Int64("rows", r.Rows).Int64("missing", r.Missing).
				Float64("sample", cfg.Verify.Sample).Int64("stale", r.Stale).Int64("extra", r.Extra).Int64("duplicate", r.Duplicate).Int64("state", r.StateMismatch).
				Dur("elapsed", time.Since(start).Round(time.Millisecond)).Msg("periodic verification")
		}
		// Counted once its counts are published: a reader that sees the
		// run sees its counts.
		m.VerifyRuns.WithLabelValues("ok").Inc()
	}
}
