package indexer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
)

// standbyPoll is how often a standby looks at the slot. With the server's
// own notice of a dead holder (its connection closes with the process) it
// bounds the takeover well within the contract's 10 seconds.
var standbyPoll = 500 * time.Millisecond

// RunStandby is Run for a second instance on the same slot (contract
// section 1, `run --standby`): while another live instance streams the
// slot, it waits, connected and checked, and answers /readyz as a ready
// standby; when the holder ends (stopped, killed or crashed) it takes the
// slot over and streams from the confirmed position, as Run after an
// unclean stop does, so each change still has its effect exactly once.
// Several standbys may wait on one slot; one wins, the others go on
// waiting.
func RunStandby(ctx context.Context, cfg *config.Config, log zerolog.Logger) error {
	return RunWith(ctx, cfg, log, Options{Standby: true})
}

// awaitSlot waits while another instance streams the slot, reporting a
// ready standby meanwhile, and returns once the slot is free (or does not
// exist yet).
func (e *Env) awaitSlot(ctx context.Context, cfg *config.Config, obs *observability, log zerolog.Logger) error {
	waiting := false
	defer func() {
		obs.slotWait.Store(nil)
		obs.setStandby(false)
	}()
	for {
		st, err := connector.SlotInfo(ctx, e.Pool, cfg.Postgres.Slot)
		if err != nil {
			return fmt.Errorf("postgres.slot: %w", err)
		}
		if !st.Active {
			if waiting {
				log.Info().Str("slot", cfg.Postgres.Slot).Msg("standby: the slot is free; taking over")
			}
			return nil
		}
		if !waiting {
			waiting = true
			obs.slotWait.Store(&slotProgress{pool: e.Pool, slot: cfg.Postgres.Slot})
			obs.setStandby(true)
			log.Info().Str("slot", cfg.Postgres.Slot).Int("holder_pid", st.ActivePID).
				Msg("standby: another instance streams the slot; waiting to take over")
		}
		if err := sleepCtx(ctx, standbyPoll); err != nil {
			return err
		}
	}
}

// slotProgress answers /v1/wait on a standby. The instance streaming the
// slot confirms a position only once Weaviate acknowledged every change
// before it, so the slot's confirmed_flush_lsn proves what is applied; it
// moves with that instance's status updates, so a standby answers a little
// later than the streaming instance would, never earlier.
type slotProgress struct {
	pool *pgxpool.Pool
	slot string
	high atomic.Uint64 // highest confirmed position read so far
}

// slotProgressPoll is how often a standby's /v1/wait reads the slot.
const slotProgressPoll = 50 * time.Millisecond

// Applied is the slot's confirmed position, as last read.
func (s *slotProgress) Applied() pglogrepl.LSN {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if st, err := connector.SlotInfo(ctx, s.pool, s.slot); err == nil && uint64(st.ConfirmedFlush) > s.high.Load() {
		s.high.Store(uint64(st.ConfirmedFlush))
	}
	return pglogrepl.LSN(s.high.Load())
}

// Wait returns nil once the slot's confirmed position reaches lsn.
func (s *slotProgress) Wait(ctx context.Context, lsn pglogrepl.LSN) error {
	for s.Applied() < lsn {
		if err := sleepCtx(ctx, slotProgressPoll); err != nil {
			return err
		}
	}
	return nil
}

// lostRace reports a standby that found the slot free but was not the one
// that took it.
func lostRace(standby bool, err error) bool {
	return standby && errors.Is(err, ErrSlotInUse)
}
