package connector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"
)

// DefaultStatusInterval is how often a Stream reports its position when
// StreamConfig.StatusInterval is zero. It must stay well below the server's
// wal_sender_timeout (60s by default).
const DefaultStatusInterval = 10 * time.Second

// StreamConfig configures a Stream.
type StreamConfig struct {
	// DSN of the database; replication=database is added to it.
	DSN         string
	Slot        string // existing pgoutput slot (see EnsureSlot)
	Publication string // publication of the configured tables (see EnsurePublication)
	// Tables are the configured tables; changes of other tables are ignored.
	Tables []TableInfo
	// StatusInterval is how often the position is reported to the server,
	// also while the consumer is not taking messages.
	StatusInterval time.Duration
	// DrainTimeout is how long Run, once its context is canceled, keeps
	// the connection to report the work the consumer still finishes: every
	// transaction already sent that gets confirmed within it is confirmed
	// to the server before Run returns, so a restart does not replay it.
	DrainTimeout time.Duration
	Logger       zerolog.Logger
	// DecodeTimer, when set, is called with the time decoding took for one
	// pgoutput message in DecodeSampleEvery (decoding is the hot path).
	DecodeTimer func(time.Duration)
}

// DecodeSampleEvery is how many messages share one call of DecodeTimer.
const DecodeSampleEvery = 64

// Stream reads the slot's changes of the configured tables.
type Stream struct {
	cfg        StreamConfig
	lastStatus atomic.Uint64
	caughtUp   atomic.Pointer[CaughtUp]

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewStream returns a Stream; nothing connects before Run.
func NewStream(cfg StreamConfig) *Stream {
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	return &Stream{cfg: cfg}
}

// LastStatus is the position last reported to the server as written,
// flushed and applied (the slot's confirmed position once the server has
// processed it). Before the first report it is the slot's confirmed position
// at connect. Safe to call from any goroutine.
func (s *Stream) LastStatus() pglogrepl.LSN { return pglogrepl.LSN(s.lastStatus.Load()) }

// CaughtUp is a moment at which Run was between transactions: the server
// had streamed its WAL up to Through, and Sent was the commit LSN of the
// last transaction sent on out (0: none yet in that Run).
type CaughtUp struct{ Through, Sent pglogrepl.LSN }

// CaughtUp returns the latest such moment (zero before the first). Once
// the consumer has applied every transaction up to Sent, every change of
// the configured tables committed before Through is applied: the server
// sends transactions in commit order, so each one committed before Through
// was sent before Through was seen. Safe to call from any goroutine.
func (s *Stream) CaughtUp() CaughtUp {
	if c := s.caughtUp.Load(); c != nil {
		return *c
	}
	return CaughtUp{}
}

// Close stops a running Run as if its context were canceled and waits for
// it to return. Without a running Run it does nothing.
func (s *Stream) Close() error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return nil
}

