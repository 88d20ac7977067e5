package indexer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
)

// caughtUp stands in for the stream's CaughtUp reports.
type caughtUp struct {
	mu sync.Mutex
	cu connector.CaughtUp
}

func (c *caughtUp) CaughtUp() connector.CaughtUp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cu
}

func (c *caughtUp) set(through, sent pglogrepl.LSN) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cu = connector.CaughtUp{Through: through, Sent: sent}
}

func waitAsync(p *progress, ctx context.Context, lsn pglogrepl.LSN) <-chan error {
	done := make(chan error, 1)
	go func() { done <- p.Wait(ctx, lsn) }()
	return done
}

func requireBlocked(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("wait returned %v before its position was applied", err)
	case <-time.After(50 * time.Millisecond):
	}
}

func requireDone(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("wait did not return after its position was applied")
	}
}

func TestProgressAppliedPosition(t *testing.T) {
	tr := checkpoint.NewTracker(100)
	s := &caughtUp{}
	p := &progress{tracker: tr, stream: s}
	if got := p.Applied(); got != 100 {
		t.Fatalf("applied %s, want the tracker's 0/64", got)
	}
	// The stream saw the WAL up to 200 with nothing sent: all of it applied.
	s.set(200, 0)
	if got := p.Applied(); got != 200 {
		t.Fatalf("applied %s, want 0/C8", got)
	}
	// A transaction sent but not acknowledged holds the position back.
	tx := tr.Add(250, 1)
	tr.Commit(250)
	s.set(400, 250)
	if got := p.Applied(); got != 200 {
		t.Fatalf("applied %s while 0/FA is in flight, want 0/C8", got)
	}
	tr.Done(tx, 1)
	if got := p.Applied(); got != 400 {
		t.Fatalf("applied %s, want 0/190", got)
	}
	// A later, smaller report (a new connection) never moves it back.
	s.set(300, 0)
	if got := p.Applied(); got != 400 {
		t.Fatalf("applied went back to %s", got)
	}
}

// A write to an indexed table: the awaited position (after the commit
// record) is reached through the stream's report once the tracker confirms
// the transaction, even while newer transactions are in flight.
func TestProgressWaitForOwnWrite(t *testing.T) {
	tr := checkpoint.NewTracker(100)
	s := &caughtUp{}
	p := &progress{tracker: tr, stream: s}
	tx := tr.Add(120, 2)
	tr.Commit(120)
	s.set(130, 120) // the server had streamed past the commit record
	done := waitAsync(p, context.Background(), 128)
	requireBlocked(t, done)

	// The stream moves on to a transaction that is not applied yet.
	tx2 := tr.Add(200, 1)
	tr.Commit(200)
	s.set(210, 200)
	tr.Done(tx, 1)
	requireBlocked(t, done)
	tr.Done(tx, 1)
	requireDone(t, done)
	tr.Done(tx2, 1)
}

// A write to a table that is not indexed only moves the stream's report.
func TestProgressWaitForUnrelatedWrite(t *testing.T) {
	tr := checkpoint.NewTracker(100)
	s := &caughtUp{}
	p := &progress{tracker: tr, stream: s}
	done := waitAsync(p, context.Background(), 180)
	requireBlocked(t, done)
	s.set(190, 0)
	requireDone(t, done)
}

func TestProgressWaitTimesOut(t *testing.T) {
	tr := checkpoint.NewTracker(100)
	p := &progress{tracker: tr, stream: &caughtUp{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := p.Wait(ctx, 1000); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait: %v, want deadline exceeded", err)
	}
}

func TestParseLSN(t *testing.T) {
	for in, want := range map[string]pglogrepl.LSN{"0/16B3748": 0x16B3748, "1/0": 1 << 32, "FFFFFFFF/FFFFFFFF": 1<<64 - 1, "a/b": 0xa<<32 | 0xb} {
		got, err := parseLSN(in)
		if err != nil || got != want {
			t.Errorf("parseLSN(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "/1", "1/", "0/XYZ", "1/2/3", "-1/0", "100000000/0", "0/ 1", "banana"} {
		if _, err := parseLSN(in); err == nil {
			t.Errorf("parseLSN(%q) accepted", in)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"5s": 5 * time.Second, "250ms": 250 * time.Millisecond, "2": 2 * time.Second, "0.5": 500 * time.Millisecond, "1h": maxWaitTimeout} {
		if got, err := parseTimeout(in); err != nil || got != want {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"soon", "-1s", "-3", "NaN"} {
		if _, err := parseTimeout(in); err == nil {
			t.Errorf("parseTimeout(%q) accepted", in)
		}
	}
}

func TestQuantile(t *testing.T) {
	bounds := []float64{0.01, 0.1, 1}
	cumulative := []float64{50, 90, 100}
	if got := quantile(0.5, 100, bounds, cumulative); got != 0.01 {
		t.Errorf("p50 = %v, want 0.01", got)
	}
	if got := quantile(0.7, 100, bounds, cumulative); got != 0.055 {
		t.Errorf("p70 = %v, want 0.055", got)
	}
	if got := quantile(0.99, 100, bounds, cumulative); got != 0.91 {
		t.Errorf("p99 = %v, want 0.91", got)
	}
}
