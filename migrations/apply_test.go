package migrations

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

type appliedRow struct {
	Version   int32
	Name      string
	AppliedAt time.Time
}

func appliedRows(t *testing.T, conn *pgx.Conn, schema string) []appliedRow {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		"SELECT version, name, applied_at FROM "+connector.QuoteIdent(schema)+".schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[appliedRow])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertAllApplied(t *testing.T, conn *pgx.Conn, schema string) []appliedRow {
	t.Helper()
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	got := appliedRows(t, conn, schema)
	if len(got) != len(all) {
		t.Fatalf("schema_migrations has %d rows, want %d: %+v", len(got), len(all), got)
	}
	for i, m := range all {
		if int(got[i].Version) != m.Version || got[i].Name != m.Name {
			t.Errorf("row %d = %+v, want version %d %s", i, got[i], m.Version, m.Name)
		}
	}
	return got
}

// assertStateTables uses the tables of 0001 as the connector will.
func assertStateTables(t *testing.T, conn *pgx.Conn, schema string) {
	t.Helper()
	ctx := testContext(t)
	q := connector.QuoteIdent(schema)
	stmts := []string{
		"INSERT INTO " + q + ".checkpoint (slot, confirmed_lsn) VALUES ('s', '0/16B3748')",
		"INSERT INTO " + q + ".documents (collection, source_table, source_key, content_hash, chunk_count, source_lsn) VALUES ('C', 'public.t', '1', 'h', 2, '0/1')",
		"INSERT INTO " + q + ".dead_letters (collection, source_table, source_key, lsn, error, attempts) VALUES ('C', 'public.t', '1', '0/1', 'boom', 1)",
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	var lsn string
	var updated time.Time
	if err := conn.QueryRow(ctx, "SELECT confirmed_lsn::text, updated_at FROM "+q+".checkpoint").Scan(&lsn, &updated); err != nil {
		t.Fatal(err)
	}
	if lsn != "0/16B3748" || updated.IsZero() {
		t.Errorf("checkpoint = %s %v", lsn, updated)
	}
	// documents' key is (collection, source_table, source_key).
	_, err := conn.Exec(ctx, "INSERT INTO "+q+".documents (collection, source_table, source_key, content_hash, chunk_count, source_lsn) VALUES ('C', 'public.t', '1', 'h2', 1, '0/2')")
	if err == nil {
		t.Error("documents accepted a duplicate key")
	}
}

func TestApplyCreatesState(t *testing.T) {
	conn := connect(t, testenv.Postgres(t))
	if err := Apply(testContext(t), conn, "cdc_indexer"); err != nil {
		t.Fatal(err)
	}
	assertAllApplied(t, conn, "cdc_indexer")
	assertStateTables(t, conn, "cdc_indexer")
	assertUnlocked(t, conn, "cdc_indexer")
}

func TestApplyTwiceIsNoop(t *testing.T) {
	conn := connect(t, testenv.Postgres(t))
	ctx := testContext(t)
	if err := Apply(ctx, conn, "state"); err != nil {
		t.Fatal(err)
	}
	first := assertAllApplied(t, conn, "state")
	if err := Apply(ctx, conn, "state"); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	second := assertAllApplied(t, conn, "state")
	for i := range first {
		if !first[i].AppliedAt.Equal(second[i].AppliedAt) {
			t.Errorf("version %d re-applied", first[i].Version)
		}
	}
	assertUnlocked(t, conn, "state")
}

// Two connectors starting at once both succeed and apply each version once.
func TestConcurrentApply(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := testContext(t)
	const schema = "concurrent"
	holder := connect(t, dsn)
	// Hold the lock so both callers are sure to contend for it.
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", LockKey(schema)); err != nil {
		t.Fatal(err)
	}
	conns := []*pgx.Conn{connect(t, dsn), connect(t, dsn), connect(t, dsn)}
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Apply(ctx, c, schema)
		}()
	}
	waitForLockWaiters(t, holder, len(conns))
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock($1)", LockKey(schema)); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Apply %d: %v", i, err)
		}
	}
	assertAllApplied(t, holder, schema)
	assertStateTables(t, holder, schema)
}