// Run connects, streams from the slot and sends each decoded message to out
// in WAL order: the *Change messages of a transaction, then its *Commit.
// Only transactions with changes of configured tables produce messages.
//
// confirmed reports the position up to which the consumer has durably
// applied everything it received (typically the CommitLSN of the last fully
// applied transaction); it is called from Run's goroutine and must be safe
// against concurrent updates. The position reported to the server is
// confirmed(), or, when Run is between transactions and every commit sent
// on out is confirmed, the server's WAL end as far as it has been streamed,
// so that an idle database or writes to other tables do not make the slot
// retain WAL. A reported position never goes back.
//
// Sending on out may block: while it does, Run keeps reporting its position
// every StatusInterval so the server does not time the connection out. All
// use of the connection stays on Run's goroutine.
//
// Run returns when ctx is canceled (or Close is called), after reporting
// the current position one last time, with ctx's error (context.Canceled
// after Close); on a connection or protocol error it returns that error,
// wrapped. Either way the connection is closed. Run may be called again
// after it returns; it then resumes from the slot's confirmed position.
func (s *Stream) Run(ctx context.Context, out chan<- Message, confirmed func() pglogrepl.LSN) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.mu.Lock()
	if s.cancel != nil {
		s.mu.Unlock()
		cancel()
		return errors.New("replication stream: Run is already running")
	}
	s.cancel, s.done = cancel, done
	s.mu.Unlock()
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = ctx.Err() // canceled while connecting or starting
		}
		s.mu.Lock()
		s.cancel, s.done = nil, nil
		s.mu.Unlock()
		cancel()
		close(done)
	}()

	if confirmed == nil {
		confirmed = func() pglogrepl.LSN { return 0 }
	}
	if err := ValidateSlotName(s.cfg.Slot); err != nil {
		return err
	}
	if s.cfg.Publication == "" {
		return errors.New("replication stream: publication name is empty")
	}

	conn, err := ConnectReplication(ctx, s.cfg.DSN)
	if err != nil {
		return err
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		conn.Close(cctx)
	}()

	st, err := replSlotState(ctx, conn, s.cfg.Slot)
	if err != nil {
		return err
	}
	if !st.Exists {
		return fmt.Errorf("replication slot %s does not exist", s.cfg.Slot)
	}
	if err := checkSlot(s.cfg.Slot, st); err != nil {
		return err
	}

	ss := &session{
		s:         s,
		conn:      conn,
		dec:       NewDecoder(s.cfg.Tables),
		confirmed: confirmed,
		reported:  st.ConfirmedFlush,
		log:       s.cfg.Logger,
	}
	s.lastStatus.Store(uint64(st.ConfirmedFlush))

	// Start at 0: the server resumes from the slot's confirmed position.
	args := []string{
		"proto_version '1'",
		"publication_names '" + strings.ReplaceAll(QuoteIdent(s.cfg.Publication), "'", "''") + "'",
	}
	err = pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, 0,
		pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: args})
	if err != nil {
		return fmt.Errorf("start replication on slot %s: %w", s.cfg.Slot, err)
	}
	ss.log.Info().Str("slot", s.cfg.Slot).Str("publication", s.cfg.Publication).
		Stringer("confirmed_flush_lsn", st.ConfirmedFlush).Msg("replication started")

	return ss.loop(ctx, out)
}

// ApplicationName is what the connector's replication connections call
// themselves (pg_stat_activity.application_name): how `check` tells a slot
// held by this connector from one held by a foreign consumer.
const ApplicationName = "cdc-indexer"

// ConnectReplication opens a replication=database connection: it runs
// simple SQL queries and replication commands (EnsureSlot, CreateSlot).
// It names itself ApplicationName, whatever the DSN says.
func ConnectReplication(ctx context.Context, dsn string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("replication connection: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = ApplicationName
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replication connection: %w", err)
	}
	return conn, nil
}

// session is the state of one Run: everything here is used from Run's
// goroutine only.
type session struct {
	s         *Stream
	conn      *pgconn.PgConn
	dec       *Decoder
	confirmed func() pglogrepl.LSN
	log       zerolog.Logger

	serverWALEnd pglogrepl.LSN // highest WAL position the server has streamed to us
	decoded      int           // messages decoded, for sampling DecodeTimer
	lastEmitted  pglogrepl.LSN // commit LSN of the last transaction a message of which was sent on out
	lastCommit   pglogrepl.LSN // commit LSN of the last *Commit sent on out
	reported     pglogrepl.LSN // last position reported to the server
	nextStatus   time.Time
}

func (ss *session) loop(ctx context.Context, out chan<- Message) error {
	ss.nextStatus = time.Now()
	var receive deadlineCtx
	defer receive.release()
	for {
		if !time.Now().Before(ss.nextStatus) {
			if err := ss.sendStatus(); err != nil {
				return err
			}
		}
		raw, err := ss.conn.ReceiveMessage(receive.until(ctx, ss.nextStatus))
		if err != nil {
			if ctx.Err() != nil {
				return ss.stop(ctx)
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("replication stream: receive: %w", err)
		}
		switch m := raw.(type) {
		case *pgproto3.CopyData:
			if err := ss.handle(ctx, out, m.Data); err != nil {
				return err
			}
			ss.publishCaughtUp()
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return errors.New("replication stream: server ended the stream")
		}
	}
}

// deadlineCtx hands out one context with a deadline for as long as the
// deadline stays the same: one per status interval rather than one per
// message, whose timer was about a fifth of the reader's CPU time.
type deadlineCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
	at     time.Time
}

func (d *deadlineCtx) until(parent context.Context, at time.Time) context.Context {
	if d.ctx == nil || !d.at.Equal(at) {
		d.release()
		d.ctx, d.cancel = context.WithDeadline(parent, at)
		d.at = at
	}
	return d.ctx
}

func (d *deadlineCtx) release() {
	if d.cancel != nil {
		d.cancel()
	}
}

