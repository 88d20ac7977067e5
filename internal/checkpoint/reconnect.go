package checkpoint

// abandonOpen drops the open transaction from the queue when another
// transaction starts before its Commit was seen.
//
// PostgreSQL sends transactions one after the other (pgoutput without
// streaming of in-progress transactions), so a transaction still open when
// the next one begins can only have been cut off by a lost replication
// connection. The new connection resumes from the slot's confirmed position,
// which is before the cut-off transaction, so the server sends it again in
// full: either with the same commit LSN as the first message after the
// reconnect (then openTxn keeps using the open record, and the Commit that
// follows closes it), or later, after older transactions that are replayed
// first. In the second case the partial record must not stay in the queue:
// it would never see its Commit and would block every later transaction
// forever. Dropping it is safe because the replay is tracked by a record of
// its own that needs every change of the transaction acknowledged; the
// changes the cut-off record already handed out still call Done on it, which
// only updates the in-flight count. Marking it committed instead would be
// unsound: its changes the old connection never delivered would count as
// acknowledged.
//
// Transactions before the open one keep their records: the replay of a
// transaction that is already queued (or already confirmed) adds a second
// record with the same commit LSN, which confirms nothing earlier than the
// first one could, and Confirmed never goes back.
func (t *Tracker) abandonOpen() {
	if n := len(t.queue); n > 0 && t.queue[n-1] == t.open && !t.open.committed {
		t.queue[n-1] = nil
		t.queue = t.queue[:n-1]
	}
	t.open = nil
	t.advance()
}