// waitForLockWaiters waits until n sessions are blocked on an advisory lock.
func waitForLockWaiters(t *testing.T, conn *pgx.Conn, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		err := conn.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())").Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions waiting for the lock, want %d", waiting, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestApplyOddSchemaName(t *testing.T) {
	conn := connect(t, testenv.Postgres(t))
	for _, schema := range []string{`Odd "Schema"; DROP TABLE x; --`, "Mixed Case", "select", "ünïcode"} {
		t.Run(schema, func(t *testing.T) {
			if err := Apply(testContext(t), conn, schema); err != nil {
				t.Fatal(err)
			}
			assertAllApplied(t, conn, schema)
			assertStateTables(t, conn, schema)
			var exists bool
			if err := conn.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil || !exists {
				t.Errorf("schema %q not created under its exact name: %v", schema, err)
			}
		})
	}
}

// A failing migration leaves nothing half-applied and does not keep the
// lock; the ones before it stay applied.
func TestApplyFailureRollsBack(t *testing.T) {
	conn := connect(t, testenv.Postgres(t))
	ctx := testContext(t)
	bad := []Migration{
		{Version: 1, Name: "good", sql: "CREATE TABLE {{schema}}.good (id int)"},
		{Version: 2, Name: "bad", sql: "CREATE TABLE {{schema}}.half (id int); SELECT no_such_function()"},
	}
	err := apply(ctx, conn, "failing", bad)
	if err == nil {
		t.Fatal("apply succeeded")
	}
	if want := "0002_bad"; !contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
	got := appliedRows(t, conn, "failing")
	if len(got) != 1 || got[0].Version != 1 {
		t.Errorf("schema_migrations = %+v, want only version 1", got)
	}
	var half *string
	if err := conn.QueryRow(ctx, "SELECT to_regclass('failing.half')::text").Scan(&half); err != nil || half != nil {
		t.Errorf("failing.half exists after rollback (%v)", err)
	}
	assertUnlocked(t, conn, "failing")
	// Once fixed, the next run applies the rest.
	bad[1].sql = "CREATE TABLE {{schema}}.half (id int)"
	if err := apply(ctx, conn, "failing", bad); err != nil {
		t.Fatal(err)
	}
	if got := appliedRows(t, conn, "failing"); len(got) != 2 {
		t.Errorf("schema_migrations = %+v", got)
	}
}

func TestApplyHonoursCancellation(t *testing.T) {
	dsn := testenv.Postgres(t)
	holder := connect(t, dsn)
	if _, err := holder.Exec(context.Background(), "SELECT pg_advisory_lock($1)", LockKey("waits")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := Apply(ctx, connect(t, dsn), "waits")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !contains(err.Error(), "cancel") {
		t.Errorf("Apply while locked = %v, want a cancellation", err)
	}
}

func TestApplyPool(t *testing.T) {
	ctx := testContext(t)
	pool, err := pgxpool.New(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := Apply(ctx, pool, "pooled"); err != nil {
		t.Fatal(err)
	}
	c, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	assertAllApplied(t, c.Conn(), "pooled")
	if err := Apply(ctx, c, "pooled"); err != nil {
		t.Fatalf("Apply on a *pgxpool.Conn: %v", err)
	}
	if err := Apply(ctx, nil, "pooled"); err == nil {
		t.Error("Apply on nil succeeded")
	}
}

func TestApplyRejectsEmptySchema(t *testing.T) {
	if err := apply(context.Background(), nil, "", nil); err == nil {
		t.Error("empty schema accepted")
	}
}

// assertUnlocked checks that no session holds schema's migration lock.
func assertUnlocked(t *testing.T, conn *pgx.Conn, schema string) {
	t.Helper()
	key := LockKey(schema)
	var held int
	err := conn.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND ((classid::bigint << 32) | objid::bigint) = $1", key).Scan(&held)
	if err != nil {
		t.Fatal(err)
	}
	if held != 0 {
		t.Errorf("migration lock of %q still held", schema)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
