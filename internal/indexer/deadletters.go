package indexer

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
)

// How often the running connector looks for dead letters whose retry was
// requested (`cdc-indexer deadletters retry`).
var deadLetterPollInterval = 2 * time.Second

// redriveDeadLetters, until ctx ends, indexes again the rows whose retry
// was requested: each is re-read by key and applied through the pipeline
// (pipeline.Redrive). A row that fails again is dead-lettered again with
// its new error; one that is indexed, or no longer exists, leaves the dead
// letters.
func (e *Env) redriveDeadLetters(ctx context.Context, pipe *pipeline.Pipeline, m *metrics.Metrics, log zerolog.Logger) {
	tick := time.NewTicker(deadLetterPollInterval)
	defer tick.Stop()
	var refresh time.Time
	for {
		if err := e.redriveOnce(ctx, pipe, log); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("retrying dead letters")
		}
		if time.Since(refresh) > 30*time.Second {
			pipe.RefreshDeadLetters() // another process may have recorded some
			refresh = time.Now()
		}
		if n, err := e.openDeadLetters(ctx); err == nil {
			m.DeadLetters.Set(float64(n))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (e *Env) redriveOnce(ctx context.Context, pipe *pipeline.Pipeline, log zerolog.Logger) error {
	letters, err := e.State.FindDeadLetters(ctx, state.DeadLetterFilter{RetryRequested: true})
	if err != nil || len(letters) == 0 {
		return err
	}
	// The rows are read after this position: a change the stream applies
	// after it must win over the copy read here, and does (Redrive).
	at, err := e.walEnd(ctx)
	if err != nil {
		return err
	}
	log.Info().Int("rows", len(letters)).Msg("retrying dead-lettered rows")
	if err := pipe.Redrive(ctx, letters, at); err != nil {
		return err
	}
	// What is still marked was neither indexed (that clears it) nor failed
	// again (that counts attempts): the row is gone, or a newer change
	// already indexed it.
	ids := make([]int64, len(letters))
	for i, d := range letters {
		ids[i] = d.ID
	}
	n, err := e.State.PurgeDeadLetters(ctx, state.DeadLetterFilter{IDs: ids, RetryRequested: true})
	if err != nil {
		return err
	}
	if n > 0 {
		log.Info().Int64("rows", n).Msg("dead letters cleared: the rows no longer exist or are indexed already")
	}
	return nil
}

// openDeadLetters counts the dead letters of this connector's mappings (the
// state schema may hold other connectors' too).
func (e *Env) openDeadLetters(ctx context.Context) (int64, error) {
	var total int64
	for _, t := range e.Tables {
		n, err := e.State.CountDeadLetters(ctx, state.DeadLetterFilter{Collection: t.Collection, SourceTable: t.SourceTable})
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}
