package connector

import (
	"context"
	"sort"
	"strings"
	"testing"
)

func publishedTables(t *testing.T, db Querier, pub string) []string {
	t.Helper()
	rows, err := db.Query(context.Background(),
		"SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_publication_tables WHERE pubname = $1", pub)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func TestEnsurePublication(t *testing.T) {
	_, db := testDB(t)
	ctx := context.Background()
	mustExec(t, db, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
CREATE TABLE other (id int PRIMARY KEY); CREATE SCHEMA "S p"; CREATE TABLE "S p"."T" (id int PRIMARY KEY)`)

	a, b, odd := TableName{"public", "a"}, TableName{"public", "b"}, TableName{"S p", "T"}
	if err := EnsurePublication(ctx, db, "Pub", []TableName{a, odd}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(publishedTables(t, db, "Pub"), " "); got != `"S p"."T" public.a` {
		t.Errorf("after create: %s", got)
	}
	// Idempotent.
	if err := EnsurePublication(ctx, db, "Pub", []TableName{a, odd}); err != nil {
		t.Fatal(err)
	}
	// Tables added by hand stay; missing configured ones are added.
	mustExec(t, db, `ALTER PUBLICATION "Pub" ADD TABLE other`)
	if err := EnsurePublication(ctx, db, "Pub", []TableName{a, b, b}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(publishedTables(t, db, "Pub"), " "); got != `"S p"."T" public.a public.b public.other` {
		t.Errorf("after add: %s", got)
	}
	if err := EnsurePublication(ctx, db, "Pub", []TableName{{"public", "missing"}}); err == nil {
		t.Error("publishing a missing table succeeded")
	}

	mustExec(t, db, `CREATE PUBLICATION everything FOR ALL TABLES`)
	if err := EnsurePublication(ctx, db, "everything", []TableName{a}); err != nil {
		t.Errorf("FOR ALL TABLES: %v", err)
	}
}

func TestEnsureSlot(t *testing.T) {
	dsn, db := testDB(t)
	ctx := context.Background()
	slot := slotName("cdc_test")
	repl, err := ConnectReplication(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(ctx)

	st, err := SlotInfo(ctx, db, slot)
	if err != nil || st.Exists {
		t.Fatalf("before: %+v, %v", st, err)
	}
	created, lsn, err := EnsureSlot(ctx, repl, slot)
	if err != nil || !created || lsn == 0 {
		t.Fatalf("create: %v %s %v", created, lsn, err)
	}
	st, err = SlotInfo(ctx, db, slot)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Exists || st.Active || st.ActivePID != 0 || st.Plugin != "pgoutput" || st.SlotType != "logical" ||
		st.ConfirmedFlush != lsn || st.RestartLSN == 0 || st.RestartLSN > lsn || st.WALStatus != "reserved" {
		t.Errorf("slot state %+v (consistent point %s)", st, lsn)
	}
	created, lsn2, err := EnsureSlot(ctx, repl, slot)
	if err != nil || created || lsn2 != lsn {
		t.Errorf("again: %v %s %v", created, lsn2, err)
	}

	decoding := slotName("cdc_decoding")
	mustExec(t, db, "SELECT pg_create_logical_replication_slot($1, 'test_decoding')", decoding)
	if _, _, err := EnsureSlot(ctx, repl, decoding); err == nil || !strings.Contains(err.Error(), "test_decoding") {
		t.Errorf("slot with another plugin: %v", err)
	}
	phys := slotName("cdc_phys")
	mustExec(t, db, "SELECT pg_create_physical_replication_slot($1)", phys)
	t.Cleanup(func() { mustExec(t, db, "SELECT pg_drop_replication_slot($1)", phys) })
	if _, _, err := EnsureSlot(ctx, repl, phys); err == nil || !strings.Contains(err.Error(), "physical") {
		t.Errorf("physical slot: %v", err)
	}
	if _, _, err := EnsureSlot(ctx, repl, "Bad-Name"); err == nil {
		t.Error("invalid slot name accepted")
	}

	cs, err := CreateSlot(ctx, repl, slotName("cdc_snap"), true)
	if err != nil || cs.SnapshotName == "" || cs.ConsistentPoint == 0 {
		t.Errorf("CreateSlot with snapshot: %+v, %v", cs, err)
	}
}
