package indexer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
)

// progress knows the WAL position up to which every change of the
// configured tables is in Weaviate: the applied position. Two facts prove a
// position applied:
//
//   - the tracker's confirmed position: every transaction committing at or
//     before it is acknowledged by Weaviate;
//   - a CaughtUp of the stream (a moment between transactions at which the
//     server had streamed its WAL through Through and the last transaction
//     sent was Sent): once the tracker confirmed Sent, everything committed
//     before Through is applied, including the WAL of tables we do not index
//     and of transactions that changed nothing we index.
//
// The second is what lets a reader wait for pg_current_wal_lsn() taken after
// its own commit: that position lies past the commit record, which the
// tracker (counting commit LSNs) never reaches by itself.
type progress struct {
	tracker *checkpoint.Tracker
	stream  interface{ CaughtUp() connector.CaughtUp }
	high    atomic.Uint64 // highest applied position proven so far
}

// waitPoll is how often Wait looks for a newer CaughtUp while the stream
// has not yet seen the awaited position.
const waitPoll = 5 * time.Millisecond

// Applied is the highest position proven applied. It never goes back.
func (p *progress) Applied() pglogrepl.LSN {
	return p.prove(p.stream.CaughtUp())
}

// prove raises the applied position with what the tracker and cu prove,
// and returns it.
func (p *progress) prove(cu connector.CaughtUp) pglogrepl.LSN {
	pos := p.tracker.Confirmed()
	if pos >= cu.Sent && cu.Through > pos {
		pos = cu.Through
	}
	for {
		h := p.high.Load()
		if uint64(pos) <= h {
			return pglogrepl.LSN(h)
		}
		if p.high.CompareAndSwap(h, uint64(pos)) {
			return pos
		}
	}
}

// Wait returns nil once every change up to lsn is applied, or ctx's error.
func (p *progress) Wait(ctx context.Context, lsn pglogrepl.LSN) error {
	for {
		cu := p.stream.CaughtUp()
		if p.prove(cu) >= lsn {
			return nil
		}
		// When the stream has already seen lsn, the only thing missing is the
		// tracker confirming what had been sent by then: wait for exactly
		// that (prove then succeeds with this cu, however far the stream has
		// moved on). Otherwise wait for the tracker to pass lsn, looking for
		// a newer CaughtUp every waitPoll.
		target := lsn
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if cu.Through >= lsn {
			target = cu.Sent
		} else {
			wctx, cancel = context.WithTimeout(ctx, waitPoll)
		}
		err := p.tracker.WaitConfirmed(wctx, target)
		cancel()
		if err == nil && p.prove(cu) >= lsn {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// parseLSN reads a pg_lsn in PostgreSQL's text form (hex/hex, e.g.
// 0/16B3748), strictly.
func parseLSN(s string) (pglogrepl.LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("%q is not an LSN like 0/16B3748", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not an LSN like 0/16B3748", s)
	}
	return pglogrepl.LSN(h<<32 | l), nil
}
