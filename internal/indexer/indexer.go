// Package indexer wires connector, transform and sink into the running
// service behind `cdc-indexer run`.
package indexer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
)

// Run streams changes into Weaviate until ctx is cancelled, then stops
// reading, lets in-flight work finish within the shutdown timeout, confirms
// what Weaviate acknowledged, and returns nil.
func Run(ctx context.Context, cfg *config.Config, log zerolog.Logger) error {
	return RunWith(ctx, cfg, log, Options{})
}

// Options are the hooks a caller of the service may set. The zero value is
// `cdc-indexer run`; the benchmark sets them to take its samples from the
// same wiring (one wiring: nothing it measures can drift from what runs).
type Options struct {
	// Standby waits for the slot's holder to end instead of failing
	// (`run --standby`, standby.go).
	Standby bool
	// Metrics is where the service reports; nil makes a fresh set. A
	// caller that reads samples may wrap its collectors (Freshness).
	Metrics *metrics.Metrics
	// WrapEmbedder, when set, wraps the configured embedder, to count or
	// time what is sent to it.
	WrapEmbedder func(embedding.Embedder) embedding.Embedder
	// Received, when set, sees each change as the stream hands it to the
	// pipeline (the first half of its freshness).
	Received func(*connector.Change)
	// Ready, when set, is called once the service streams.
	Ready func()
}

