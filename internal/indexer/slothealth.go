package indexer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
)

// ErrSlot is wrapped by every error that means the slot can no longer keep
// the index exact: it is missing, has lost WAL, or went back behind the
// recorded checkpoint. Restarting does not help; the tables must be
// snapshotted again.
var ErrSlot = errors.New("replication slot unusable")

// ErrSlotInUse is wrapped by the error for a slot another process streams
// from.
var ErrSlotInUse = errors.New("replication slot in use")

// How often the slot is looked at while streaming.
var slotCheckInterval = 5 * time.Second

// activeGrace is how long a start waits for a slot another walsender holds:
// after a crash of the previous process the server needs a moment to notice
// the closed connection. A slot still held then belongs to a live reader.
var activeGrace = 5 * time.Second

// slotWhenFree reads the slot, waiting up to activeGrace while it is active.
func (e *Env) slotWhenFree(ctx context.Context, cfg *config.Config) (connector.SlotState, error) {
	deadline := time.Now().Add(activeGrace)
	for {
		st, err := connector.SlotInfo(ctx, e.Pool, cfg.Postgres.Slot)
		if err != nil || !st.Active || time.Now().After(deadline) {
			return st, err
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return st, err
		}
	}
}

// reSnapshot tells the operator how to start over from a new slot.
func reSnapshot(cfg *config.Config) string {
	return fmt.Sprintf("changes may have been skipped, so the index can no longer be kept exact from this slot; re-snapshot: stop cdc-indexer, "+
		"drop the slot if it still exists (SELECT pg_drop_replication_slot('%s')), forget its checkpoint (DELETE FROM %s.checkpoint WHERE slot = '%s'), "+
		"then run `cdc-indexer snapshot`", cfg.Postgres.Slot, connector.QuoteIdent(cfg.Postgres.StateSchema), cfg.Postgres.Slot)
}

// requireSlotOrFirstStart allows creating a missing slot only when nothing
// was ever streamed from it: with a recorded checkpoint, a missing slot was
// dropped (or the database restored or failed over), and the changes since
// the checkpoint are gone for good. A slot that lost WAL is refused too.
func (e *Env) requireSlotOrFirstStart(ctx context.Context, cfg *config.Config) error {
	st, err := connector.SlotInfo(ctx, e.Pool, cfg.Postgres.Slot)
	if err != nil {
		return fmt.Errorf("postgres.slot: %w", err)
	}
	if st.Exists && st.WALStatus == "lost" {
		return fmt.Errorf("postgres.slot: replication slot %s has lost WAL it still needed (wal_status lost; see max_slot_wal_keep_size): %w: %s",
			cfg.Postgres.Slot, ErrSlot, reSnapshot(cfg))
	}
	if st.Exists {
		return nil
	}
	cp, found, err := e.State.LoadCheckpoint(ctx, cfg.Postgres.Slot)
	if err != nil {
		return fmt.Errorf("postgres.slot: %w", err)
	}
	if found {
		return fmt.Errorf("postgres.slot: replication slot %s is missing, but cdc-indexer streamed from it up to %s: %w: %s",
			cfg.Postgres.Slot, cp, ErrSlot, reSnapshot(cfg))
	}
	return nil
}

// checkSlot vets the slot before streaming from it: it must exist, must not
// have lost WAL, must not be behind the recorded checkpoint (a recreated
// slot, or a restored database), and, at startup, must not be streamed by
// another process.
func (e *Env) checkSlot(ctx context.Context, cfg *config.Config, st connector.SlotState, startup bool) error {
	slot := cfg.Postgres.Slot
	if !st.Exists {
		return fmt.Errorf("replication slot %s disappeared: %w: %s", slot, ErrSlot, reSnapshot(cfg))
	}
	if st.WALStatus == "lost" {
		return fmt.Errorf("replication slot %s has lost WAL it still needed (wal_status lost; see max_slot_wal_keep_size): %w: %s", slot, ErrSlot, reSnapshot(cfg))
	}
	cp, found, err := e.State.LoadCheckpoint(ctx, slot)
	if err != nil {
		return err
	}
	if found && st.ConfirmedFlush < cp {
		return fmt.Errorf("replication slot %s is at %s, behind the checkpoint %s recorded while streaming from it: it was recreated or the database restored: %w: %s",
			slot, st.ConfirmedFlush, cp, ErrSlot, reSnapshot(cfg))
	}
	if startup && st.Active {
		return fmt.Errorf("replication slot %s is in use by PID %d: %w: another `cdc-indexer run` (or another consumer) streams from it, and a slot has one reader at a time; stop the other one or configure another postgres.slot",
			slot, st.ActivePID, ErrSlotInUse)
	}
	return nil
}

