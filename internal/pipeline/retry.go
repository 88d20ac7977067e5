package pipeline

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"
)

// permanentError marks a failure that no retry can fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// isPermanent recognises our own marker and any error that says of itself
// that retrying cannot help (the sink's per-object rejections do).
func isPermanent(err error) bool {
	var perm permanentError
	if errors.As(err, &perm) {
		return true
	}
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// retry runs fn until it succeeds, fails permanently, or ctx ends. Failures
// of Weaviate, PostgreSQL or the embedder are usually passing (a restart, a
// network blip): waiting keeps the slot where it is and loses nothing, while
// giving up would only stop the process and retry from further back.
func retry(ctx context.Context, log zerolog.Logger, what string, fn func() error) error {
	backoff := 100 * time.Millisecond
	const maxBackoff = 10 * time.Second
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if isPermanent(err) || ctx.Err() != nil {
			return err
		}
		log.Warn().Err(err).Str("op", what).Int("attempt", attempt).Dur("backoff", backoff).Msg("retrying")
		jitter := time.Duration(rand.Int64N(int64(backoff) / 2))
		select {
		case <-time.After(backoff + jitter):
		case <-ctx.Done():
			return err
		}
		backoff = min(backoff*2, maxBackoff)
	}
}
