package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

// writeConfig writes a config for dsn and the shared Weaviate with one
// table mapping and returns its path.
func writeConfig(t *testing.T, dsn, table, collection, listen string) string {
	t.Helper()
	wurl, grpc := testenv.Weaviate(t)
	doc := map[string]any{
		"postgres":  map[string]any{"dsn": dsn, "slot": "cdc_indexer", "publication": "cdc_indexer", "state_schema": "cdc_indexer"},
		"weaviate":  map[string]any{"url": wurl, "grpc": grpc},
		"embedding": map[string]any{"provider": "hash", "dimensions": 64},
		"tables": []map[string]any{{
			"table": table, "collection": collection, "template": "{{.title}}\n\n{{.body}}", "metadata": []string{"author"},
		}},
		"pipeline": map[string]any{"status_interval": "100ms", "shutdown_timeout": "10s"},
		"log":      map[string]any{"level": "warn", "format": "json"},
	}
	if listen != "" {
		doc["observability"] = map[string]any{"listen": listen}
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func sqlExec(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// checkLine finds the output line of a check and requires its status.
func checkLine(t *testing.T, out, status, check string, parts ...string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(strings.TrimSpace(line[len(f[0]):]), check+" ") {
			continue
		}
		if f[0] != status {
			t.Errorf("check %q is %s, want %s: %s", check, f[0], status, line)
		}
		for _, p := range parts {
			if !strings.Contains(line, p) {
				t.Errorf("check %q line lacks %q: %s", check, p, line)
			}
		}
		return
	}
	t.Errorf("no line for check %q in:\n%s", check, out)
}

// Against a database that is not set up for logical replication, check
// prints every failure with its fix on the failing check's line and exits
// non-zero.
func TestCheckMisconfiguredDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{Settings: map[string]string{"wal_level": "replica"}})
	if err != nil {
		t.Fatalf("TEST ENVIRONMENT UNAVAILABLE: %v", err)
	}
	t.Cleanup(func() { pg.Close() })
	sqlExec(t, pg.AdminDSN(), `
CREATE ROLE app LOGIN;
CREATE TABLE articles (id int PRIMARY KEY, title text, body text, author text);
ALTER TABLE articles REPLICA IDENTITY NOTHING;
GRANT SELECT ON articles TO app;`)
	u, _ := url.Parse(pg.AdminDSN())
	u.User = url.User("app")
	cfg := writeConfig(t, u.String(), "public.articles", testenv.CollectionName(t), "")

	code, stdout, stderr := cli(t, "check", "--config", cfg)
	t.Logf("check output:\n%s", stdout)
	assertFailure(t, code, stderr, "check:", "did not pass")
	checkLine(t, stdout, "PASS", "postgres connect")
	checkLine(t, stdout, "FAIL", "postgres wal_level", "wal_level is replica", "fix: ALTER SYSTEM SET wal_level = logical;", "restart PostgreSQL")
	checkLine(t, stdout, "FAIL", "postgres replication privilege", "role app has neither REPLICATION nor superuser", "fix: ALTER ROLE app REPLICATION;")
	checkLine(t, stdout, "FAIL", "tables[0] public.articles replica identity", "NOTHING", "fix: ALTER TABLE public.articles REPLICA IDENTITY FULL;")
	checkLine(t, stdout, "PASS", "tables[0] public.articles primary key")
	checkLine(t, stdout, "FAIL", "publication cdc_indexer", "fix: CREATE PUBLICATION cdc_indexer FOR TABLE public.articles WITH (publish_via_partition_root = true);")
	checkLine(t, stdout, "PASS", "weaviate rest")
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "FAIL") && !strings.Contains(line, "| fix: ") {
			t.Errorf("failure without a fix: %s", line)
		}
	}

	// Nothing was created.
	var slots, pubs int
	conn, err := pgx.Connect(ctx, pg.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_publication)`).Scan(&slots, &pubs); err != nil {
		t.Fatal(err)
	}
	if slots+pubs != 0 {
		t.Errorf("check created %d slots and %d publications", slots, pubs)
	}
}

// Against a good setup every check passes and check exits 0.
func TestCheckGoodSetup(t *testing.T) {
	dsn := testenv.Postgres(t)
	sqlExec(t, dsn, `CREATE TABLE articles (id int PRIMARY KEY, title text, body text, author text)`)
	cfg := writeConfig(t, dsn, "public.articles", testenv.CollectionName(t), "")
	code, stdout, stderr := cli(t, "check", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d; stderr %s; output:\n%s", code, stderr, stdout)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	for _, line := range lines[:len(lines)-1] {
		if !strings.HasPrefix(line, "PASS") {
			t.Errorf("not a PASS line: %s", line)
		}
	}
	if want := fmt.Sprintf("all %d checks passed", len(lines)-1); lines[len(lines)-1] != want {
		t.Errorf("last line %q, want %q", lines[len(lines)-1], want)
	}
	for _, c := range []string{"postgres wal_level", "postgres replication privilege", "postgres replication slots", "postgres wal senders",
		"tables[0] public.articles exists", "tables[0] public.articles replica identity", "tables[0] public.articles columns",
		"publication cdc_indexer", "slot cdc_indexer", "weaviate rest", "weaviate grpc", "tables[0] collection"} {
		checkLine(t, stdout, "PASS", c)
	}

	code, stdout, _ = cli(t, "check", "--json", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, `"status": "PASS"`) || strings.Contains(stdout, `"FAIL"`) {
		t.Errorf("check --json: exit %d\n%s", code, stdout)
	}
}
