package checkpoint

import "testing"

// A connection lost in the middle of transaction 300: the new connection
// replays from the slot's confirmed position, 100, so 200 and 300 come again.
func TestReplayAfterCutOffTransaction(t *testing.T) {
	tr := NewTracker(100)
	a := tr.Add(200, 1)
	tr.Commit(200)
	b := tr.Add(300, 2) // the connection breaks before 300's commit arrives

	// Replay: 200 again, then 300 in full.
	a2 := tr.Add(200, 1)
	tr.Commit(200)
	b2 := tr.Add(300, 3)
	tr.Commit(300)
	if b2 == b {
		t.Fatal("the replay of 300 reused the cut-off record")
	}

	tr.Done(a2, 1)
	if got := tr.Confirmed(); got != 100 {
		t.Fatalf("confirmed %v while the first copy of 200 is pending; want 100", got)
	}
	tr.Done(a, 1)
	if got := tr.Confirmed(); got != 200 {
		t.Fatalf("confirmed %v; want 200", got)
	}
	tr.Done(b, 2) // the cut-off copy finishing confirms nothing
	if got := tr.Confirmed(); got != 200 {
		t.Fatalf("confirmed %v after the cut-off copy of 300 finished; want 200", got)
	}
	tr.Done(b2, 2)
	if got := tr.Confirmed(); got != 200 {
		t.Fatalf("confirmed %v with a change of the replayed 300 pending; want 200", got)
	}
	tr.Done(b2, 1)
	if got := tr.Confirmed(); got != 300 {
		t.Fatalf("confirmed %v; want 300", got)
	}
	if n := tr.InFlight(); n != 0 {
		t.Fatalf("in flight %d, want 0", n)
	}
}

// The replay starts with the cut-off transaction itself: its record stays
// open and is closed by the replay's commit, after every change of both
// copies is done.
func TestReplayStartingWithCutOffTransaction(t *testing.T) {
	tr := NewTracker(100)
	b := tr.Add(300, 1) // cut off
	b2 := tr.Add(300, 2)
	tr.Commit(300)
	if b2 != b {
		t.Fatal("expected the open record to be reused")
	}
	tr.Done(b, 2)
	if got := tr.Confirmed(); got != 100 {
		t.Fatalf("confirmed %v with a change pending; want 100", got)
	}
	tr.Done(b, 1)
	if got := tr.Confirmed(); got != 300 {
		t.Fatalf("confirmed %v; want 300", got)
	}
}

// Older commit LSNs after a reconnect never move the position back.
func TestReplayOfConfirmedTransactions(t *testing.T) {
	tr := NewTracker(100)
	a := tr.Add(200, 1)
	tr.Commit(200)
	tr.Done(a, 1)
	if got := tr.Confirmed(); got != 200 {
		t.Fatalf("confirmed %v; want 200", got)
	}
	a2 := tr.Add(150, 1) // replayed from further back than the tracker knows
	tr.Commit(150)
	tr.Done(a2, 1)
	if got := tr.Confirmed(); got != 200 {
		t.Fatalf("confirmed %v after a replay of an older transaction; want 200", got)
	}
}
