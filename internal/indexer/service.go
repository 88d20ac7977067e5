package indexer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
)

// Service is one running cdc-indexer: the replication stream, the pipeline
// and the background tasks around them. Start it, then Stop it; Done closes
// when it stopped by itself (a fatal error).
//
// Its goroutines, and how each one ends (the one place that starts them is
// Service.run):
//
//   - the stream supervisor (reconnect.go), with the Received relay: on the
//     stop signal after draining, or on a fatal error; it closes the
//     pipeline's channel as it returns;
//   - the pipeline (pipeline.Run): once that channel is closed and its work
//     applied, or cut off when pipeline.shutdown_timeout, counted from the
//     signal, runs out;
//   - the background group: the online backfiller and the observability
//     collector end with the stop signal; the checkpoint gauge, slot
//     monitor, heartbeat, dead-letter redrive and periodic verification end
//     once the pipeline has stopped. The group is waited for before the
//     final checkpoint and the clean-stop marker are written;
//   - the observability server: closed last, after the database pool.
type Service struct {
	cfg  *config.Config
	log  zerolog.Logger
	opts Options
	m    *metrics.Metrics
	obs  *observability
	env  *Env

	stop context.CancelFunc // the stop signal
	done chan struct{}
	err  error // valid once done is closed
}

// Start prepares the service (the observability listener, the database
// pool and state schema, the Weaviate collections, the embedder) and starts
// it in the background. An error is a start that could not be made; a
// failure after it ends the service, and Stop returns it. ctx bounds the
// preparation only: the service runs until Stop.
func Start(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts Options) (*Service, error) {
	m := opts.Metrics
	if m == nil {
		m = metrics.New()
	}
	obs, err := startObservability(cfg.Observability.Listen, m, log)
	if err != nil {
		return nil, err
	}
	env, err := prepare(ctx, cfg, log)
	if err != nil {
		obs.Close()
		return nil, err
	}
	if opts.WrapEmbedder != nil && env.Embedder != nil {
		env.Embedder = opts.WrapEmbedder(env.Embedder)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &Service{cfg: cfg, log: log, opts: opts, m: m, obs: obs, env: env, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer obs.Close()
		defer env.Close()
		s.err = s.run(runCtx)
	}()
	return s, nil
}

// Done is closed once the service has stopped.
func (s *Service) Done() <-chan struct{} { return s.done }

// Stop signals the service to stop and waits until it has: the stream
// drains, the pipeline applies what it was handed, the confirmed position
// is saved, all within pipeline.shutdown_timeout. It returns the error that
// ended the service, if one did, or ctx's error if ctx ends first.
func (s *Service) Stop(ctx context.Context) error {
	s.stop()
	select {
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run streams until ctx (the stop signal) ends or a fatal error.
func (s *Service) run(ctx context.Context) error {
	cfg, log, env, m, obs := s.cfg, s.log, s.env, s.m, s.obs
	slot, err := s.acquireSlot(ctx)
	if err != nil {
		return err
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
	stream := connector.NewStream(connector.StreamConfig{
		DSN: cfg.Postgres.DSN, Slot: cfg.Postgres.Slot, Publication: cfg.Postgres.Publication,
		Tables: env.Infos, StatusInterval: cfg.Pipeline.StatusInterval,
		DrainTimeout: cfg.Pipeline.ShutdownTimeout, Logger: log, DecodeTimer: m.ObserveDecode,
	})

	// The pipeline outlives the signal: it drains what the stream already
	// handed over, and is cut off only after the shutdown timeout.
	pipeCtx, cancelPipe := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPipe()
	// stopCtx ends with the signal, or when the pipeline fails first.
	stopCtx, cancelStop := context.WithCancel(ctx)
	defer cancelStop()
	// Decoded changes wait here outside the memory budget (the dispatcher
	// takes their bytes from it): a short hand-over keeps that small.
	msgs := make(chan connector.Message, 64)

	var background sync.WaitGroup
	env.startBackfills(stopCtx, &background, cfg, pipe, m, log) // online snapshots (backfill.go)
	obs.watch(stopCtx, &background, cfg, env, watched{tracker: tracker, stream: stream, pipe: pipe, msgs: msgs})
	background.Go(func() { env.persistCheckpoints(pipeCtx, tracker, m) })
	background.Go(func() { env.monitorSlot(pipeCtx, cfg, log) })                          // slothealth.go
	background.Go(func() { env.heartbeat(pipeCtx, cfg.Postgres.HeartbeatInterval, log) }) // slothealth.go
	background.Go(func() { env.redriveDeadLetters(pipeCtx, pipe, m, log) })               // deadletters.go
	background.Go(func() { env.verifyPeriodically(pipeCtx, cfg, m, log) })                // verify.go

	pipeDone := make(chan error, 1)
	go func() { pipeDone <- pipe.Run(pipeCtx, msgs) }()

	obs.setReady(true)
	if s.opts.Ready != nil {
		s.opts.Ready()
	}
	log.Info().Str("slot", cfg.Postgres.Slot).Stringer("confirmed_lsn", slot.ConfirmedFlush).
		Int("tables", len(env.Tables)).Msg("streaming")

	streamDone := make(chan error, 1)
	go func() {
		sup := &supervisor{env: env, cfg: cfg, stream: stream, tracker: tracker, pipe: pipe, obs: obs, log: log}
		out := msgs
		if s.opts.Received != nil {
			out = relay(pipeCtx, msgs, s.opts.Received)
		}
		err := sup.run(stopCtx, out)
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
		cancelStop()
		<-streamDone
		runErr = fmt.Errorf("pipeline: %w", err)
	}
	obs.setReady(false)
	cancelStop()
	cancelPipe()
	background.Wait()

	saveCtx, cancelSave := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelSave()
	if _, err := env.saveSlotCheckpoint(saveCtx, cfg.Postgres.Slot, 0); err != nil {
		log.Warn().Err(err).Msg("saving checkpoint")
	}
	// Clean: every change handed to the pipeline was applied and recorded.
	if runErr == nil && !cutOff && tracker.InFlight() == 0 {
		if err := env.State.MarkCleanStop(saveCtx, cfg.Postgres.Slot); err != nil {
			log.Warn().Err(err).Msg("recording the clean stop (the next start replays as after a crash)")
		}
	}
	if runErr != nil {
		return runErr
	}
	log.Info().Stringer("confirmed_lsn", tracker.Confirmed()).Msg("stopped")
	return nil
}

// acquireSlot returns the slot once this instance may stream it: at once,
// or, as a standby, once its holder has ended and no other standby won it.
func (s *Service) acquireSlot(ctx context.Context) (connector.SlotState, error) {
	for {
		if s.opts.Standby {
			if err := s.env.awaitSlot(ctx, s.cfg, s.obs, s.log); err != nil {
				return connector.SlotState{}, err
			}
		}
		slot, err := s.env.slotWhenFree(ctx, s.cfg)
		if err != nil {
			return connector.SlotState{}, err
		}
		err = s.env.checkSlot(ctx, s.cfg, slot, true)
		if lostRace(s.opts.Standby, err) {
			continue // another standby took it: wait for that one instead
		}
		if err != nil {
			return connector.SlotState{}, fmt.Errorf("postgres.slot: %w", err)
		}
		return slot, nil
	}
}