func (ss *session) handle(ctx context.Context, out chan<- Message, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("replication stream: %w", err)
		}
		ss.advance(pkm.ServerWALEnd)
		if pkm.ReplyRequested {
			return ss.sendStatus()
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("replication stream: %w", err)
		}
		var start time.Time
		timed := ss.s.cfg.DecodeTimer != nil && ss.decoded%DecodeSampleEvery == 0
		if timed {
			start = time.Now()
		}
		ss.decoded++
		msg, err := ss.dec.Decode(xld.WALData)
		if timed {
			ss.s.cfg.DecodeTimer(time.Since(start))
		}
		if err != nil {
			return fmt.Errorf("replication stream at %s: %w", xld.WALStart, err)
		}
		for _, r := range ss.dec.Renamed() {
			ss.log.Warn().Stringer("table", r.Configured).Stringer("renamed_to", r.Now).Stringer("lsn", xld.WALStart).
				Msg("a configured table was renamed while streaming: its changes go on being indexed under the configured name, but the next start will not find it; set tables[].table to the new name before restarting")
		}
		ss.advance(xld.ServerWALEnd)
		ss.advance(xld.WALStart)
		if msg != nil {
			return ss.emit(ctx, out, msg)
		}
	}
	return nil
}

// publishCaughtUp records a CaughtUp when Run is between transactions:
// every message received so far is decoded and every Change and Commit of
// it sent on out.
func (ss *session) publishCaughtUp() {
	if ss.dec.InTransaction() {
		return
	}
	c := CaughtUp{Through: ss.serverWALEnd, Sent: ss.lastEmitted}
	if old := ss.s.caughtUp.Load(); old == nil || *old != c {
		ss.s.caughtUp.Store(&c)
	}
}

func (ss *session) advance(lsn pglogrepl.LSN) {
	if lsn > ss.serverWALEnd {
		ss.serverWALEnd = lsn
	}
}

// emit sends msg on out, reporting the position every StatusInterval while
// out is full.
func (ss *session) emit(ctx context.Context, out chan<- Message, msg Message) error {
	var lsn pglogrepl.LSN
	switch m := msg.(type) {
	case *Change:
		lsn = m.CommitLSN
	case *Commit:
		lsn = m.CommitLSN
	}
	if lsn > ss.lastEmitted {
		ss.lastEmitted = lsn
	}
	select {
	case out <- msg:
		ss.sent(msg)
		return nil
	default:
	}
	for {
		timer := time.NewTimer(time.Until(ss.nextStatus))
		select {
		case out <- msg:
			timer.Stop()
			ss.sent(msg)
			return nil
		case <-timer.C:
			if err := ss.sendStatus(); err != nil {
				return err
			}
		case <-ctx.Done():
			timer.Stop()
			return ss.stop(ctx)
		}
	}
}

func (ss *session) sent(msg Message) {
	if c, ok := msg.(*Commit); ok {
		ss.lastCommit = c.CommitLSN
	}
}

// confirmable is the position that may be reported now.
func (ss *session) confirmable() pglogrepl.LSN {
	c := ss.confirmed()
	if !ss.dec.InTransaction() && c >= ss.lastEmitted && ss.serverWALEnd > c {
		c = ss.serverWALEnd
	}
	if c < ss.reported {
		c = ss.reported
	}
	return c
}

func (ss *session) sendStatus() error {
	pos := ss.confirmable()
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), ss.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos,
		WALFlushPosition: pos,
		WALApplyPosition: pos,
	})
	if err != nil {
		return fmt.Errorf("replication stream: send status: %w", err)
	}
	if pos != ss.reported {
		ss.log.Debug().Stringer("lsn", pos).Msg("confirmed position reported")
	}
	ss.reported = pos
	ss.s.lastStatus.Store(uint64(pos))
	ss.nextStatus = time.Now().Add(ss.s.cfg.StatusInterval)
	return nil
}

// stop waits up to DrainTimeout for the consumer to confirm every
// transaction it was sent, reports the position a last time and returns
// ctx's error. Reading has already stopped: nothing new is sent meanwhile.
func (ss *session) stop(ctx context.Context) error {
	deadline := time.Now().Add(ss.s.cfg.DrainTimeout)
	for ss.confirmed() < ss.lastCommit && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		if !time.Now().Before(ss.nextStatus) {
			if err := ss.sendStatus(); err != nil {
				ss.log.Warn().Err(err).Msg("status update while draining failed")
				return ctx.Err()
			}
		}
	}
	if err := ss.sendStatus(); err != nil {
		ss.log.Warn().Err(err).Msg("final status update failed")
	}
	return ctx.Err()
}
