package connector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const testPub = "cdc_test"

// slotName is a fresh slot name: slots are cluster-wide, and other test
// processes may share the cluster.
func slotName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// testDB returns a fresh database and a connection to it.
func testDB(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	dsn := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return dsn, conn
}

func mustExec(t *testing.T, db Querier, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func mustTable(t *testing.T, s string) TableName {
	t.Helper()
	n, err := ParseTableName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// currentLSN is pg_current_wal_lsn(), or with insert pg_current_wal_insert_lsn()
// (ahead of the former while asynchronous commits are not yet written).
func currentLSN(t *testing.T, db Querier, insert bool) pglogrepl.LSN {
	t.Helper()
	q := "SELECT pg_current_wal_lsn()::text"
	if insert {
		q = "SELECT pg_current_wal_insert_lsn()::text"
	}
	var s string
	if err := db.QueryRow(context.Background(), q).Scan(&s); err != nil {
		t.Fatal(err)
	}
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// harness runs a Stream over a fresh database with the given schema.
type harness struct {
	t      *testing.T
	dsn    string
	db     *pgx.Conn
	slot   string
	tables []TableInfo
	stream *Stream
	out    chan Message
	errc   chan error
	cancel context.CancelFunc

	confirmed atomic.Uint64
}

// newHarness creates the schema, describes the tables, ensures the
// publication and slot. Start the stream with start.
func newHarness(t *testing.T, ddl string, tables ...string) *harness {
	t.Helper()
	dsn, db := testDB(t)
	if ddl != "" {
		mustExec(t, db, ddl)
	}
	h := &harness{t: t, dsn: dsn, db: db, slot: slotName("cdc_test")}
	names := make([]TableName, len(tables))
	for i, s := range tables {
		names[i] = mustTable(t, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if h.tables, err = DescribeTables(ctx, db, names); err != nil {
		t.Fatal(err)
	}
	if err := EnsurePublication(ctx, db, testPub, names); err != nil {
		t.Fatal(err)
	}
	repl, err := ConnectReplication(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(context.Background())
	if _, _, err := EnsureSlot(ctx, repl, h.slot); err != nil {
		t.Fatal(err)
	}
	return h
}

// start runs the stream; confirm nil means "confirm what h.confirmed holds".
func (h *harness) start(outCap int, interval time.Duration, confirm func() pglogrepl.LSN) {
	h.t.Helper()
	if confirm == nil {
		confirm = func() pglogrepl.LSN { return pglogrepl.LSN(h.confirmed.Load()) }
	}
	h.stream = NewStream(StreamConfig{
		DSN:            h.dsn,
		Slot:           h.slot,
		Publication:    testPub,
		Tables:         h.tables,
		StatusInterval: interval,
		Logger:         zerolog.New(zerolog.NewTestWriter(h.t)).Level(zerolog.InfoLevel),
	})
	h.out = make(chan Message, outCap)
	h.errc = make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.errc <- h.stream.Run(ctx, h.out, confirm) }()
	h.t.Cleanup(h.stop)
}

// stop cancels the stream and checks it ended as documented.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.errc:
		if err != nil && !errors.Is(err, context.Canceled) {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Errorf("Run did not return after cancel")
	}
}

func (h *harness) next() Message {
	h.t.Helper()
	select {
	case m := <-h.out:
		return m
	case err := <-h.errc:
		h.t.Fatalf("stream ended: %v", err)
	case <-time.After(10 * time.Second):
		h.t.Fatalf("no message within 10s")
	}
	return nil
}

// tx reads the next transaction: its changes and its commit.
func (h *harness) tx() ([]*Change, *Commit) {
	h.t.Helper()
	var changes []*Change
	for {
		switch m := h.next().(type) {
		case *Change:
			changes = append(changes, m)
		case *Commit:
			for _, c := range changes {
				if c.CommitLSN != m.CommitLSN {
					h.t.Fatalf("change %v has CommitLSN %s, its commit %s", c.Op, c.CommitLSN, m.CommitLSN)
				}
				if !c.CommitTime.Equal(m.CommitTime) {
					h.t.Fatalf("change %v has CommitTime %s, its commit %s", c.Op, c.CommitTime, m.CommitTime)
				}
			}
			return changes, m
		}
	}
}

// one reads a transaction that must hold exactly one change.
func (h *harness) one() *Change {
	h.t.Helper()
	changes, _ := h.tx()
	if len(changes) != 1 {
		h.t.Fatalf("got %d changes, want 1: %+v", len(changes), changes)
	}
	return changes[0]
}

// quiet checks that no message arrives for a moment.
func (h *harness) quiet(d time.Duration) {
	h.t.Helper()
	select {
	case m := <-h.out:
		h.t.Fatalf("unexpected message %#v", m)
	case err := <-h.errc:
		h.t.Fatalf("stream ended: %v", err)
	case <-time.After(d):
	}
}

func (h *harness) info(name string) TableInfo {
	h.t.Helper()
	n := mustTable(h.t, name)
	for _, ti := range h.tables {
		if ti.Name == n {
			return ti
		}
	}
	h.t.Fatalf("no table %s", name)
	return TableInfo{}
}

// waitSlot polls the slot until cond holds.
func waitSlot(t *testing.T, db Querier, slot string, within time.Duration, cond func(SlotState) bool) SlotState {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := SlotInfo(context.Background(), db, slot)
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot state %+v did not reach the expected state within %s", st, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
