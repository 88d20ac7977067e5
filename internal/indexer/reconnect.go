package indexer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/backoff"
	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
)

// Reconnect timing: the first retry after a lost replication connection
// comes quickly, later ones at most every maxReconnectWait. A connection
// that streamed for longer than healthyAfter resets the backoff; one that
// has been up for readyAfter makes the indexer ready again.
var (
	minReconnectWait = 200 * time.Millisecond
	maxReconnectWait = 15 * time.Second
	healthyAfter     = time.Minute
	readyAfter       = time.Second
	// stallRelease is how long the pipeline may be stalled (a dependency
	// keeps failing) before the replication connection is released.
	stallRelease = 5 * time.Second
	// inUseGrace is how long a reconnect keeps trying while the slot is
	// still held by another PID: after a network loss the server notices
	// the old connection only after wal_sender_timeout (60s by default).
	inUseGrace = 3 * time.Minute
)

// supervisor runs the replication stream and reconnects it after a lost
// connection (PostgreSQL restarted, network trouble), resuming from the
// slot's confirmed position, until ctx ends or the slot becomes unusable.
//
// Why a reconnect is safe with the pipeline and tracker of the old
// connection still at work:
//
//   - The stream, the pipeline and the checkpoint tracker are kept. Changes
//     the old connection delivered stay queued and are applied; nothing is
//     drained or thrown away.
//   - The new connection starts at the slot's confirmed position, which
//     never passes a change Weaviate has not acknowledged (the tracker
//     confirms only fully acknowledged transactions, and the stream reports
//     only that). So nothing is skipped; some transactions arrive twice.
//   - A replayed change is harmless: object ids are deterministic, a row's
//     changes stay in order on the worker that owns its key (the old copy is
//     queued ahead of the new one), and a document already written is
//     skipped by its content hash.
//   - The tracker tolerates replays: a transaction the old connection cut
//     off before its commit is dropped from its queue when the next
//     transaction begins (checkpoint.Tracker.abandonOpen), and the replayed
//     copy is tracked by a record of its own; older commit LSNs never move
//     the confirmed position back.
type supervisor struct {
	env     *Env
	cfg     *config.Config
	stream  *connector.Stream
	tracker *checkpoint.Tracker
	pipe    *pipeline.Pipeline
	obs     *observability
	log     zerolog.Logger
}

// run streams into out until ctx ends (returning ctx's error) or a fatal
// error: the slot is unusable, the stream cannot decode what the server
// sends, or, on the first connection, another process holds the slot.
func (s *supervisor) run(ctx context.Context, out chan<- connector.Message) error {
	fails := 0 // in a row, for the wait before the next attempt
	var inUseSince time.Time
	for attempt := 1; ; attempt++ {
		started := time.Now()
		readyTimer := time.AfterFunc(readyAfter, func() { s.obs.setReady(true) })
		runCtx, cancelRun := context.WithCancel(ctx)
		released := s.releaseWhenStalled(runCtx, cancelRun)
		err := s.stream.Run(runCtx, out, s.tracker.Confirmed)
		cancelRun()
		readyTimer.Stop()
		if ctx.Err() != nil {
			return err
		}
		s.obs.setReady(false)
		if <-released {
			// Not a failure of the connection: wait for the pipeline, then
			// stream again from the confirmed position.
			s.log.Warn().Msg("a dependency keeps failing: replication connection released until the pipeline moves again (not ready meanwhile)")
			if err := s.waitUnstalled(ctx); err != nil {
				return err
			}
			fails = 0
			continue
		}
		if verdict := s.vetSlot(ctx); verdict != nil {
			return verdict
		}
		if fatalStreamError(err) {
			return err
		}
		if inUse(err) {
			if attempt == 1 {
				return fmt.Errorf("%w: %w: another `cdc-indexer run` (or another consumer) streams from slot %s; stop it or configure another postgres.slot",
					err, ErrSlotInUse, s.cfg.Postgres.Slot)
			}
			if inUseSince.IsZero() {
				inUseSince = time.Now()
			} else if time.Since(inUseSince) > inUseGrace {
				return err
			}
		} else {
			inUseSince = time.Time{}
		}
		if time.Since(started) > healthyAfter {
			fails = 0
		}
		fails++
		d := backoff.Policy{Initial: minReconnectWait, Max: maxReconnectWait, Jitter: 0.5}.Delay(fails)
		s.log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", d).
			Msg("replication connection lost; reconnecting (not ready meanwhile)")
		if err := sleepCtx(ctx, d); err != nil {
			return err
		}
	}
}

// releaseWhenStalled cancels the stream (cancel) once the pipeline has been
// stalled for stallRelease, and then reports true on the returned channel;
// it reports false when ctx ends first.
//
// A replication connection the pipeline cannot keep up with serves no
// purpose, and holding it does harm: PostgreSQL's fast shutdown waits until
// a logical walsender's client has confirmed everything it was sent, which
// it cannot do while, say, the state schema is unreachable because of that
// very shutdown. Releasing it is always safe: the next connection resumes
// from the confirmed position.
func (s *supervisor) releaseWhenStalled(ctx context.Context, cancel context.CancelFunc) <-chan bool {
	out := make(chan bool, 1)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var since time.Time
		for {
			select {
			case <-ctx.Done():
				out <- false
				return
			case <-tick.C:
			}
			if !s.pipe.Stalled() {
				since = time.Time{}
				continue
			}
			if since.IsZero() {
				since = time.Now()
			} else if time.Since(since) >= stallRelease {
				cancel()
				out <- true
				return
			}
		}
	}()
	return out
}

// waitUnstalled waits until the pipeline is no longer stalled.
func (s *supervisor) waitUnstalled(ctx context.Context) error {
	for s.pipe.Stalled() {
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// vetSlot checks the slot over a normal connection after the stream
// stopped: it may have been dropped, invalidated or recreated, and streaming
// from it then would skip changes. Only
// a verdict is an error; a failed check (PostgreSQL still down) is left to
// the next connection attempt.
func (s *supervisor) vetSlot(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := connector.SlotInfo(cctx, s.env.Pool, s.cfg.Postgres.Slot)
	if err != nil {
		return nil
	}
	err = s.env.checkSlot(cctx, s.cfg, st, false)
	if errors.Is(err, ErrSlot) {
		return err
	}
	return nil
}

// fatalStreamError reports errors no reconnect can fix: the server's data
// cannot be decoded, or the slot is unusable (missing, lost, not pgoutput).
func fatalStreamError(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	for _, s := range []string{
		"replication stream at ", // decoding failed: the same WAL comes again
		"does not exist",
		"wal_status lost",
		"has lost required WAL",
		"needs a logical slot",
		"uses output plugin",
		"belongs to database",
		"invalid replication slot name",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42704", // undefined_object: slot or publication missing
			"28000", "28P01", // invalid authorization
			"42501": // insufficient privilege
			return true
		}
	}
	return false
}

// inUse reports the server's refusal because another walsender holds the
// slot.
func inUse(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55006" // object_in_use
}

func sleepCtx(ctx context.Context, d time.Duration) error { return backoff.Sleep(ctx, d) }