// RunWith is Run with hooks.
func RunWith(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts Options) error {
	m := opts.Metrics
	if m == nil {
		m = metrics.New()
	}
	standby := opts.Standby
	srv, err := startObservability(cfg.Observability.Listen, m, log)
	if err != nil {
		return err
	}
	defer srv.Close()

	env, err := prepare(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer env.Close()
	if opts.WrapEmbedder != nil && env.Embedder != nil {
		env.Embedder = opts.WrapEmbedder(env.Embedder)
	}

	var slot connector.SlotState
	for {
		if standby {
			if err := env.awaitSlot(ctx, cfg, srv, log); err != nil {
				return err
			}
		}
		if slot, err = env.slotWhenFree(ctx, cfg); err != nil {
			return err
		}
		err = env.checkSlot(ctx, cfg, slot, true)
		if lostRace(standby, err) {
			continue // another standby took it: wait for that one instead
		}
		if err != nil {
			return fmt.Errorf("postgres.slot: %w", err)
		}
		break
	}
	tracker := checkpoint.NewTracker(slot.ConfirmedFlush)
	m.ConfirmedLSN.Set(float64(slot.ConfirmedFlush))

	// A predecessor that did not stop cleanly (killed, cut off) may have
	// written changes to Weaviate it never recorded in the state. They came
	// from WAL before the server's current end: up to there the state may
	// lag Weaviate, and the pipeline does not trust it.
	cleanBefore, err := env.State.BeginRun(ctx, cfg.Postgres.Slot)
	if err != nil {
		return err
	}
	var recoverUntil pglogrepl.LSN
	if !cleanBefore {
		if recoverUntil, err = env.walEnd(ctx); err != nil {
			return err
		}
		log.Info().Stringer("until_lsn", recoverUntil).Msg("previous run did not stop cleanly: replayed changes are rewritten, not skipped")
	}
	pipeCfg := pipelineConfig(cfg)
	pipeCfg.RecoverUntil = recoverUntil
	pipe := pipeline.New(pipeCfg, pipeline.Deps{
		Tables: env.Tables, Embedder: env.Embedder, Chunker: env.Chunker,
		Sink: env.Sink, State: env.State, Fetch: env.fetch, Tracker: tracker,
		Metrics: m, Log: log, Reread: env.rereadTable(cfg),
	})
	stopBackfills := env.startBackfills(ctx, cfg, pipe, m, log) // online snapshots (backfill.go)
	defer stopBackfills()
	stream := connector.NewStream(connector.StreamConfig{
		DSN: cfg.Postgres.DSN, Slot: cfg.Postgres.Slot, Publication: cfg.Postgres.Publication,
		Tables: env.Infos, StatusInterval: cfg.Pipeline.StatusInterval,
		DrainTimeout: cfg.Pipeline.ShutdownTimeout, Logger: log, DecodeTimer: m.ObserveDecode,
	})

	// The pipeline outlives the signal: it drains what the stream already
	// handed over, and is cut off only after the shutdown timeout.
	pipeCtx, cancelPipe := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPipe()
	// Decoded changes wait here outside the memory budget (the dispatcher
	// takes their bytes from it): a short hand-over keeps that small.
	msgs := make(chan connector.Message, 64)
	stopWatch := srv.watch(ctx, cfg, env, watched{tracker: tracker, stream: stream, pipe: pipe, msgs: msgs})
	defer stopWatch()
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- pipe.Run(pipeCtx, msgs) }()

	checkpointDone := make(chan struct{})
	go func() {
		defer close(checkpointDone)
		env.persistCheckpoints(pipeCtx, tracker, m, log)
	}()
	// Slot health, heartbeat and dead-letter retries (slothealth.go,
	// deadletters.go).
	healthDone := make(chan struct{}, 3)
	go func() { env.monitorSlot(pipeCtx, cfg, log); healthDone <- struct{}{} }()
	go func() { env.heartbeat(pipeCtx, cfg.Postgres.HeartbeatInterval, log); healthDone <- struct{}{} }()
	go func() { env.redriveDeadLetters(pipeCtx, pipe, m, log); healthDone <- struct{}{} }()
	verifyDone := make(chan struct{})
	go func() { defer close(verifyDone); env.verifyPeriodically(pipeCtx, cfg, m, log) }() // verify.go
	defer func() { <-verifyDone }()

	srv.setReady(true)
	if opts.Ready != nil {
		opts.Ready()
	}
	log.Info().Str("slot", cfg.Postgres.Slot).Stringer("confirmed_lsn", slot.ConfirmedFlush).
		Int("tables", len(env.Tables)).Msg("streaming")

	streamCtx, cancelStream := context.WithCancel(ctx)
	defer cancelStream()
	streamDone := make(chan error, 1)
	go func() {
		sup := &supervisor{env: env, cfg: cfg, stream: stream, tracker: tracker, pipe: pipe, obs: srv, log: log}
		out := msgs
		if opts.Received != nil {
			out = relay(pipeCtx, msgs, opts.Received)
		}
		err := sup.run(streamCtx, out)
		close(out)
		streamDone <- err
	}()

	// One shutdown budget for the whole stop: the stream's drain and the
	// pipeline's last batches share pipeline.shutdown_timeout from the
	// signal on, so the process exits within it (and an orchestrator's
	// grace period sized to it is never overrun into a SIGKILL).
	var stopAt atomic.Int64
	unwatch := context.AfterFunc(ctx, func() { stopAt.Store(time.Now().UnixNano()) })
	defer unwatch()

	var runErr error
	cutOff := false // the pipeline was stopped at the shutdown timeout
	select {
	case err := <-streamDone:
		// The stream returns on a signal (after draining) or on a fatal error.
		if err != nil && !errors.Is(err, context.Canceled) {
			runErr = fmt.Errorf("replication stream: %w", err)
		}
		left := cfg.Pipeline.ShutdownTimeout
		if at := stopAt.Load(); at != 0 {
			left -= time.Since(time.Unix(0, at))
		}
		timer := time.AfterFunc(max(left, 0), cancelPipe)
		if err := <-pipeDone; err != nil && runErr == nil {
			runErr = fmt.Errorf("pipeline: %w", err)
		}
		cutOff = !timer.Stop()
	case err := <-pipeDone:
		if err == nil {
			// The pipeline ends cleanly only once msgs is closed, that is,
			// after the stream returned: its outcome decides.
			if err := <-streamDone; err != nil && !errors.Is(err, context.Canceled) {
				runErr = fmt.Errorf("replication stream: %w", err)
			}
			break
		}
		cancelStream()
		<-streamDone
		runErr = fmt.Errorf("pipeline: %w", err)
	}
	srv.setReady(false)
	cancelPipe()
	<-checkpointDone
	for range cap(healthDone) {
		<-healthDone
	}
	saveCtx, cancelSave := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	if _, err := env.saveSlotCheckpoint(saveCtx, cfg.Postgres.Slot, 0); err != nil {
		log.Warn().Err(err).Msg("saving checkpoint")
	}
	// Clean: every change handed to the pipeline was applied and recorded.
	if runErr == nil && !cutOff && tracker.InFlight() == 0 {
		if err := env.State.MarkCleanStop(saveCtx, cfg.Postgres.Slot); err != nil {
			log.Warn().Err(err).Msg("recording the clean stop (the next start replays as after a crash)")
		}
	}
	cancelSave()
	if runErr != nil {
		return runErr
	}
	log.Info().Stringer("confirmed_lsn", tracker.Confirmed()).Msg("stopped")
	return nil
}

// persistCheckpoints publishes the confirmed position as a metric, at most
// once a second. The checkpoint in the state schema, which lets a later
// start notice a slot that went back, is the slot's durable position and is
// saved by monitorSlot (see saveSlotCheckpoint for why not this one).
func (e *Env) persistCheckpoints(ctx context.Context, tr *checkpoint.Tracker, m *metrics.Metrics, _ zerolog.Logger) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.ConfirmedLSN.Set(float64(tr.Confirmed()))
	}
}

// relay returns a channel whose messages go on to out, each change shown to
// seen first; out is closed once the returned channel is. If the pipeline
// stops reading (ctx ends), what is still sent is dropped, as the stream's
// own send would have blocked forever.
func relay(ctx context.Context, out chan<- connector.Message, seen func(*connector.Change)) chan connector.Message {
	in := make(chan connector.Message)
	go func() {
		defer close(out)
		for m := range in {
			if c, ok := m.(*connector.Change); ok {
				seen(c)
			}
			select {
			case out <- m:
			case <-ctx.Done():
				for range in {
				}
				return
			}
		}
	}()
	return in
}
