package e2e

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A known workload shows up in /metrics exactly: every change received,
// each applied or skipped as a no-op, by table and operation.
func TestMetricsCountAKnownWorkload(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	h.start()

	h.exec(`INSERT INTO articles SELECT i, 'title ' || i, 'body ' || i, 'ann', i, NULL FROM generate_series(1, 5) i`)
	h.requireInSync("5 inserts")
	h.exec(`UPDATE articles SET body = body || ' edited' WHERE id IN (1, 2)`)
	h.requireInSync("2 updates")
	h.exec(`UPDATE articles SET internal_note = 'not indexed' WHERE id IN (3, 4, 5)`)
	h.requireInSync("3 no-op updates")
	h.exec(`DELETE FROM articles WHERE id = 5`)
	h.requireInSync("1 delete")

	table := `table="public.articles"`
	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"cdc_indexer_changes_received_total", []string{table, `op="insert"`}, 5},
		{"cdc_indexer_changes_received_total", []string{table, `op="update"`}, 5},
		{"cdc_indexer_changes_received_total", []string{table, `op="delete"`}, 1},
		{"cdc_indexer_changes_total", []string{table, `op="insert"`, `outcome="applied"`}, 5},
		{"cdc_indexer_changes_total", []string{table, `op="update"`, `outcome="applied"`}, 2},
		{"cdc_indexer_changes_total", []string{table, `op="update"`, `outcome="skipped"`}, 3},
		{"cdc_indexer_changes_total", []string{table, `op="delete"`, `outcome="applied"`}, 1},
		{"cdc_indexer_changes_total", []string{table, `op="insert"`, `outcome="skipped"`}, 0},
		{"cdc_indexer_changes_total", []string{table, `op="delete"`, `outcome="skipped"`}, 0},
		{"cdc_indexer_freshness_seconds_count", nil, 11},
	}
	for _, w := range want {
		if got := h.metric(w.name, w.labels...); got != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}

	text := h.scrape()
	for _, series := range []string{
		`cdc_indexer_stage_seconds_count{stage="decode"}`,
		`cdc_indexer_stage_seconds_count{stage="render"}`,
		`cdc_indexer_stage_seconds_count{stage="embed"}`,
		`cdc_indexer_stage_seconds_count{stage="write"}`,
		`cdc_indexer_batch_size_count`,
		`cdc_indexer_queue_depth{queue="live"}`,
		`cdc_indexer_queue_depth{queue="stream"}`,
		`cdc_indexer_queue_depth{queue="in_flight"}`,
		`cdc_indexer_confirmed_lsn`,
		`cdc_indexer_lag_bytes`,
		`cdc_indexer_lag_seconds`,
		`cdc_indexer_slot_retained_wal_bytes`,
		`cdc_indexer_dependency_up{dependency="postgres"} 1`,
		`cdc_indexer_dependency_up{dependency="weaviate"} 1`,
		`cdc_indexer_ready 1`,
		`cdc_indexer_weaviate_write_errors_total 0`,
		`cdc_indexer_process_resident_memory_bytes`,
	} {
		if !strings.Contains(text, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if n := h.metric(`cdc_indexer_stage_seconds_count{stage="render"}`); n < 4 {
		t.Errorf("render timed %v times, want at least one per batch (4)", n)
	}
	for _, line := range strings.Split(text, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "cdc_indexer_") && !strings.HasPrefix(line, "go_") {
			t.Errorf("metric without the cdc_indexer_ prefix: %s", line)
		}
	}
}

// Read-your-writes: an application that waits for pg_current_wal_lsn()
// after its commit then finds its row in Weaviate, with no polling.
func TestWaitReadsYourWrites(t *testing.T) {
	h := newHarness(t, articlesSchema+`CREATE TABLE audit_log (id serial PRIMARY KEY, what text);`, articles())
	h.start()
	m := h.maps[0]
	// The test cluster commits asynchronously; an application on the
	// default synchronous_commit = on reads a flushed position.
	h.exec(`SET synchronous_commit = on`)

	for i, step := range []string{
		`INSERT INTO articles VALUES (1, 'fresh', 'written just now', 'ann', 1, NULL)`,
		`UPDATE articles SET body = 'edited just now' WHERE id = 1`,
		`INSERT INTO articles VALUES (2, 'second', 'another', 'bob', 2, NULL)`,
	} {
		h.exec(step)
		lsn := h.walLSN()
		start := time.Now()
		code, body := h.waitFor("lsn=" + url.QueryEscape(lsn) + "&timeout=30s")
		if code != http.StatusOK {
			t.Fatalf("step %d: wait for %s: %d %s", i, lsn, code, body)
		}
		t.Logf("step %d: waited %v for %s: %s", i, time.Since(start), lsn, strings.TrimSpace(body))
		// No polling: the index must hold the write right now.
		if p := h.diff(m); len(p) > 0 {
			t.Fatalf("step %d: /v1/wait returned 200 for %s but Weaviate differs: %v", i, lsn, p)
		}
	}

	// A write to a table that is not indexed: its LSN completes too.
	h.exec(`INSERT INTO audit_log (what) VALUES ('unrelated')`)
	lsn := h.walLSN()
	start := time.Now()
	if code, body := h.waitFor("lsn=" + lsn + "&timeout=20s"); code != http.StatusOK {
		t.Fatalf("wait after an unrelated write: %d %s", code, body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("wait after an unrelated write took %v", d)
	}

	// A position nothing has reached yet times out with 408.
	start = time.Now()
	code, body := h.waitFor("lsn=FFFFFFFF/0&timeout=300ms")
	if code != http.StatusRequestTimeout {
		t.Fatalf("wait for a future LSN: %d %s, want 408", code, body)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("timeout of 300ms took %v", d)
	}

	for _, q := range []string{"", "lsn=", "lsn=banana", "lsn=0/XYZ", "lsn=1/2/3", "lsn=0/1&timeout=soon", "lsn=0/1&timeout=-1s"} {
		if code, body := h.waitFor(q); code != http.StatusBadRequest {
			t.Errorf("wait?%s: %d %s, want 400", q, code, body)
		}
	}
	if n := h.metric("cdc_indexer_wait_requests_total", `result="ok"`); n != 4 {
		t.Errorf("wait ok counter = %v, want 4", n)
	}
}

// /readyz answers 503 while Weaviate is unreachable and 200 again once it is
// back; /healthz answers 200 throughout.
func TestReadyzFollowsDependencies(t *testing.T) {
	ctx := context.Background()
	ws := privateWeaviate(t)
	h := newHarness(t, articlesSchema, articles())
	h.cfg.Weaviate.URL, h.cfg.Weaviate.GRPC = ws.URL(), ws.GRPC()
	h.start()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + h.listen + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitStatus := func(path string, want int, within time.Duration) string {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			code, body := get(path)
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s answered %d %q for %v, want %d", path, code, body, within, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	if err := ws.Stop(); err != nil {
		t.Fatal(err)
	}
	body := waitStatus("/readyz", http.StatusServiceUnavailable, 30*time.Second)
	if !strings.Contains(body, "weaviate unreachable") {
		t.Errorf("readyz body %q does not name Weaviate", body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("healthz %d while Weaviate is down", code)
	}
	if v := h.metric("cdc_indexer_dependency_up", `dependency="weaviate"`); v != 0 {
		t.Errorf("dependency_up{weaviate} = %v while down", v)
	}

	if err := ws.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitStatus("/readyz", http.StatusOK, 60*time.Second)
}
