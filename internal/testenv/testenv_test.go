package testenv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestPostgresDatabaseSupportsLogicalReplication(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	t.Logf("database: %s", dsn)

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)

	var walLevel string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		t.Fatalf("SHOW wal_level: %v", err)
	}
	if walLevel != "logical" {
		t.Fatalf("wal_level = %q, want logical", walLevel)
	}

	var tables int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
		t.Fatalf("count tables: %v", err)
	}
	if tables != 0 {
		t.Fatalf("fresh database has %d tables in public, want 0", tables)
	}

	var lsn string
	if err := conn.QueryRow(ctx, "SELECT lsn::text FROM pg_create_logical_replication_slot('testenv_probe', 'pgoutput')").Scan(&lsn); err != nil {
		t.Fatalf("create pgoutput slot: %v", err)
	}
	t.Logf("created slot testenv_probe at %s", lsn)
	if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot('testenv_probe')"); err != nil {
		t.Fatalf("drop slot: %v", err)
	}
}

// TestPostgresCleanupDropsLeftovers checks that a test which leaves a
// replication slot (even one held by a live connection) and open
// connections behind still gets its database dropped.
func TestPostgresCleanupDropsLeftovers(t *testing.T) {
	ctx := context.Background()
	var db string
	t.Run("leaky", func(t *testing.T) {
		dsn := testenv.Postgres(t)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		// Deliberately not closed.
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			t.Fatalf("current_database: %v", err)
		}
		if _, err := conn.Exec(ctx, "CREATE PUBLICATION leftover FOR ALL TABLES"); err != nil {
			t.Fatalf("create publication: %v", err)
		}
		if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot('leftover', 'pgoutput')"); err != nil {
			t.Fatalf("create slot: %v", err)
		}
		// Hold the slot active, as a running connector would; deliberately
		// not closed either.
		replConn, err := pgconn.Connect(ctx, dsn+"&replication=database")
		if err != nil {
			t.Fatalf("replication connect: %v", err)
		}
		err = pglogrepl.StartReplication(ctx, replConn, "leftover", 0, pglogrepl.StartReplicationOptions{
			PluginArgs: []string{"proto_version '1'", "publication_names 'leftover'"},
		})
		if err != nil {
			t.Fatalf("start replication: %v", err)
		}
		var active bool
		if err := conn.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = 'leftover'").Scan(&active); err != nil || !active {
			t.Fatalf("slot active = %v (err %v), want true", active, err)
		}
	})

	admin, err := pgx.Connect(ctx, testenv.PostgresAdmin(t))
	if err != nil {
		t.Fatalf("connect admin: %v", err)
	}
	defer admin.Close(ctx)
	var dbs, slots int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", db).Scan(&dbs); err != nil {
		t.Fatal(err)
	}
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE database = $1", db).Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if dbs != 0 || slots != 0 {
		t.Fatalf("after cleanup: %d databases named %s and %d of its slots remain, want 0", dbs, db, slots)
	}
}

func TestWeaviateCollectionRoundTrip(t *testing.T) {
	url, grpc := testenv.Weaviate(t)
	t.Logf("weaviate: %s (gRPC %s)", url, grpc)
	name := testenv.CollectionName(t)
	if !regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`).MatchString(name) {
		t.Fatalf("CollectionName = %q, not a valid class name", name)
	}

	body := fmt.Sprintf(`{"class": %q, "vectorizer": "none", "properties": [
		{"name": "source_key", "dataType": ["text"], "tokenization": "field"},
		{"name": "text", "dataType": ["text"], "tokenization": "word"}]}`, name)
	if status, out := do(t, http.MethodPost, url+"/v1/schema", body); status != http.StatusOK {
		t.Fatalf("create collection: %d %s", status, out)
	}

	status, out := do(t, http.MethodGet, url+"/v1/schema/"+name, "")
	if status != http.StatusOK {
		t.Fatalf("read collection back: %d %s", status, out)
	}
	var class struct {
		Class      string `json:"class"`
		Properties []struct {
			Name         string `json:"name"`
			Tokenization string `json:"tokenization"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(out, &class); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	if class.Class != name || len(class.Properties) != 2 {
		t.Fatalf("read back %+v, want class %s with 2 properties", class, name)
	}
	for _, p := range class.Properties {
		if p.Name == "source_key" && p.Tokenization != "field" {
			t.Fatalf("source_key tokenization = %q, want field", p.Tokenization)
		}
	}
}

// TestWeaviateRunsWithoutGraphQL pins that every test talks to a Weaviate
// without GraphQL, as new Weaviate Cloud clusters run: a code path that
// came to depend on GraphQL again would fail its tests.
func TestWeaviateRunsWithoutGraphQL(t *testing.T) {
	url, _ := testenv.Weaviate(t)
	status, out := do(t, http.MethodPost, url+"/v1/graphql", `{"query": "{ Get { X { _additional { id } } } }"}`)
	if status == http.StatusOK && !strings.Contains(strings.ToLower(string(out)), "disabled") {
		t.Fatalf("POST /v1/graphql answered %d %s; want GraphQL switched off (DISABLE_GRAPHQL=true)", status, out)
	}
	t.Logf("POST /v1/graphql: %d %s", status, bytes.TrimSpace(out))
}

// TestPrivateServersRestart exercises the API fault-injection tests use:
// data must survive a restart of each server.
func TestPrivateServersRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("postgres", func(t *testing.T) {
		pg, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			dir := pg.Dir()
			if err := pg.Close(); err != nil {
				t.Error(err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("%s still exists after Close", dir)
			}
		}()
		exec := func(sql string) {
			conn, err := pgx.Connect(ctx, pg.AdminDSN())
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		exec("CREATE TABLE survives (id int)")
		port := pg.Port()
		start := time.Now()
		if err := pg.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("restart took %s", time.Since(start).Round(time.Millisecond))
		if pg.Port() != port {
			t.Fatalf("port changed across restart: %d -> %d", port, pg.Port())
		}
		exec("INSERT INTO survives VALUES (1)")
		if err := pg.Stop(); err != nil {
			t.Fatal(err)
		}
		if conn, err := pgx.Connect(ctx, pg.AdminDSN()); err == nil {
			conn.Close(ctx)
			t.Fatal("connected to a stopped server")
		}
		if err := pg.Start(ctx); err != nil {
			t.Fatal(err)
		}
		exec("SELECT 1 FROM survives")
	})

	t.Run("weaviate", func(t *testing.T) {
		wv, err := testenv.StartWeaviate(ctx, testenv.WeaviateOptions{AsyncIndexing: true})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := wv.Close(); err != nil {
				t.Error(err)
			}
		}()
		if status, out := do(t, http.MethodPost, wv.URL()+"/v1/schema", `{"class": "Survivor", "vectorizer": "none"}`); status != http.StatusOK {
			t.Fatalf("create collection: %d %s", status, out)
		}
		start := time.Now()
		if err := wv.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := wv.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("stop+start took %s", time.Since(start).Round(time.Millisecond))
		if status, out := do(t, http.MethodGet, wv.URL()+"/v1/schema/Survivor", ""); status != http.StatusOK {
			t.Fatalf("collection lost across restart: %d %s", status, out)
		}
	})
}

func do(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}
