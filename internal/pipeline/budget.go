package pipeline

import (
	"context"
	"sync"
)

// Budget bounds the bytes of row data the connector holds at once: changes
// queued for the workers, the batches they apply, snapshot rows read ahead,
// and the values re-read from the table for them. Item counts alone do not
// bound memory: 4,096 queued changes are 4 MB of 1 KB rows but 400 MB of
// 100 KB rows, which after an outage is an out-of-memory kill and then a
// crash loop over the same backlog.
//
// Whoever takes work in (the stream's dispatcher, a snapshot reader)
// acquires its bytes first and waits while the budget is spent: that is the
// backpressure that slows the reader, never a drop. Work is released when it
// is applied. A row larger than the whole budget takes all of it and goes
// through alone.
//
// Values re-read while a batch applies are charged without waiting (the
// worker holding the batch is what frees the budget, so it must not wait
// for it); they may overdraw the budget for the batch's duration, and new
// work waits until the overdraft is paid back.
type Budget struct {
	total int64

	mu      sync.Mutex
	held    int64
	changed chan struct{} // closed and replaced whenever held drops
	onHeld  func(int64)
}

// NewBudget returns a budget of total bytes; total <= 0 means unbounded
// (nil Budget behaves the same).
func NewBudget(total int64) *Budget {
	if total <= 0 {
		return nil
	}
	return &Budget{total: total, changed: make(chan struct{})}
}

// Total is the budget in bytes, 0 when unbounded.
func (b *Budget) Total() int64 {
	if b == nil {
		return 0
	}
	return b.total
}

// Held is the bytes currently held.
func (b *Budget) Held() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

// Observe calls f with the held bytes whenever they change (a metric).
func (b *Budget) Observe(f func(held int64)) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.onHeld = f
	b.mu.Unlock()
}

// Acquire waits until n bytes are free and takes them. It returns the bytes
// taken, which the caller hands back with Release: n, or the whole budget
// for a larger n.
func (b *Budget) Acquire(ctx context.Context, n int64) (int64, error) {
	if b == nil {
		return 0, nil
	}
	n = min(n, b.total)
	for {
		b.mu.Lock()
		if b.held+n <= b.total {
			b.take(n)
			b.mu.Unlock()
			return n, nil
		}
		wait := b.changed
		b.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// TryAcquire takes n bytes (at most the whole budget) if they are free now.
func (b *Budget) TryAcquire(n int64) (int64, bool) {
	if b == nil {
		return 0, true
	}
	n = min(n, b.total)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held+n > b.total {
		return 0, false
	}
	b.take(n)
	return n, true
}

// Charge takes n bytes without waiting, even past the budget.
func (b *Budget) Charge(n int64) int64 {
	if b == nil || n <= 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.take(n)
	return n
}

// Release hands back bytes Acquire, TryAcquire or Charge took.
func (b *Budget) Release(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
	if b.held < 0 {
		panic("pipeline: budget released more than it held")
	}
	close(b.changed)
	b.changed = make(chan struct{})
	if b.onHeld != nil {
		b.onHeld(b.held)
	}
}

func (b *Budget) take(n int64) {
	b.held += n
	if b.onHeld != nil {
		b.onHeld(b.held)
	}
}
