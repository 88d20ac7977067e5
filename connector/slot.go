package connector

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// OutputPlugin is the logical decoding plugin the connector's slot uses.
const OutputPlugin = "pgoutput"

// SlotState is a replication slot as pg_replication_slots shows it.
type SlotState struct {
	Exists         bool
	Plugin         string // output plugin; "" for a physical slot
	SlotType       string // "logical" or "physical"
	Database       string // database of a logical slot
	Active         bool
	ActivePID      int // walsender streaming from the slot; 0 when inactive
	ConfirmedFlush pglogrepl.LSN
	RestartLSN     pglogrepl.LSN
	WALStatus      string // reserved, extended, unreserved or lost
}

// CreatedSlot is the result of creating a slot.
type CreatedSlot struct {
	// ConsistentPoint is the LSN from which the slot streams changes: every
	// transaction committed after it is sent, none before.
	ConsistentPoint pglogrepl.LSN
	// SnapshotName is the exported snapshot (when asked for) that sees
	// exactly the data as of ConsistentPoint. It stays importable with SET
	// TRANSACTION SNAPSHOT only until the replication connection that
	// created the slot runs another command or closes.
	SnapshotName string
}

// ValidateSlotName checks a replication slot name as PostgreSQL does: 1 to
// 63 characters, lower-case letters, digits and underscores.
func ValidateSlotName(slot string) error {
	if slot == "" || len(slot) > 63 {
		return fmt.Errorf("invalid replication slot name %q: must be 1 to 63 characters", slot)
	}
	for i := 0; i < len(slot); i++ {
		c := slot[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("invalid replication slot name %q: only lower-case letters, digits and underscores are allowed", slot)
		}
	}
	return nil
}

// EnsureSlot makes sure the permanent pgoutput slot exists, creating it
// when missing. replConn must be a replication=database connection that is
// not streaming. For a new slot it returns created=true and the slot's
// consistent point; for an existing one created=false and its
// confirmed_flush_lsn. A slot of that name that is physical, uses another
// output plugin or belongs to another database is an error.
func EnsureSlot(ctx context.Context, replConn *pgconn.PgConn, slot string) (created bool, consistentPoint pglogrepl.LSN, err error) {
	st, err := replSlotState(ctx, replConn, slot)
	if err != nil {
		return false, 0, err
	}
	if !st.Exists {
		cs, err := CreateSlot(ctx, replConn, slot, false)
		if err == nil {
			return true, cs.ConsistentPoint, nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42710" { // duplicate_object: created concurrently
			return false, 0, err
		}
		if st, err = replSlotState(ctx, replConn, slot); err != nil {
			return false, 0, err
		}
	}
	if err := checkSlot(slot, st); err != nil {
		return false, 0, err
	}
	return false, st.ConfirmedFlush, nil
}

func checkSlot(slot string, st SlotState) error {
	if st.SlotType != "logical" {
		return fmt.Errorf("replication slot %s is a %s slot; cdc-indexer needs a logical slot using %s (drop it or configure another slot name)", slot, st.SlotType, OutputPlugin)
	}
	if st.Plugin != OutputPlugin {
		return fmt.Errorf("replication slot %s uses output plugin %q; cdc-indexer needs %s (drop it or configure another slot name)", slot, st.Plugin, OutputPlugin)
	}
	if st.WALStatus == "lost" {
		return fmt.Errorf("replication slot %s has lost required WAL (wal_status lost); drop it and snapshot again", slot)
	}
	return nil
}

