package embedding

import (
	"context"
	"sync"
	"time"
)

// breaker is a circuit breaker shared by every request of one embedder.
//
// Closed, requests go out. After threshold consecutive failed attempts it
// opens: requests wait, sending nothing, for the cooldown. Then one trial
// request (the probe) goes out while the others keep waiting; its success
// closes the circuit, its failure reopens it with twice the cooldown, up to
// maxCooldown. Independently, pause holds every request back until a time
// a rate-limited answer asked for.
type breaker struct {
	threshold   int
	cooldown    time.Duration
	maxCooldown time.Duration
	onChange    func(open bool)

	mu        sync.Mutex
	failures  int
	open      bool
	openUntil time.Time
	current   time.Duration // cooldown of the current open period
	probing   bool
	pauseTill time.Time
	changed   chan struct{} // closed when the state changes
}

func newBreaker(threshold int, cooldown, maxCooldown time.Duration, onChange func(bool)) *breaker {
	return &breaker{
		threshold: max(threshold, 1), cooldown: cooldown, maxCooldown: max(maxCooldown, cooldown),
		current: cooldown, onChange: onChange, changed: make(chan struct{}),
	}
}

// acquire waits until a request may go out. probe reports that this
// request is the trial of an open circuit; the caller must then report its
// outcome with success, failure or release.
func (b *breaker) acquire(ctx context.Context) (probe bool, err error) {
	for {
		b.mu.Lock()
		now := time.Now()
		var wait time.Duration // 0: until the state changes
		switch {
		case now.Before(b.pauseTill):
			wait = b.pauseTill.Sub(now)
		case !b.open:
			b.mu.Unlock()
			return false, nil
		case now.Before(b.openUntil):
			wait = b.openUntil.Sub(now)
		case b.probing:
			// Another request is the probe: wait for its outcome.
		default:
			b.probing = true
			b.mu.Unlock()
			return true, nil
		}
		changed := b.changed
		b.mu.Unlock()

		var timer *time.Timer
		var expired <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			expired = timer.C
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-changed:
		case <-expired:
		}
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return false, err
		}
	}
}

// notify wakes the waiters; b.mu must be held.
func (b *breaker) notify() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// success records an attempt the provider answered properly.
func (b *breaker) success(probe bool) {
	b.mu.Lock()
	b.failures = 0
	wasOpen := b.open
	if probe {
		b.probing = false
	}
	if wasOpen {
		b.open, b.current = false, b.cooldown
	}
	b.notify()
	b.mu.Unlock()
	if wasOpen && b.onChange != nil {
		b.onChange(false)
	}
}

// failure records a failed attempt.
func (b *breaker) failure(probe bool) {
	b.mu.Lock()
	b.failures++
	opened := false
	switch {
	case probe:
		b.probing = false
		b.current = min(2*b.current, b.maxCooldown)
		b.openUntil = time.Now().Add(b.current)
		b.notify()
	case !b.open && b.failures >= b.threshold:
		b.open, opened = true, true
		b.current = b.cooldown
		b.openUntil = time.Now().Add(b.current)
		b.notify()
	}
	b.mu.Unlock()
	if opened && b.onChange != nil {
		b.onChange(true)
	}
}

// release gives back a probe whose outcome says nothing about the provider
// (cancelled, rate-limited).
func (b *breaker) release(probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	b.probing = false
	b.notify()
	b.mu.Unlock()
}

// pause holds every request back until t.
func (b *breaker) pause(t time.Time) {
	b.mu.Lock()
	if t.After(b.pauseTill) {
		b.pauseTill = t
	}
	b.mu.Unlock()
}

func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}
