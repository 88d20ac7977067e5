// Package checkpoint decides which replication position is safe to confirm.
//
// PostgreSQL delivers transactions in commit order, but the pipeline applies
// their changes in parallel and out of order. The slot may only be told that
// a transaction is flushed once every change of it, and of every transaction
// before it, has been acknowledged by Weaviate; otherwise a crash would lose
// the unacknowledged changes for good. The Tracker keeps one small record per
// open transaction (a counter, never the changes themselves), so a transaction
// of a million rows costs the same memory as one of a single row.
package checkpoint

import (
	"context"
	"sync"

	"github.com/jackc/pglogrepl"
)

// Txn is a transaction whose changes are being applied.
type Txn struct {
	lsn       pglogrepl.LSN
	pending   int
	committed bool
}

// LSN is the transaction's commit LSN.
func (t *Txn) LSN() pglogrepl.LSN { return t.lsn }

// Tracker follows transactions from the stream to Weaviate's acknowledgement.
// Add and Commit must be called in stream order from one goroutine; Done may
// be called from any goroutine.
type Tracker struct {
	mu        sync.Mutex
	changed   *sync.Cond
	queue     []*Txn // open transactions in commit order
	open      *Txn   // the transaction currently receiving changes
	confirmed pglogrepl.LSN
	inflight  int // changes added and not yet done, across all transactions
}

// NewTracker starts tracking from a position already confirmed (the slot's
// confirmed_flush_lsn or the persisted checkpoint).
func NewTracker(confirmed pglogrepl.LSN) *Tracker {
	t := &Tracker{confirmed: confirmed}
	t.changed = sync.NewCond(&t.mu)
	return t
}

// Add registers n units of work of the transaction committing at lsn and
// returns it; each unit must later be passed to Done.
func (t *Tracker) Add(lsn pglogrepl.LSN, n int) *Txn {
	t.mu.Lock()
	defer t.mu.Unlock()
	tx := t.openTxn(lsn)
	tx.pending += n
	t.inflight += n
	return tx
}

// Commit marks the transaction committing at lsn complete: no more changes of
// it will be added. A transaction without changes is confirmed as soon as the
// ones before it are.
func (t *Tracker) Commit(lsn pglogrepl.LSN) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tx := t.openTxn(lsn)
	tx.committed = true
	t.open = nil
	t.advance()
}

func (t *Tracker) openTxn(lsn pglogrepl.LSN) *Txn {
	if t.open != nil && t.open.lsn == lsn {
		return t.open
	}
	if t.open != nil {
		t.abandonOpen()
	}
	tx := &Txn{lsn: lsn}
	t.queue = append(t.queue, tx)
	t.open = tx
	return tx
}

// Done acknowledges n units of work of tx.
func (t *Tracker) Done(tx *Txn, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tx.pending -= n
	t.inflight -= n
	if tx.pending < 0 {
		panic("checkpoint: more work done than added")
	}
	t.advance()
	t.changed.Broadcast()
}

// advance pops every finished transaction at the head of the queue.
func (t *Tracker) advance() {
	i := 0
	for ; i < len(t.queue); i++ {
		tx := t.queue[i]
		if !tx.committed || tx.pending > 0 {
			break
		}
		if tx.lsn > t.confirmed {
			t.confirmed = tx.lsn
		}
	}
	if i > 0 {
		clear(t.queue[:i])
		t.queue = t.queue[i:]
		t.changed.Broadcast()
	}
}

// Confirmed is the highest commit LSN whose transaction, and every one before
// it, is fully acknowledged.
func (t *Tracker) Confirmed() pglogrepl.LSN {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.confirmed
}

// Observe raises the confirmed position to lsn when nothing is in flight: the
// stream calls it with the server's WAL end on an idle connection, so that
// WAL holding only unrelated changes is released.
func (t *Tracker) Observe(lsn pglogrepl.LSN) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.queue) == 0 && lsn > t.confirmed {
		t.confirmed = lsn
		t.changed.Broadcast()
	}
}

// InFlight is the number of units of work added and not yet done.
func (t *Tracker) InFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inflight
}

// WaitIdle blocks until no work is in flight or ctx ends.
func (t *Tracker) WaitIdle(ctx context.Context) error {
	return t.wait(ctx, func() bool { return t.inflight == 0 })
}

// WaitConfirmed blocks until the confirmed position reaches lsn or ctx ends.
func (t *Tracker) WaitConfirmed(ctx context.Context, lsn pglogrepl.LSN) error {
	return t.wait(ctx, func() bool { return t.confirmed >= lsn })
}

func (t *Tracker) wait(ctx context.Context, done func() bool) error {
	stop := context.AfterFunc(ctx, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.changed.Broadcast()
	})
	defer stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	for !done() {
		if err := ctx.Err(); err != nil {
			return err
		}
		t.changed.Wait()
	}
	return nil
}
