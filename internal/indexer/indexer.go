// Package indexer wires connector, transform and sink into the running
// service behind `cdc-indexer run`.
package indexer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
)

// Run streams changes into Weaviate until ctx is cancelled, then stops
// reading, lets in-flight work finish within the shutdown timeout, confirms
// what Weaviate acknowledged, and returns nil.
func Run(ctx context.Context, cfg *config.Config, log zerolog.Logger) error {
	m := metrics.New()
	srv, err := startObservability(cfg.Observability.Listen, m, log)
	if err != nil {
		return err
	}
	defer srv.Close()

	env, err := Prepare(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer env.Close()

	slot, err := connector.SlotInfo(ctx, env.Pool, cfg.Postgres.Slot)
	if err != nil {
		return err
	}
	tracker := checkpoint.NewTracker(slot.ConfirmedFlush)
	m.ConfirmedLSN.Set(float64(slot.ConfirmedFlush))

	pipe := pipeline.New(pipeline.Config{
		Workers: cfg.Pipeline.Workers, QueueSize: cfg.Pipeline.QueueSize,
		MaxBatch: cfg.Pipeline.MaxBatch, MaxWait: cfg.Pipeline.MaxWait, EmbedBatch: cfg.Embedding.BatchSize,
	}, pipeline.Deps{
		Tables: env.Tables, Embedder: env.Embedder, Chunker: env.Chunker,
		Sink: env.Sink, State: env.State, Fetch: env.fetch, Tracker: tracker,
		Metrics: m, Log: log,
	})
	stream := connector.NewStream(connector.StreamConfig{
		DSN: cfg.Postgres.DSN, Slot: cfg.Postgres.Slot, Publication: cfg.Postgres.Publication,
		Tables: env.Infos, StatusInterval: cfg.Pipeline.StatusInterval,
		DrainTimeout: cfg.Pipeline.ShutdownTimeout, Logger: log,
	})

	// The pipeline outlives the signal: it drains what the stream already
	// handed over, and is cut off only after the shutdown timeout.
	pipeCtx, cancelPipe := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPipe()
	msgs := make(chan connector.Message, 1024)
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- pipe.Run(pipeCtx, msgs) }()

	checkpointDone := make(chan struct{})
	go func() {
		defer close(checkpointDone)
		env.persistCheckpoints(pipeCtx, tracker, m, log)
	}()

	srv.setReady(true)
	log.Info().Str("slot", cfg.Postgres.Slot).Stringer("confirmed_lsn", slot.ConfirmedFlush).
		Int("tables", len(env.Tables)).Msg("streaming")

	streamCtx, cancelStream := context.WithCancel(ctx)
	defer cancelStream()
	streamDone := make(chan error, 1)
	go func() {
		err := stream.Run(streamCtx, msgs, tracker.Confirmed)
		close(msgs)
		streamDone <- err
	}()

	var runErr error
	select {
	case err := <-streamDone:
		// The stream returns on a signal (after draining) or on a fatal error.
		if err != nil && !errors.Is(err, context.Canceled) {
			runErr = fmt.Errorf("replication stream: %w", err)
		}
		timer := time.AfterFunc(cfg.Pipeline.ShutdownTimeout, cancelPipe)
		if err := <-pipeDone; err != nil && runErr == nil {
			runErr = fmt.Errorf("pipeline: %w", err)
		}
		timer.Stop()
	case err := <-pipeDone:
		cancelStream()
		<-streamDone
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		runErr = fmt.Errorf("pipeline: %w", err)
	}
	srv.setReady(false)
	cancelPipe()
	<-checkpointDone
	env.saveCheckpoint(context.WithoutCancel(ctx), tracker.Confirmed(), log)
	if runErr != nil {
		return runErr
	}
	log.Info().Stringer("confirmed_lsn", tracker.Confirmed()).Msg("stopped")
	return nil
}

// persistCheckpoints records the confirmed position in the state schema each
// time it moves, at most once a second. The slot itself is the resume
// point; the recorded copy lets a later start notice a slot that went back.
func (e *Env) persistCheckpoints(ctx context.Context, tr *checkpoint.Tracker, m *metrics.Metrics, log zerolog.Logger) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var saved pglogrepl.LSN
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c := tr.Confirmed()
		m.ConfirmedLSN.Set(float64(c))
		if c != saved {
			if e.saveCheckpoint(ctx, c, log) {
				saved = c
			}
		}
	}
}

func (e *Env) saveCheckpoint(ctx context.Context, lsn pglogrepl.LSN, log zerolog.Logger) bool {
	if lsn == 0 {
		return true
	}
	if err := e.State.SaveCheckpoint(ctx, e.slot, lsn); err != nil {
		log.Warn().Err(err).Msg("saving checkpoint")
		return false
	}
	return true
}