// slotHealth is the slot's row as the monitor reads it.
type slotHealth struct {
	exists     bool
	restartLSN pglogrepl.LSN
	walStatus  string
	current    pglogrepl.LSN // server's WAL position
}

func (e *Env) readSlotHealth(ctx context.Context, slot string) (slotHealth, error) {
	var h slotHealth
	var restart *string
	var walStatus *string
	var current string
	err := e.Pool.QueryRow(ctx, `SELECT restart_lsn::text, wal_status, pg_current_wal_lsn()::text
FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, slot).Scan(&restart, &walStatus, &current)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, nil
	}
	if err != nil {
		return h, err
	}
	h.exists = true
	if walStatus != nil {
		h.walStatus = *walStatus
	}
	if restart != nil {
		if h.restartLSN, err = pglogrepl.ParseLSN(*restart); err != nil {
			return h, err
		}
	}
	h.current, err = pglogrepl.ParseLSN(current)
	return h, err
}

// saveSlotCheckpoint records the slot's restart_lsn as the checkpoint.
//
// The checkpoint is what a later start compares the slot with to notice a
// slot that went back. It must be a position the slot has durably reached:
// PostgreSQL (before 17) keeps an advance of confirmed_flush_lsn in memory
// only, so a server restart can move it back to the last value written to
// disk, and a checkpoint taken from the live confirmed position would then
// look like a recreated slot. restart_lsn, however, is written to disk each
// time it moves, together with a confirmed position at least as far, so the
// slot never comes back from a restart behind it.
func (e *Env) saveSlotCheckpoint(ctx context.Context, slot string, saved pglogrepl.LSN) (pglogrepl.LSN, error) {
	h, err := e.readSlotHealth(ctx, slot)
	if err != nil || !h.exists || h.restartLSN <= saved {
		return saved, err
	}
	if err := e.State.SaveCheckpoint(ctx, slot, h.restartLSN); err != nil {
		return saved, err
	}
	return h.restartLSN, nil
}

// monitorSlot, until ctx ends, keeps the checkpoint up to date (see
// saveSlotCheckpoint) and warns while the slot retains more WAL than
// postgres.max_retained_wal or has lost WAL.
func (e *Env) monitorSlot(ctx context.Context, cfg *config.Config, log zerolog.Logger) {
	slot := cfg.Postgres.Slot
	maxRetained, _ := config.ParseSize(cfg.Postgres.MaxRetainedWAL) // validated
	var saved pglogrepl.LSN
	var warned time.Time
	tick := time.NewTicker(slotCheckInterval)
	defer tick.Stop()
	for {
		h, err := e.readSlotHealth(ctx, slot)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Debug().Err(err).Msg("slot check failed")
		case !h.exists:
			log.Error().Str("slot", slot).Msg("replication slot is missing; " + reSnapshot(cfg))
		default:
			if h.walStatus == "lost" {
				log.Error().Str("slot", slot).Msg("replication slot has lost WAL (wal_status lost); " + reSnapshot(cfg))
			}
			if h.restartLSN > saved {
				if err := e.State.SaveCheckpoint(ctx, slot, h.restartLSN); err != nil {
					log.Warn().Err(err).Msg("saving checkpoint")
				} else {
					saved = h.restartLSN
				}
			}
			retained := int64(0)
			if h.current > h.restartLSN && h.restartLSN != 0 {
				retained = int64(h.current - h.restartLSN)
			}
			if maxRetained > 0 && retained > maxRetained && time.Since(warned) > time.Minute {
				warned = time.Now()
				log.Warn().Str("slot", slot).Int64("retained_wal_bytes", retained).Str("max_retained_wal", cfg.Postgres.MaxRetainedWAL).
					Str("wal_status", h.walStatus).
					Msg("replication slot retains more WAL than postgres.max_retained_wal: the connector is behind (or a long transaction is open); the server cannot recycle this WAL")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// heartbeatSQL writes a non-transactional logical decoding message: a WAL
// record the slot decodes (pgoutput skips messages unless asked for them),
// so the server's streamed position, and with it the confirmed position,
// moves on an idle database too.
const heartbeatSQL = `SELECT pg_logical_emit_message(false, 'cdc_indexer_heartbeat', now()::text)`

// heartbeat writes heartbeatSQL every interval until ctx ends.
func (e *Env) heartbeat(ctx context.Context, interval time.Duration, log zerolog.Logger) {
	if interval <= 0 {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := e.Pool.Exec(ctx, heartbeatSQL); err != nil && ctx.Err() == nil {
			log.Debug().Err(err).Msg("heartbeat failed")
		}
	}
}
