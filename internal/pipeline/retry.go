package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/backoff"
)

// permanentError marks a failure that no retry can fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// isPermanent recognises our own marker and any error that says of itself
// that retrying cannot help (the sink's per-object rejections and the
// embedder's rejected inputs do).
func isPermanent(err error) bool {
	var perm permanentError
	if errors.As(err, &perm) {
		return true
	}
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// Backoff bounds: the first retry comes quickly (a blip), later ones at most
// every maxBackoff, so that a dependency that comes back is noticed soon.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// retryPolicy is the pipeline's wait between attempts of a batch.
var retryPolicy = backoff.Policy{Initial: minBackoff, Max: maxBackoff, Jitter: 0.5}

// retries counts the attempts of one thing; next is the wait before the
// next one.
type retries struct{ n int }

func (r *retries) next() time.Duration {
	r.n++
	return retryPolicy.Delay(r.n)
}

func sleepCtx(ctx context.Context, d time.Duration) error { return backoff.Sleep(ctx, d) }

// retry runs fn until it succeeds, fails permanently, or ctx ends. Failures
// of Weaviate, PostgreSQL or the embedder are usually passing (a restart, a
// network blip): waiting keeps the slot where it is and loses nothing, while
// giving up would only stop the process and retry from further back.
func retry(ctx context.Context, log zerolog.Logger, what string, fn func() error) error {
	var b retries
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if isPermanent(err) || ctx.Err() != nil {
			return err
		}
		d := b.next()
		log.Warn().Err(err).Str("op", what).Int("attempt", attempt).Dur("backoff", d).Msg("retrying")
		if sleepCtx(ctx, d) != nil {
			return err
		}
	}
}