// CreateSlot creates a permanent pgoutput slot over a replication=database
// connection. With exportSnapshot, the result names a snapshot of the data
// at the slot's consistent point (see CreatedSlot.SnapshotName).
func CreateSlot(ctx context.Context, replConn *pgconn.PgConn, slot string, exportSnapshot bool) (CreatedSlot, error) {
	if err := ValidateSlotName(slot); err != nil {
		return CreatedSlot{}, err
	}
	action := "NOEXPORT_SNAPSHOT"
	if exportSnapshot {
		action = "EXPORT_SNAPSHOT"
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, replConn, slot, OutputPlugin,
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
	if err != nil {
		return CreatedSlot{}, fmt.Errorf("create replication slot %s: %w", slot, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return CreatedSlot{}, fmt.Errorf("create replication slot %s: consistent point: %w", slot, err)
	}
	return CreatedSlot{ConsistentPoint: lsn, SnapshotName: res.SnapshotName}, nil
}

const slotStateColumns = `plugin, slot_type, database, active, COALESCE(active_pid, 0),
	COALESCE(confirmed_flush_lsn::text, '0/0'), COALESCE(restart_lsn::text, '0/0'), COALESCE(wal_status, '')
FROM pg_catalog.pg_replication_slots WHERE slot_name = `

// SlotInfo reads the slot's row of pg_replication_slots over a normal
// connection. A missing slot is not an error: Exists is false.
func SlotInfo(ctx context.Context, db Querier, slot string) (SlotState, error) {
	var st SlotState
	var plugin, database *string
	var confirmed, restart string
	err := db.QueryRow(ctx, "SELECT "+slotStateColumns+"$1", slot).Scan(
		&plugin, &st.SlotType, &database, &st.Active, &st.ActivePID, &confirmed, &restart, &st.WALStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return SlotState{}, nil
	}
	if err != nil {
		return SlotState{}, fmt.Errorf("replication slot %s: %w", slot, err)
	}
	st.Exists = true
	if plugin != nil {
		st.Plugin = *plugin
	}
	if database != nil {
		st.Database = *database
	}
	if err := st.parseLSNs(confirmed, restart); err != nil {
		return SlotState{}, fmt.Errorf("replication slot %s: %w", slot, err)
	}
	return st, nil
}

func (st *SlotState) parseLSNs(confirmed, restart string) (err error) {
	if st.ConfirmedFlush, err = pglogrepl.ParseLSN(confirmed); err != nil {
		return err
	}
	st.RestartLSN, err = pglogrepl.ParseLSN(restart)
	return err
}

// replSlotState is SlotInfo over a replication=database connection, which
// only speaks the simple query protocol. A slot of another database is
// reported as a clear error.
func replSlotState(ctx context.Context, replConn *pgconn.PgConn, slot string) (SlotState, error) {
	if err := ValidateSlotName(slot); err != nil {
		return SlotState{}, err
	}
	// The name is validated to [a-z0-9_], so it is safe inside quotes.
	sql := "SELECT current_database(), " + slotStateColumns + "'" + slot + "'"
	results, err := replConn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return SlotState{}, fmt.Errorf("replication slot %s: %w", slot, err)
	}
	if len(results) != 1 {
		return SlotState{}, fmt.Errorf("replication slot %s: got %d results", slot, len(results))
	}
	if len(results[0].Rows) == 0 {
		return SlotState{}, nil
	}
	r := results[0].Rows[0]
	if len(r) != 9 {
		return SlotState{}, fmt.Errorf("replication slot %s: got %d columns", slot, len(r))
	}
	st := SlotState{
		Exists:    true,
		Plugin:    string(r[1]),
		SlotType:  string(r[2]),
		Database:  string(r[3]),
		Active:    string(r[4]) == "t",
		WALStatus: string(r[8]),
	}
	if st.ActivePID, err = strconv.Atoi(string(r[5])); err != nil {
		return SlotState{}, fmt.Errorf("replication slot %s: active_pid: %w", slot, err)
	}
	if err := st.parseLSNs(string(r[6]), string(r[7])); err != nil {
		return SlotState{}, fmt.Errorf("replication slot %s: %w", slot, err)
	}
	if st.SlotType == "logical" && st.Database != string(r[0]) {
		return SlotState{}, fmt.Errorf("replication slot %s belongs to database %q, not %q; configure another slot name", slot, st.Database, string(r[0]))
	}
	return st, nil
}
