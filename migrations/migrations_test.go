package migrations

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestAllEmbedded(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[0].Version != 1 || all[0].Name != "state" {
		t.Fatalf("All = %+v", all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Version <= all[i-1].Version {
			t.Errorf("not in version order: %d after %d", all[i].Version, all[i-1].Version)
		}
	}
}

func TestSQLQuotesSchema(t *testing.T) {
	m := Migration{sql: "CREATE TABLE {{schema}}.t (); SELECT 1 FROM {{schema}}.t"}
	cases := map[string]string{
		"cdc_indexer":      "CREATE TABLE cdc_indexer.t (); SELECT 1 FROM cdc_indexer.t",
		`Odd "Schema"; --`: `CREATE TABLE "Odd ""Schema""; --".t (); SELECT 1 FROM "Odd ""Schema""; --".t`,
		"user":             `CREATE TABLE "user".t (); SELECT 1 FROM "user".t`,
	}
	for schema, want := range cases {
		if got := m.SQL(schema); got != want {
			t.Errorf("SQL(%q) = %q, want %q", schema, got, want)
		}
	}
	all, _ := All()
	for _, m := range all {
		if strings.Contains(m.SQL("x"), schemaPlaceholder) {
			t.Errorf("%04d_%s keeps a placeholder", m.Version, m.Name)
		}
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	cases := map[string]fstest.MapFS{
		"name must be NNNN_name.sql": {"sql/state.sql": {}},
		"share version 1":            {"sql/0001_a.sql": {}, "sql/1_b.sql": {}},
		"bad version":                {"sql/0000_zero.sql": {}},
	}
	for want, fsys := range cases {
		if _, err := load(fsys); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("load = %v, want an error containing %q", err, want)
		}
	}
	got, err := load(fstest.MapFS{"sql/0010_b.sql": {Data: []byte("B")}, "sql/0002_a.sql": {Data: []byte("A")}})
	if err != nil || len(got) != 2 || got[0].Version != 2 || got[1].Version != 10 || got[1].sql != "B" {
		t.Errorf("load = %+v, %v", got, err)
	}
}

func TestLockKeyDependsOnSchema(t *testing.T) {
	if LockKey("a") != LockKey("a") || LockKey("a") == LockKey("b") {
		t.Error("LockKey must be fixed per schema and differ between schemas")
	}
}
