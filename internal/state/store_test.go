package state

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/migrations"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const (
	coll  = "Article"
	table = "public.articles"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newStore migrates schema in a fresh database and returns a store on it.
func newStore(t *testing.T, schema string) (*Store, *pgxpool.Pool) {
	t.Helper()
	ctx := ctxFor(t)
	pool, err := pgxpool.New(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := migrations.Apply(ctx, pool, schema); err != nil {
		t.Fatal(err)
	}
	return NewStore(pool, schema), pool
}

func TestCheckpoint(t *testing.T) {
	s, _ := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	if _, found, err := s.LoadCheckpoint(ctx, "slot_a"); err != nil || found {
		t.Fatalf("LoadCheckpoint of a new slot = found %v, %v", found, err)
	}
	steps := []struct {
		save, want pglogrepl.LSN
	}{
		{0x16B3748, 0x16B3748},
		{0x2_0000_0010, 0x2_0000_0010}, // forward, past the 32-bit boundary
		{0x16B3748, 0x2_0000_0010},     // backwards: ignored
		{0x2_0000_0010, 0x2_0000_0010}, // same: fine
		{0x2_0000_0011, 0x2_0000_0011},
	}
	for _, st := range steps {
		if err := s.SaveCheckpoint(ctx, "slot_a", st.save); err != nil {
			t.Fatal(err)
		}
		got, found, err := s.LoadCheckpoint(ctx, "slot_a")
		if err != nil || !found || got != st.want {
			t.Fatalf("after saving %s: LoadCheckpoint = %s, %v, %v; want %s", st.save, got, found, err, st.want)
		}
	}
	if err := s.SaveCheckpoint(ctx, "slot_b", 5); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.LoadCheckpoint(ctx, "slot_b"); got != 5 {
		t.Errorf("slot_b = %s", got)
	}
	if got, _, _ := s.LoadCheckpoint(ctx, "slot_a"); got != 0x2_0000_0011 {
		t.Errorf("slot_a changed by slot_b: %s", got)
	}
}

func doc(key, hash string, chunks int, lsn pglogrepl.LSN) DocState {
	return DocState{SourceKey: key, ContentHash: hash, ChunkCount: chunks, LSN: lsn}
}

func lookup(t *testing.T, s *Store, collection, table string, keys ...string) map[string]DocState {
	t.Helper()
	got, err := s.LookupDocuments(ctxFor(t), collection, table, keys)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func assertDocs(t *testing.T, got map[string]DocState, want ...DocState) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d documents %v, want %d %v", len(got), got, len(want), want)
	}
	for _, w := range want {
		if got[w.SourceKey] != w {
			t.Errorf("document %s = %+v, want %+v", w.SourceKey, got[w.SourceKey], w)
		}
	}
}

func TestDocuments(t *testing.T) {
	s, _ := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	keys := []string{"1", "11", `["acme","7"]`, `it's "quoted"`, "ünï"}
	var docs []DocState
	for i, k := range keys {
		docs = append(docs, doc(k, fmt.Sprintf("h%d", i), i+1, pglogrepl.LSN(100+i)))
	}
	if err := s.SaveDocuments(ctx, coll, table, docs); err != nil {
		t.Fatal(err)
	}
	assertDocs(t, lookup(t, s, coll, table, keys...), docs...)
	// Only the asked keys, exactly: "1" does not match "11".
	assertDocs(t, lookup(t, s, coll, table, "1", "missing"), docs[0])
	// Another collection or table shares nothing.
	assertDocs(t, lookup(t, s, "Other", table, keys...))
	assertDocs(t, lookup(t, s, coll, "public.other", keys...))
	assertDocs(t, lookup(t, s, coll, table))

	// Update replaces every field, also with an older LSN: the store
	// mirrors what was last written, which a replay may rewind.
	updated := doc("11", "new", 1, 50)
	if err := s.SaveDocuments(ctx, coll, table, []DocState{updated}); err != nil {
		t.Fatal(err)
	}
	assertDocs(t, lookup(t, s, coll, table, "11"), updated)

	if err := s.DeleteDocuments(ctx, coll, table, []string{"1", `["acme","7"]`, "never-saved"}); err != nil {
		t.Fatal(err)
	}
	assertDocs(t, lookup(t, s, coll, table, keys...), updated, docs[3], docs[4])
}

func TestSaveDocumentsLastWins(t *testing.T) {
	s, _ := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	err := s.SaveDocuments(ctx, coll, table, []DocState{doc("a", "1", 1, 1), doc("b", "1", 1, 1), doc("a", "2", 3, 2)})
	if err != nil {
		t.Fatal(err)
	}
	assertDocs(t, lookup(t, s, coll, table, "a", "b"), doc("a", "2", 3, 2), doc("b", "1", 1, 1))
}

