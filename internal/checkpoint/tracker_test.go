package checkpoint

import (
	"context"
	"testing"
	"time"
)

func TestConfirmsOnlyFullyAcknowledgedPrefix(t *testing.T) {
	tr := NewTracker(100)
	a := tr.Add(200, 2)
	tr.Commit(200)
	b := tr.Add(300, 1)
	tr.Commit(300)

	tr.Done(b, 1) // a later transaction finishing first must not be confirmed
	if got := tr.Confirmed(); got != 100 {
		t.Fatalf("confirmed %v after only the later txn finished; want 100", got)
	}
	tr.Done(a, 1)
	if got := tr.Confirmed(); got != 100 {
		t.Fatalf("confirmed %v with a change of the first txn pending; want 100", got)
	}
	tr.Done(a, 1)
	if got := tr.Confirmed(); got != 300 {
		t.Fatalf("confirmed %v; want 300", got)
	}
}

func TestOpenTransactionIsNotConfirmed(t *testing.T) {
	tr := NewTracker(0)
	a := tr.Add(500, 1)
	tr.Done(a, 1) // all its changes so far are done, but its commit is not seen yet
	if got := tr.Confirmed(); got != 0 {
		t.Fatalf("confirmed %v before commit; want 0", got)
	}
	b := tr.Add(500, 1)
	if a != b {
		t.Fatal("changes of one transaction got separate records")
	}
	tr.Commit(500)
	if got := tr.Confirmed(); got != 0 {
		t.Fatalf("confirmed %v with a pending change; want 0", got)
	}
	tr.Done(b, 1)
	if got := tr.Confirmed(); got != 500 {
		t.Fatalf("confirmed %v; want 500", got)
	}
}

func TestEmptyTransactionAndObserve(t *testing.T) {
	tr := NewTracker(10)
	tr.Commit(20)
	if got := tr.Confirmed(); got != 20 {
		t.Fatalf("empty txn: confirmed %v; want 20", got)
	}
	a := tr.Add(30, 1)
	tr.Observe(99) // in flight: must be ignored
	if got := tr.Confirmed(); got != 20 {
		t.Fatalf("observe with work in flight moved confirmed to %v", got)
	}
	tr.Commit(30)
	tr.Done(a, 1)
	tr.Observe(99)
	if got := tr.Confirmed(); got != 99 {
		t.Fatalf("observe when idle: confirmed %v; want 99", got)
	}
	tr.Observe(50)
	if got := tr.Confirmed(); got != 99 {
		t.Fatalf("confirmed moved backwards to %v", got)
	}
}

func TestWaits(t *testing.T) {
	tr := NewTracker(0)
	a := tr.Add(7, 3)
	tr.Commit(7)
	go func() {
		time.Sleep(10 * time.Millisecond)
		tr.Done(a, 3)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.WaitConfirmed(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if err := tr.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if n := tr.InFlight(); n != 0 {
		t.Fatalf("in flight %d", n)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	tr.Add(8, 1)
	if err := tr.WaitIdle(short); err == nil {
		t.Fatal("WaitIdle returned with work in flight")
	}
}
