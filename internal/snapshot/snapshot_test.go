package snapshot

import (
	"context"
	"errors"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/migrations"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const schema = "cdc_indexer"

type fixture struct {
	t     *testing.T
	dsn   string
	pool  *pgxpool.Pool
	store *Store
}

func newFixture(t *testing.T, ddl string) *fixture {
	t.Helper()
	ctx := testContext(t)
	f := &fixture{t: t, dsn: testenv.Postgres(t)}
	var err error
	if f.pool, err = pgxpool.New(ctx, f.dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.pool.Close)
	if err := migrations.Apply(ctx, f.pool, schema); err != nil {
		t.Fatal(err)
	}
	f.store = NewStore(f.pool, schema, "cdc_indexer")
	if ddl != "" {
		f.exec(ddl)
	}
	return f
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.pool.Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

func (f *fixture) table(name, collection, template string) *pipeline.Table {
	f.t.Helper()
	tn, err := connector.ParseTableName(name)
	if err != nil {
		f.t.Fatal(err)
	}
	infos, err := connector.DescribeTables(context.Background(), f.pool, []connector.TableName{tn})
	if err != nil {
		f.t.Fatal(err)
	}
	r, err := transform.NewRenderer(infos[0], collection, template, nil, "test")
	if err != nil {
		f.t.Fatal(err)
	}
	return pipeline.NewTable(infos[0], collection, r)
}

// recorder is an Applier that remembers every row it was given.
type recorder struct {
	mu     sync.Mutex
	keys   []string
	at     map[pglogrepl.LSN]int
	failAt int // fail the call that would pass this many rows; 0: never
	// unrecorded counts the rows marked Unrecorded
	unrecorded int
}

func (r *recorder) Backfill(_ context.Context, _ *pipeline.Table, rows []pipeline.BackfillRow, at pglogrepl.LSN) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failAt > 0 && len(r.keys)+len(rows) >= r.failAt {
		return errors.New("applier stopped")
	}
	if r.at == nil {
		r.at = map[pglogrepl.LSN]int{}
	}
	for _, row := range rows {
		r.keys = append(r.keys, row.Key.String())
		if row.Unrecorded {
			r.unrecorded++
		}
	}
	r.at[at] += len(rows)
	return nil
}

func (f *fixture) allKeys() map[string]bool {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT '[' || to_json(tenant)::text || ',' || to_json(seq::text)::text || ']' FROM items`)
	if err != nil {
		f.t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, k := range keys {
		out[k] = true
	}
	return out
}

const itemsDDL = `CREATE TABLE items (tenant text, seq int, body text, PRIMARY KEY (tenant, seq));
INSERT INTO items SELECT 'tenant ' || (g % 7), g, 'body ' || g FROM generate_series(1, 5000) g;`

// An exported snapshot sees exactly the transactions committed before the
// slot's consistent point, and every later commit lies above At.
func TestExportSnapshotPoint(t *testing.T) {
	f := newFixture(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := testContext(t)
	f.exec(`INSERT INTO t VALUES (1)`)
	x, err := Fresh(ctx, f.dsn, "cdc_indexer")
	if err != nil {
		t.Fatal(err)
	}
	defer x.Release(ctx)
	if x.At != x.ConsistentPoint-1 {
		t.Fatalf("At %s, consistent point %s", x.At, x.ConsistentPoint)
	}
	// A transaction committing now writes its commit record past the
	// position it can read before committing, which is past At.
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	var before string
	if err := tx.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if lsn, _ := pglogrepl.ParseLSN(before); lsn <= x.At {
		t.Fatalf("a commit after the export lies at or below At: %s <= %s", lsn, x.At)
	}

	readers, err := openReaders(ctx, f.dsn, 2, x)
	if err != nil {
		t.Fatal(err)
	}
	defer closeReaders(ctx, readers)
	x.Release(ctx)
	for i, r := range readers {
		var ids []int32
		rows, err := r.tx.Query(ctx, `SELECT id FROM t ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[int32]); err != nil {
			t.Fatal(err)
		}
		if len(ids) != 1 || ids[0] != 1 {
			t.Errorf("reader %d sees %v, want only the row committed before the export", i, ids)
		}
	}
	// The temporary slot goes with its connection (the server drops it
	// as the walsender exits).
	deadline := time.Now().Add(10 * time.Second)
	for {
		var slots int
		if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = current_database()`).Scan(&slots); err != nil {
			t.Fatal(err)
		}
		if slots == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d slots left after release", slots)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Parallel readers over sampled key ranges deliver every row exactly once,
// and the progress records every range as done.
func TestRunReadsEveryRowOnce(t *testing.T) {
	f := newFixture(t, itemsDDL)
	ctx := testContext(t)
	f.exec(`ANALYZE items`)
	tbl := f.table("items", "Item", "{{.body}}")
	x, err := Fresh(ctx, f.dsn, "cdc_indexer")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	res, err := Run(ctx, Config{DSN: f.dsn, Readers: 3, ChunkRows: 300, Store: f.store, Apply: rec, Log: zerolog.Nop()}, x, []*pipeline.Table{tbl})
	if err != nil {
		t.Fatal(err)
	}
	assertOnce(t, rec.keys, f.allKeys())
	if res[0].RowsRead != 5000 || res[0].Resumed || res[0].At != x.At {
		t.Errorf("result %+v", res[0])
	}
	if rec.at[x.At] != 5000 {
		t.Errorf("rows at %v, want all at %s", rec.at, x.At)
	}
	parts, err := f.store.Parts(ctx, "Item", tbl.SourceTable)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 2 {
		t.Errorf("%d parts; want the table split for 3 readers", len(parts))
	}
	var done int64
	for _, p := range parts {
		if !p.Done {
			t.Errorf("part %d not done", p.Index)
		}
		done += p.RowsDone
	}
	if done != 5000 {
		t.Errorf("progress counts %d rows", done)
	}
}

// A snapshot that stops half way continues after its recorded chunks in a
// new snapshot: it reads only the rest, and together the two runs cover
// every row.
func TestRunResumes(t *testing.T) {
	f := newFixture(t, itemsDDL)
	ctx := testContext(t)
	tbl := f.table("items", "Item", "{{.body}}")
	cfg := Config{DSN: f.dsn, Readers: 2, ChunkRows: 200, Store: f.store, Log: zerolog.Nop()}

	x, err := Fresh(ctx, f.dsn, "cdc_indexer")
	if err != nil {
		t.Fatal(err)
	}
	first := &recorder{failAt: 2500}
	cfg.Apply = first
	if _, err := Run(ctx, cfg, x, []*pipeline.Table{tbl}); err == nil {
		t.Fatal("first run did not fail")
	}
	parts, err := f.store.Parts(ctx, "Item", tbl.SourceTable)
	if err != nil {
		t.Fatal(err)
	}
	var recorded int64
	for _, p := range parts {
		recorded += p.RowsDone
	}
	if recorded == 0 || recorded >= 5000 {
		t.Fatalf("first run recorded %d rows", recorded)
	}

	y, err := Fresh(ctx, f.dsn, "cdc_indexer")
	if err != nil {
		t.Fatal(err)
	}
	second := &recorder{}
	cfg.Apply = second
	res, err := Run(ctx, cfg, y, []*pipeline.Table{tbl})
	if err != nil {
		t.Fatal(err)
	}
	// Recorded progress only ever covers indexed rows.
	if len(first.keys) < int(recorded) {
		t.Errorf("first run recorded %d rows but indexed only %d", recorded, len(first.keys))
	}
	if !res[0].Resumed || res[0].RowsBefore != recorded || res[0].RowsRead != int64(len(second.keys)) {
		t.Errorf("result %+v, recorded %d", res[0], recorded)
	}
	// The resumed run's first chunk of each part it continues is the one
	// the stopped run may have been indexing: it is marked, the rest not.
	unfinished := 0
	for _, p := range parts {
		if !p.Done {
			unfinished++
		}
	}
	if first.unrecorded != 0 || second.unrecorded == 0 || second.unrecorded > unfinished*cfg.ChunkRows {
		t.Errorf("rows marked unrecorded: first run %d, resumed run %d; want 0 and 1..%d (first chunk of %d parts)",
			first.unrecorded, second.unrecorded, unfinished*cfg.ChunkRows, unfinished)
	}
	if int64(len(second.keys)) != 5000-recorded {
		t.Errorf("second run read %d rows, want the %d not recorded", len(second.keys), 5000-recorded)
	}
	if second.at[y.At] != len(second.keys) {
		t.Errorf("second run's rows not at the new snapshot's point %s: %v", y.At, second.at)
	}
	// Together the two runs read every row.
	seen := map[string]bool{}
	for _, k := range append(first.keys, second.keys...) {
		seen[k] = true
	}
	for k := range f.allKeys() {
		if !seen[k] {
			t.Errorf("row %s read by neither run", k)
		}
	}

	// Once finished, the next snapshot starts over.
	third := &recorder{}
	cfg.Apply = third
	z, err := Fresh(ctx, f.dsn, "cdc_indexer")
	if err != nil {
		t.Fatal(err)
	}
	if res, err = Run(ctx, cfg, z, []*pipeline.Table{tbl}); err != nil {
		t.Fatal(err)
	}
	if res[0].Resumed {
		t.Error("a finished snapshot was resumed")
	}
	assertOnce(t, third.keys, f.allKeys())
}

// Without a key, there is nothing to page by.
func TestRunNeedsPrimaryKey(t *testing.T) {
	f := newFixture(t, `CREATE TABLE k (id int PRIMARY KEY)`)
	tbl := f.table("k", "K", "{{.id}}")
	tbl.Info.Key = nil
	_, err := Run(testContext(t), Config{DSN: f.dsn, Apply: &recorder{}}, nil, []*pipeline.Table{tbl})
	if !errors.Is(err, connector.ErrNoPrimaryKey) {
		t.Fatalf("err = %v, want ErrNoPrimaryKey", err)
	}
}

// The sweep removes indexed rows the table no longer holds.
func TestSweepRemovesVanishedRows(t *testing.T) {
	f := newFixture(t, itemsDDL)
	ctx := testContext(t)
	tbl := f.table("items", "Item", "{{.body}}")
	st := state.NewStore(f.pool, schema)
	docs := []state.DocState{
		{SourceKey: `["tenant 1","1"]`, ContentHash: "h", ChunkCount: 1, LSN: 1},    // exists
		{SourceKey: `["tenant 1","9999"]`, ContentHash: "h", ChunkCount: 1, LSN: 1}, // vanished
		{SourceKey: `["gone","1"]`, ContentHash: "h", ChunkCount: 1, LSN: 1},        // vanished
		{SourceKey: `["tenant 2","77777"]`, ContentHash: "", ChunkCount: 0, LSN: 1}, // tombstone
		{SourceKey: `not json`, ContentHash: "h", ChunkCount: 1, LSN: 1},            // unparsable: removed too
	}
	if err := st.SaveDocuments(ctx, "Item", tbl.SourceTable, docs); err != nil {
		t.Fatal(err)
	}
	var removed []string
	x, err := Fresh(ctx, f.dsn, "cdc_indexer")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, Config{DSN: f.dsn, ChunkRows: 1000, Store: f.store, Apply: &recorder{}, Log: zerolog.Nop(),
		Remove: func(_ context.Context, _ *pipeline.Table, keys []string) error {
			removed = append(removed, keys...)
			return nil
		}}, x, []*pipeline.Table{tbl})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(removed)
	want := []string{`["gone","1"]`, `["tenant 1","9999"]`, `not json`}
	if strings.Join(removed, " ") != strings.Join(want, " ") || res[0].Removed != 3 {
		t.Errorf("removed %v (%d), want %v", removed, res[0].Removed, want)
	}
}

func assertOnce(t *testing.T, got []string, want map[string]bool) {
	t.Helper()
	seen := map[string]int{}
	for _, k := range got {
		seen[k]++
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("row %s delivered %d times", k, n)
		}
		if !want[k] {
			t.Errorf("row %s is not in the table", k)
		}
	}
	for k := range want {
		if seen[k] == 0 {
			t.Errorf("row %s never delivered", k)
		}
	}
}

func sameRef(x, y TableRef) bool {
	return x.Collection == y.Collection && x.SourceTable == y.SourceTable && slices.Equal(x.Keys, y.Keys)
}

// Unfinished names the tables whose recorded snapshot has parts left.
func TestUnfinished(t *testing.T) {
	f := newFixture(t, "")
	ctx := testContext(t)
	parts := []Part{{Collection: "A", SourceTable: "public.a", Index: 0}, {Collection: "A", SourceTable: "public.a", Index: 1}}
	if err := f.store.StartParts(ctx, parts, 42); err != nil {
		t.Fatal(err)
	}
	got, err := f.store.Unfinished(ctx)
	if err != nil || len(got) != 1 || !sameRef(got[0], TableRef{Collection: "A", SourceTable: "public.a"}) {
		t.Fatalf("Unfinished = %+v, %v; want public.a -> A", got, err)
	}
}

// A keyed request (verify --repair) backfills its rows only; requests of
// one table claimed together read the union of their keys, or the whole
// table if one of them asks for it. A keyed request does not stand in for
// a whole-table one.
func TestKeyedRequests(t *testing.T) {
	f := newFixture(t, "")
	ctx := testContext(t)
	a := TableRef{Collection: "A", SourceTable: "public.a"}
	if _, err := f.store.Enqueue(ctx, TableRef{Collection: "A", SourceTable: "public.a", Keys: []string{"1", "2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Enqueue(ctx, TableRef{Collection: "A", SourceTable: "public.a", Keys: []string{"2", "3"}}); err != nil {
		t.Fatal(err)
	}
	ref, ids, err := f.store.Claim(ctx)
	if err != nil || ref == nil || len(ids) != 2 || !slices.Equal(ref.Keys, []string{"1", "2", "3"}) {
		t.Fatalf("Claim of two keyed requests = %+v, %v, %v; want keys 1, 2, 3", ref, ids, err)
	}
	if err := f.store.Finish(ctx, ids, nil); err != nil {
		t.Fatal(err)
	}

	if _, err := f.store.Enqueue(ctx, TableRef{Collection: "A", SourceTable: "public.a", Keys: []string{"9"}}); err != nil {
		t.Fatal(err)
	}
	if added, err := f.store.EnqueueIfIdle(ctx, a); err != nil || !added {
		t.Fatalf("EnqueueIfIdle beside a keyed request = %v, %v; want a whole-table request", added, err)
	}
	ref, ids, err = f.store.Claim(ctx)
	if err != nil || ref == nil || len(ids) != 2 || ref.Keys != nil {
		t.Fatalf("Claim of a keyed and a whole-table request = %+v, %v, %v; want the whole table", ref, ids, err)
	}
}

func TestRequests(t *testing.T) {
	f := newFixture(t, "")
	ctx := testContext(t)
	a := TableRef{Collection: "A", SourceTable: "public.a"}
	b := TableRef{Collection: "B", SourceTable: "public.b"}
	id1, _ := f.store.Enqueue(ctx, a)
	id2, _ := f.store.Enqueue(ctx, b)
	id3, err := f.store.Enqueue(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if added, err := f.store.EnqueueIfIdle(ctx, a); err != nil || added {
		t.Errorf("EnqueueIfIdle with a pending request: %v, %v", added, err)
	}
	ref, ids, err := f.store.Claim(ctx)
	if err != nil || ref == nil || !sameRef(*ref, a) || len(ids) != 2 || ids[0]+ids[1] != id1+id3 {
		t.Fatalf("Claim = %v, %v, %v; want both requests of %v", ref, ids, err, a)
	}
	if err := f.store.Report(ctx, ids, 10, 100, 42); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Report(ctx, ids, 5, 100, 42); err != nil { // late, smaller: ignored
		t.Fatal(err)
	}
	got, err := f.store.Requests(ctx, []int64{id1, id2, id3})
	if err != nil {
		t.Fatal(err)
	}
	if r := got[id1]; r.Status != StatusRunning || r.RowsDone != 10 || r.RowsTotal != 100 {
		t.Errorf("running request %+v", r)
	}
	if got[id2].Status != StatusPending || got[id2].RowsTotal != -1 {
		t.Errorf("other request %+v", got[id2])
	}
	// A connector that stopped leaves it running; the next one requeues.
	if n, err := f.store.Requeue(ctx); err != nil || n != 2 {
		t.Fatalf("Requeue = %d, %v", n, err)
	}
	ref, ids, _ = f.store.Claim(ctx)
	if ref == nil || !sameRef(*ref, a) {
		t.Fatalf("after requeue Claim = %v", ref)
	}
	if err := f.store.Finish(ctx, ids, errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	ref, ids, _ = f.store.Claim(ctx)
	if ref == nil || !sameRef(*ref, b) || len(ids) != 1 {
		t.Fatalf("third Claim = %v %v", ref, ids)
	}
	if err := f.store.Finish(ctx, ids, nil); err != nil {
		t.Fatal(err)
	}
	if ref, _, err := f.store.Claim(ctx); ref != nil || err != nil {
		t.Errorf("Claim with nothing pending = %v, %v", ref, err)
	}
	got, _ = f.store.Requests(ctx, []int64{id1, id2})
	if got[id1].Status != StatusFailed || got[id1].Error != "boom" || got[id2].Status != StatusDone {
		t.Errorf("finished requests %+v", got)
	}

	// A connector of another slot sharing the schema neither claims nor
	// requeues this slot's requests.
	other := NewStore(f.pool, schema, "other_slot")
	if _, err := f.store.Enqueue(ctx, a); err != nil {
		t.Fatal(err)
	}
	if ref, _, err := other.Claim(ctx); ref != nil || err != nil {
		t.Errorf("another slot's Claim = %v, %v; want nothing", ref, err)
	}
	if ref, _, err := f.store.Claim(ctx); ref == nil || err != nil {
		t.Fatalf("own Claim = %v, %v", ref, err)
	}
	if n, err := other.Requeue(ctx); n != 0 || err != nil {
		t.Errorf("another slot's Requeue = %d, %v; want 0", n, err)
	}
}

func TestPurgeTombstones(t *testing.T) {
	f := newFixture(t, "")
	ctx := testContext(t)
	st := state.NewStore(f.pool, schema)
	docs := []state.DocState{{SourceKey: "1", ContentHash: "h", ChunkCount: 1, LSN: 5}, {SourceKey: "2", LSN: 6}}
	for _, table := range []string{"public.a", "public.b"} {
		if err := st.SaveDocuments(ctx, "C", table, docs); err != nil {
			t.Fatal(err)
		}
	}
	n, err := f.store.PurgeTombstones(ctx, []TableRef{{Collection: "C", SourceTable: "public.a"}})
	if err != nil || n != 1 {
		t.Fatalf("purged %d, %v", n, err)
	}
	a, _ := st.LookupDocuments(ctx, "C", "public.a", []string{"1", "2"})
	b, _ := st.LookupDocuments(ctx, "C", "public.b", []string{"1", "2"})
	if len(a) != 1 || a["1"].ContentHash != "h" || len(b) != 2 {
		t.Errorf("after purge: a %v, b %v", a, b)
	}
}

func TestLock(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := testContext(t)
	first, err := TryLock(ctx, dsn, schema, "slot_a")
	if err != nil || first == nil {
		t.Fatalf("first TryLock = %v, %v", first, err)
	}
	if second, err := TryLock(ctx, dsn, schema, "slot_a"); err != nil || second != nil {
		t.Fatalf("second TryLock = %v, %v; want nil while held", second, err)
	}
	other, err := TryLock(ctx, dsn, schema, "slot_b")
	if err != nil || other == nil {
		t.Fatalf("another slot's lock = %v, %v", other, err)
	}
	other.Release(ctx)
	if !first.Alive(ctx) {
		t.Error("held lock not alive")
	}
	first.Release(ctx)
	again, err := TryLock(ctx, dsn, schema, "slot_a")
	if err != nil || again == nil {
		t.Fatalf("TryLock after release = %v, %v", again, err)
	}
	again.Release(ctx)
	var nilLock *Lock
	nilLock.Release(ctx) // a nil lock is released without effect
	if nilLock.Alive(ctx) {
		t.Error("nil lock alive")
	}
}

func TestChunkSQL(t *testing.T) {
	q := &tableQuery{
		t:       &pipeline.Table{Info: connector.TableInfo{Name: connector.TableName{Schema: "public", Name: "items"}}},
		cols:    "tenant, seq, body",
		keyRow:  "(tenant, seq)",
		order:   "tenant, seq",
		keyType: []string{"text", "integer"},
	}
	cases := map[[2]bool]string{
		{false, false}: "SELECT tenant, seq, body FROM public.items ORDER BY tenant, seq LIMIT 10",
		{true, false}:  "SELECT tenant, seq, body FROM public.items WHERE (tenant, seq) > ($1::text::text, $2::text::integer) ORDER BY tenant, seq LIMIT 10",
		{false, true}:  "SELECT tenant, seq, body FROM public.items WHERE (tenant, seq) <= ($1::text::text, $2::text::integer) ORDER BY tenant, seq LIMIT 10",
		{true, true}:   "SELECT tenant, seq, body FROM public.items WHERE (tenant, seq) > ($1::text::text, $2::text::integer) AND (tenant, seq) <= ($3::text::text, $4::text::integer) ORDER BY tenant, seq LIMIT 10",
	}
	for c, want := range cases {
		if got := q.chunkSQL(c[0], c[1], 10); got != want {
			t.Errorf("chunkSQL%v =\n%s\nwant\n%s", c, got, want)
		}
	}
}

// EnqueueUnlessPending adds a request unless one is pending (a running one
// may have read the table too early).
func TestEnqueueUnlessPending(t *testing.T) {
	f := newFixture(t, "")
	ctx := testContext(t)
	a := TableRef{Collection: "A", SourceTable: "public.a"}
	if err := f.store.EnqueueUnlessPending(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := f.store.EnqueueUnlessPending(ctx, a); err != nil {
		t.Fatal(err)
	}
	_, ids, err := f.store.Claim(ctx)
	if err != nil || len(ids) != 1 {
		t.Fatalf("Claim = %v, %v; want the one request the second call did not duplicate", ids, err)
	}
	if err := f.store.EnqueueUnlessPending(ctx, a); err != nil { // one is running: add
		t.Fatal(err)
	}
	_, ids, err = f.store.Claim(ctx)
	if err != nil || len(ids) != 1 {
		t.Fatalf("Claim = %v, %v; want the request added while one ran", ids, err)
	}
}
