package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
	"github.com/cdc-indexer/cdc-indexer/internal/status"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// status shows the slot, lag, per-table counts in PostgreSQL, the state
// schema and Weaviate, and dead letters, for humans and as JSON.
func TestStatus(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	sqlExec(t, dsn, `CREATE TABLE articles (id int PRIMARY KEY, title text, body text, author text)`)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	collection := testenv.CollectionName(t)
	path := writeConfig(t, dsn, "public.articles", collection, listen)
	cfg, err := config.Load(path)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- indexer.Run(runCtx, cfg, zerolog.Nop()) }()
	stopped := false
	stopIndexer := func() {
		if stopped {
			return
		}
		stopped = true
		stop()
		if err := <-done; err != nil {
			t.Errorf("indexer: %v", err)
		}
	}
	t.Cleanup(stopIndexer)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if code, _ := httpGet(t, "http://"+listen+"/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("indexer not ready within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var lsn string
	for _, sql := range []string{`SET synchronous_commit = on`,
		`INSERT INTO articles VALUES (1, 'one', 'first', 'ann'), (2, 'two', 'second', 'bob'), (3, 'three', 'third', 'cy')`} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, "http://"+listen+"/v1/wait?lsn="+lsn+"&timeout=60s"); code != http.StatusOK {
		t.Fatalf("wait: %d %s", code, body)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO cdc_indexer.dead_letters (collection, source_table, source_key, lsn, error)
VALUES ($1, 'public.articles', '99', '0/1', 'rejected by the provider')`, collection+"_v1"); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := cli(t, "status", "--config", path)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	t.Logf("status:\n%s", stdout)
	for _, want := range []string{"cdc_indexer: active (pid", "wal_status reserved", "TABLE COLLECTION VERSION ROWS DOCUMENTS CHUNKS OBJECTS DEAD LETTERS"} {
		if !strings.Contains(strings.Join(strings.Fields(stdout), " "), want) {
			t.Errorf("status lacks %q", want)
		}
	}
	fields := map[string]string{}
	for _, line := range strings.Split(stdout, "\n") {
		if k, v, ok := strings.Cut(line, "  "); ok && k != "" && !strings.Contains(k, ".") {
			fields[k] = strings.TrimSpace(v)
		}
	}
	for k, want := range map[string]string{"dead letters": "1", "indexer": "ready", "slot": "", "server WAL": "", "confirmed LSN": "", "lag": "", "retained WAL": "", "embedding": ""} {
		if got, ok := fields[k]; !ok || (want != "" && got != want) || got == "" {
			t.Errorf("status line %q = %q, want %q", k, got, want)
		}
	}
	found := false
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) == 9 && f[0] == "public.articles" {
			found = true
			if want := []string{"public.articles", collection, collection + "_v1", "3", "3", "3", "3", "1"}; strings.Join(f[:8], " ") != strings.Join(want, " ") {
				t.Errorf("table line %q, want %q", strings.Join(f, " "), strings.Join(want, " "))
			}
		}
	}
	if !found {
		t.Error("no line for public.articles")
	}

	code, stdout, stderr = cli(t, "status", "--json", "--config", path)
	if code != 0 {
		t.Fatalf("status --json: exit %d: %s", code, stderr)
	}
	var r status.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, stdout)
	}
	if !r.Slot.Exists || !r.Slot.Active || r.Slot.Name != "cdc_indexer" || r.Slot.WALStatus == "" || r.Slot.ConfirmedLSN == "" {
		t.Errorf("slot %+v", r.Slot)
	}
	if r.LagBytes == nil || r.Retained == nil || r.LagSeconds == nil || r.LagSource != "indexer /metrics" || r.Indexer != "ready" {
		t.Errorf("lag bytes %v, retained %v, lag seconds %v from %q, indexer %q", r.LagBytes, r.Retained, r.LagSeconds, r.LagSource, r.Indexer)
	}
	if len(r.Tables) != 1 {
		t.Fatalf("tables %+v", r.Tables)
	}
	tb := r.Tables[0]
	if tb.Table != "public.articles" || tb.Collection != collection || tb.Version != collection+"_v1" || tb.Reindex != nil || deref(tb.Rows) != 3 || deref(tb.Documents) != 3 ||
		deref(tb.Chunks) != 3 || deref(tb.Objects) != 3 || tb.DeadLetters != 1 || r.DeadTotal != 1 {
		t.Errorf("table %+v rows %d documents %d chunks %d objects %d, dead letters total %d",
			tb, deref(tb.Rows), deref(tb.Documents), deref(tb.Chunks), deref(tb.Objects), r.DeadTotal)
	}
	if r.Embedding.Source == "" {
		t.Errorf("embedding usage %+v", r.Embedding)
	}

	// With the indexer stopped, status still answers from PostgreSQL and
	// Weaviate alone.
	stopIndexer()
	code, stdout, stderr = cli(t, "status", "--json", "--config", path)
	if code != 0 {
		t.Fatalf("status without indexer: exit %d: %s", code, stderr)
	}
	r = status.Report{}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.Slot.Active || !strings.HasPrefix(r.Indexer, "not reachable") || deref(r.Tables[0].Objects) != 3 {
		t.Errorf("status without indexer: %s", stdout)
	}
}

func deref(n *int64) int64 {
	if n == nil {
		return -1
	}
	return *n
}
