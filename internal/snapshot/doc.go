// Package snapshot backfills existing rows: it reads tables in a consistent
// snapshot, in primary-key order, in chunks, with several readers in
// parallel, records how far it got so that a stopped snapshot continues
// where it stopped, and feeds every row through the pipeline's backfill lane
// (pipeline.Pipeline.Backfill), so that snapshot rows and streamed changes
// share one transform, one sink and one per-key order.
//
// # Snapshot points
//
// Every read happens in a snapshot exported by CREATE_REPLICATION_SLOT ...
// EXPORT_SNAPSHOT and imported by each reader with SET TRANSACTION SNAPSHOT
// in a REPEATABLE READ transaction. PostgreSQL guarantees that such a
// snapshot sees exactly the transactions whose commit record lies before the
// slot's consistent point CP, and that the slot streams exactly those at or
// after CP. The connector stamps every change with the LSN of its commit
// record (pgoutput's final_lsn), so with
//
//	at = CP - 1
//
// a transaction is visible to the snapshot if and only if its commit LSN is
// at most `at`, and is streamed if and only if its commit LSN is above `at`.
// The pipeline drops a snapshot row of a key whose state records a later
// write or removal (state LSN > at) or a later truncate, so that comparison
// is exact.
//
// The initial snapshot (no slot yet) creates the connector's own slot this
// way: the stream `run` starts later begins at CP and the snapshot holds
// everything before it, so no change is missed and none is applied twice.
// Every later snapshot (a resumed one, a re-snapshot, an online backfill)
// gets a fresh snapshot the same way through a temporary slot, which is
// dropped as soon as every reader imported its snapshot.
//
// Why not pg_current_wal_lsn(): a transaction's commit record is written
// (and flushed, and with synchronous replication acknowledged by a standby)
// before the transaction becomes visible to new snapshots. Read before the
// snapshot is taken, pg_current_wal_lsn() may lie past the commit record of
// a transaction the snapshot does not see yet; read after, it certainly may.
// Either way a change with commit LSN <= at can be missing from the
// snapshot, and once the stream applied it (state LSN <= at) the older
// snapshot row would overwrite it, and nothing would repair it until the
// row changed again. The exported snapshot has no such window.
//
// # Online backfill
//
// While `run` streams the slot, a backfill must not stop the stream and must
// never let an older snapshot read overwrite a newer streamed change.
// `snapshot` then only records a request (backfill_requests); the running
// connector reads the table in a fresh exported snapshot and passes the rows
// to its own pipeline at `at`. Per key, the pipeline applies the stream's
// changes in commit order and the snapshot row at some point in between, on
// the same worker. When the snapshot row comes:
//
//   - If the state holds a change above `at`, the index already has a newer
//     version than the snapshot's: the row is dropped. A removal leaves a
//     tombstone in the state for exactly this comparison.
//   - Otherwise every change applied so far has a commit LSN <= at, and the
//     snapshot includes all of those (and no later one, or else a later one
//     it includes is still to be streamed). Its version is therefore at least
//     as new as the index's. Changes between the stream's position and `at`
//     may still be streamed after it and briefly rewrite an older version,
//     but the stream then applies every later change too, ending on the
//     row's current version; if none follows, the snapshot's version is the
//     current one.
//
// Live changes go first: a worker takes snapshot rows only when no live
// change waits, so a backfill never slows the stream down.
//
// # Resuming
//
// Progress is recorded per key range once the pipeline has indexed a
// chunk. A snapshot stopped half way (kill -9, say) cannot import its
// snapshot again, so the remaining ranges are read in a fresh snapshot at a
// newer point. That is sound because of one invariant: every row's index
// entry is at least as new as the row was at the slot's confirmed position,
// and the stream replays every change after that position.
//
//   - A snapshot row is written only if the state holds nothing newer than
//     its point, and its version includes every change up to that point;
//     the first chunks were read at or after the slot's consistent point,
//     later ones later still. So the invariant holds for every key read.
//   - Nothing confirms the slot past a change Weaviate does not have, so
//     the replay covers everything after the entries' versions; it may
//     briefly rewrite older versions but ends on each key's latest change.
//   - Rows inserted into a range after it was read, or removed from a range
//     before it is read, are changes after the slot's position and come
//     from the stream.
//
// This holds whether `snapshot` resumes by itself (the slot did not move:
// no `run` streamed while it held the slot's lock) or a running connector
// finishes the interrupted snapshot online (its rows then also pass the
// online rules above), and whichever snapshot read a key.
//
// Creating the slot forgets all progress: a range read before the new slot
// existed may miss changes that no stream will deliver. The new slot's
// consistent point is recorded as the checkpoint, so that a slot dropped
// later is noticed instead of silently recreated.
//
// A snapshot that indexes by itself also removes the rows the state knows
// but its snapshot does not hold (deleted while no stream delivered the
// removal, e.g. before the slot was recreated): nothing else applies
// changes then, and the stream replays whatever happened to them since.
//
// # Exclusion
//
// One process at a time applies changes for a slot. `run` and a `snapshot`
// that indexes itself take a session-level advisory lock on the slot
// (TryLock); a `snapshot` that finds the slot streamed by a running
// connector asks it for the backfill instead.
//
// # Tombstones
//
// Tombstones only matter to a backfill whose snapshot is older than the
// removal. A backfill that starts after a removal was recorded reads a
// snapshot that includes it, so the holder of the lock purges them whenever
// no backfill is in flight: at the start of `run`, and after each backfill.
package snapshot
