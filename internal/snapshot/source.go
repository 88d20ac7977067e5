package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

// Export is an exported snapshot and the position it stands for: it sees
// exactly the transactions whose commit LSN is at most At. Readers import it
// while the replication connection that exported it stays idle and open.
type Export struct {
	Name string
	// ConsistentPoint is the exporting slot's consistent point: a stream of
	// that slot starts there.
	ConsistentPoint pglogrepl.LSN
	// At is ConsistentPoint-1: the highest commit LSN the snapshot includes
	// (see the package documentation).
	At pglogrepl.LSN

	mu   sync.Mutex
	conn *pgconn.PgConn
}

// Release closes the exporting connection, which drops a temporary slot.
// The snapshot can no longer be imported afterwards; readers that imported
// it keep it.
func (x *Export) Release(ctx context.Context) {
	if x == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.conn != nil {
		cctx, cancel := closeContext(ctx)
		defer cancel()
		_ = x.conn.Close(cctx)
		x.conn = nil
	}
}

func newExport(conn *pgconn.PgConn, cs connector.CreatedSlot) (*Export, error) {
	if !snapshotName.MatchString(cs.SnapshotName) {
		return nil, fmt.Errorf("unexpected exported snapshot name %q", cs.SnapshotName)
	}
	if cs.ConsistentPoint == 0 {
		return nil, fmt.Errorf("slot reported consistent point 0/0")
	}
	return &Export{Name: cs.SnapshotName, ConsistentPoint: cs.ConsistentPoint, At: cs.ConsistentPoint - 1, conn: conn}, nil
}

// snapshotName is the form of PostgreSQL's exported snapshot names
// (00000003-0000001B-1); checked because the name is spliced into SQL.
var snapshotName = regexp.MustCompile(`^[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+$`)

// CreateSlot creates the connector's permanent slot and exports the
// snapshot of its consistent point: `run` streams from there everything the
// snapshot does not hold.
func CreateSlot(ctx context.Context, dsn, slot string) (*Export, error) {
	conn, err := connector.ConnectReplication(ctx, dsn)
	if err != nil {
		return nil, err
	}
	cs, err := connector.CreateSlot(ctx, conn, slot, true)
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	x, err := newExport(conn, cs)
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return x, nil
}

// Fresh exports a snapshot of now through a temporary slot named after
// slot. The temporary slot lives until Release (or the connection drops).
func Fresh(ctx context.Context, dsn, slot string) (*Export, error) {
	conn, err := connector.ConnectReplication(ctx, dsn)
	if err != nil {
		return nil, err
	}
	name := tempSlotName(slot)
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, name, connector.OutputPlugin,
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("export a snapshot (temporary slot %s): %w", name, err)
	}
	cp, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("temporary slot %s: consistent point: %w", name, err)
	}
	x, err := newExport(conn, connector.CreatedSlot{ConsistentPoint: cp, SnapshotName: res.SnapshotName})
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return x, nil
}

func tempSlotName(slot string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	base := slot
	if len(base) > 40 {
		base = base[:40]
	}
	return base + "_snapshot_" + hex.EncodeToString(b[:])
}

// Lock is the session-level advisory lock that lets one process at a time
// apply changes for a slot: `run`, or a `snapshot` indexing by itself. It is
// held by a connection of its own and released when that closes, also when
// the process dies.
type Lock struct {
	conn *pgx.Conn
}

// LockKey is the advisory lock key of a slot in a state schema.
func LockKey(stateSchema, slot string) int64 {
	h := fnv.New64a()
	h.Write([]byte("cdc-indexer slot\x00" + stateSchema + "\x00" + slot))
	return int64(h.Sum64())
}

// TryLock takes the slot's lock if it is free; it returns nil when another
// session holds it.
func TryLock(ctx context.Context, dsn, stateSchema, slot string) (*Lock, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres.dsn: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", LockKey(stateSchema, slot)).Scan(&ok); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("lock slot %s: %w", slot, err)
	}
	if !ok {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil
	}
	return &Lock{conn: conn}, nil
}

// Alive reports whether the lock's connection still works (a restart of
// PostgreSQL releases the lock).
func (l *Lock) Alive(ctx context.Context) bool {
	return l != nil && l.conn.Ping(ctx) == nil
}

// Release gives the lock up.
func (l *Lock) Release(ctx context.Context) {
	if l != nil {
		cctx, cancel := closeContext(ctx)
		defer cancel()
		// Unlock first: the server drops a closed session's locks only
		// once its backend has noticed, which may take a moment.
		_, _ = l.conn.Exec(cctx, "SELECT pg_advisory_unlock_all()")
		l.conn.Close(cctx)
	}
}

// closeContext bounds closing a connection, also after ctx ended.
func closeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}
