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

// backoff is an exponential backoff with jitter; the zero value starts at
// minBackoff.
type backoff struct{ cur time.Duration }

// next returns the wait before the next attempt.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = minBackoff
	}
	d := b.cur + time.Duration(rand.Int64N(int64(b.cur)/2+1))
	b.cur = min(b.cur*2, maxBackoff)
	return d
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retry runs fn until it succeeds, fails permanently, or ctx ends. Failures
// of Weaviate, PostgreSQL or the embedder are usually passing (a restart, a
// network blip): waiting keeps the slot where it is and loses nothing, while
// giving up would only stop the process and retry from further back.
func retry(ctx context.Context, log zerolog.Logger, what string, fn func() error) error {
	var b backoff
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