func TestApplyDocuments(t *testing.T) {
	s, _ := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	if err := s.SaveDocuments(ctx, coll, table, []DocState{doc("old", "h", 2, 1), doc("keep", "h", 1, 1), doc("both", "h", 1, 1)}); err != nil {
		t.Fatal(err)
	}
	// A primary-key change: the old key goes, the new one comes; "both" is
	// deleted and re-saved in the same flush.
	err := s.ApplyDocuments(ctx, coll, table,
		[]DocState{doc("new", "h2", 2, 9), doc("both", "h3", 4, 9)},
		[]string{"old", "both"})
	if err != nil {
		t.Fatal(err)
	}
	assertDocs(t, lookup(t, s, coll, table, "old", "new", "keep", "both"),
		doc("new", "h2", 2, 9), doc("keep", "h", 1, 1), doc("both", "h3", 4, 9))

	// Nothing to do is no error and no statement.
	if err := s.ApplyDocuments(ctx, coll, table, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyDocuments(ctx, coll, table, []DocState{doc("x", "h", -1, 1)}, nil); err == nil {
		t.Error("negative chunk count accepted")
	}
}

func TestDeleteTable(t *testing.T) {
	s, _ := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	d := doc("1", "h", 1, 1)
	for _, target := range [][2]string{{coll, table}, {coll, "public.other"}, {"Other", table}} {
		if err := s.SaveDocuments(ctx, target[0], target[1], []DocState{d}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteTable(ctx, coll, table); err != nil {
		t.Fatal(err)
	}
	assertDocs(t, lookup(t, s, coll, table, "1"))
	assertDocs(t, lookup(t, s, coll, "public.other", "1"), d)
	assertDocs(t, lookup(t, s, "Other", table, "1"), d)
}

func TestWithTx(t *testing.T) {
	s, pool := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ts := s.WithTx(tx)
		if err := ts.SaveDocuments(ctx, coll, table, []DocState{doc("1", "h", 1, 7)}); err != nil {
			return err
		}
		if err := ts.SaveCheckpoint(ctx, "slot", 7); err != nil {
			return err
		}
		return fmt.Errorf("roll back")
	})
	if err == nil {
		t.Fatal("transaction committed")
	}
	assertDocs(t, lookup(t, s, coll, table, "1"))
	if _, found, _ := s.LoadCheckpoint(ctx, "slot"); found {
		t.Error("checkpoint survived the rollback")
	}
}

func TestOddSchema(t *testing.T) {
	s, _ := newStore(t, `Odd "State"`)
	ctx := ctxFor(t)
	if err := s.SaveCheckpoint(ctx, "slot", 42); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveDocuments(ctx, coll, table, []DocState{doc("1", "h", 1, 42)}); err != nil {
		t.Fatal(err)
	}
	assertDocs(t, lookup(t, s, coll, table, "1"), doc("1", "h", 1, 42))
}

// A flush of thousands of rows is one statement and quick.
func TestLargeFlush(t *testing.T) {
	s, _ := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	const n = 5000
	docs := make([]DocState, n)
	keys := make([]string, n)
	for i := range docs {
		keys[i] = fmt.Sprint(i)
		docs[i] = doc(keys[i], fmt.Sprintf("%064x", i), 1+i%5, pglogrepl.LSN(i))
	}
	start := time.Now()
	if err := s.SaveDocuments(ctx, coll, table, docs); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyDocuments(ctx, coll, table, docs[:n/2], keys[n/2:]); err != nil {
		t.Fatal(err)
	}
	got := lookup(t, s, coll, table, keys...)
	t.Logf("save, apply and look up %d rows: %s", n, time.Since(start))
	if len(got) != n/2 {
		t.Fatalf("got %d documents, want %d", len(got), n/2)
	}
	if got["7"] != docs[7] {
		t.Errorf("document 7 = %+v, want %+v", got["7"], docs[7])
	}
}

func TestCleanStopMarker(t *testing.T) {
	s, _ := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	begin := func(want bool) {
		t.Helper()
		clean, err := s.BeginRun(ctx, "slot_a")
		if err != nil {
			t.Fatal(err)
		}
		if clean != want {
			t.Fatalf("BeginRun = %v, want %v", clean, want)
		}
	}
	begin(false) // no checkpoint yet: nothing vouches for the state
	if err := s.SaveCheckpoint(ctx, "slot_a", 0x100); err != nil {
		t.Fatal(err)
	}
	begin(false) // a checkpoint, but the run before never stopped cleanly
	if err := s.MarkCleanStop(ctx, "slot_a"); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCheckpoint(ctx, "slot_a", 0x200); err != nil { // a late save keeps the mark
		t.Fatal(err)
	}
	begin(true)
	// The run that began is not over: a kill now is unclean.
	begin(false)
	// No checkpoint row: nothing to mark, and no error.
	if err := s.MarkCleanStop(ctx, "slot_b"); err != nil {
		t.Fatal(err)
	}
}
