package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
	"github.com/cdc-indexer/cdc-indexer/internal/verify"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// `verify` (contract section 6): it finds exactly the drift that was made
// behind the connector's back, `verify --repair` mends it, and it reports
// nothing while the connector streams a busy table.

// TestVerifyFindsAndRepairsTampering: with the connector stopped, objects
// are deleted (all of two rows, one chunk of a third), two chunks' text
// changed, one row's record in the state schema falsified, a copy of one added at a foreign id, an
// object added for a key that does not exist, and two rows deleted while
// their table was out of the publication (so the stream never carries
// those deletes). verify counts exactly that and exits 1; verify --repair
// exits 0; a second verify exits 0; the oracle agrees.
func TestVerifyFindsAndRepairsTampering(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	m := h.maps[0]
	c := h.start()
	seedArticles(h, 60)
	h.exec(`UPDATE articles SET body = repeat('lorem ipsum dolor ', 40 + id::int) WHERE id % 5 = 0`) // several chunks each
	h.requireInSync("seed")
	c.stop(t)
	ctx := context.Background()
	got := h.indexed(m)
	if len(got["20"]) < 3 || len(got["25"]) < 3 {
		t.Fatalf("rows 20 and 25 have %d and %d chunks; the test needs several", len(got["20"]), len(got["25"]))
	}

	// Missing: every object of rows 1 and 2.
	if err := h.weaviate.Delete(ctx, m.Collection, "", "public.articles", []string{"1", "2"}); err != nil {
		t.Fatal(err)
	}
	// Missing: one middle chunk of row 20.
	if err := h.weaviate.DeleteObjectsAt(ctx, m.Collection, "", got["20"][1].SourceLSN, []string{got["20"][1].ID}); err != nil {
		t.Fatal(err)
	}
	// Stale: row 3's first chunk and row 25's second say something else.
	o := got["3"][0]
	h.putObject(http.MethodPut, m.Collection, o.ID, o, "tampered text")
	o = got["25"][1]
	h.putObject(http.MethodPut, m.Collection, o.ID, o, "tampered text")
	// Duplicate: a copy of row 5's first chunk at a random id.
	h.putObject(http.MethodPost, m.Collection, uuid.NewString(), got["5"][0], got["5"][0].Text)
	// Extra: an object for a key the table does not have.
	ghost := &transform.Document{Collection: m.Collection, SourceTable: "public.articles", SourceKey: "99999",
		Text: "ghost", ContentHash: "00", Chunks: []transform.Chunk{{Index: 0, Text: "ghost", Vector: make([]float32, h.cfg.Embedding.Dimensions)}}}
	ghost.Chunks[0].Vector[0] = 1
	if err := h.weaviate.Write(ctx, []*transform.Document{ghost}); err != nil {
		t.Fatal(err)
	}
	// State: the state schema's record of row 30 disagrees with Weaviate.
	h.exec(`UPDATE cdc_indexer.documents SET chunk_count = 9 WHERE source_key = '30'`)
	// Extra: rows deleted while the table was out of the publication (10
	// has several chunks).
	h.exec(`ALTER PUBLICATION cdc_indexer DROP TABLE articles`)
	h.exec(`DELETE FROM articles WHERE id IN (10, 11)`)
	h.exec(`ALTER PUBLICATION cdc_indexer ADD TABLE articles`)
	unpublished := len(got["10"]) + len(got["11"])

	report := h.verify()
	r := report.Mappings[0]
	if r.Missing != 3 || r.Stale != 2 || r.Duplicate != 1 || r.Extra != int64(1+unpublished) || r.StateMismatch != 1 {
		t.Fatalf("verify found missing %d, stale %d, duplicate %d, extra %d, state %d; want 3, 2, 1, %d, 1\nexamples: %+v",
			r.Missing, r.Stale, r.Duplicate, r.Extra, r.StateMismatch, 1+unpublished, r.Examples)
	}
	if r.RepairRows != 6 || r.RepairDeletes != int64(2+unpublished) || r.RepairTokens <= 0 {
		t.Errorf("repair plan: %d rows (%d tokens), %d deletes; want 6 rows, %d deletes", r.RepairRows, r.RepairTokens, r.RepairDeletes, 2+unpublished)
	}
	out, code := h.cliExit("verify", "--repair", "--dry-run")
	if code != 1 || !strings.Contains(out, "re-index 6 rows") {
		t.Fatalf("verify --repair --dry-run: exit %d; want 1 and the plan\n%s", code, out)
	}
	if again := h.verify().Mappings[0]; again.Drift() != r.Drift() {
		t.Fatalf("the dry run changed something: drift %d, was %d", again.Drift(), r.Drift())
	}
	if r.Rows != 58 {
		t.Errorf("verify read %d rows, want 58", r.Rows)
	}
	if code := h.verifyExit(); code != 1 {
		t.Fatalf("verify exited %d with drift, want 1", code)
	}
	out, code = h.cliExit("verify", "--repair")
	if code != 0 {
		t.Fatalf("verify --repair exited %d, want 0\n%s", code, out)
	}
	// Only the 6 rows that differed were read again, not the table.
	if !strings.Contains(out, "6 rows re-indexed") || !strings.Contains(out, "backfilled the requested rows") || strings.Contains(out, "snapshot started") {
		t.Errorf("verify --repair did not re-index just the 6 differing rows:\n%s", out)
	}
	if code := h.verifyExit(); code != 0 {
		t.Fatalf("verify after the repair exited %d, want 0", code)
	}
	h.requireEqual("after verify --repair")

	// The connector takes over from there as if nothing happened.
	h.start()
	h.exec(`UPDATE articles SET title = 'after repair' WHERE id = 3`)
	h.requireInSync("streaming after the repair")
}

// TestVerifyWhileStreaming: verify, run three times while the connector
// applies a steady mix of inserts, updates and deletes to the same table,
// reports no drift.
func TestVerifyWhileStreaming(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	h.start()
	seedArticles(h, 2000)
	h.requireInSync("seed")

	ctx, cancel := context.WithCancel(context.Background())
	// The writer has a connection of its own: cancelling a query closes
	// the connection it runs on.
	writer, err := pgx.Connect(context.Background(), h.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		next := 10_000
		rng := rand.New(rand.NewPCG(1, 2))
		for ctx.Err() == nil {
			id := 1 + rng.IntN(2000)
			var sql string
			switch rng.IntN(10) {
			case 0:
				sql = fmt.Sprintf(`INSERT INTO articles VALUES (%d, 'new %d', 'body', 'a', 1, NULL)`, next, next)
				next++
			case 1:
				sql = fmt.Sprintf(`DELETE FROM articles WHERE id = %d`, id)
			default:
				sql = fmt.Sprintf(`UPDATE articles SET body = body || ' more', views = views + 1 WHERE id = %d`, id)
			}
			if _, err := writer.Exec(ctx, sql); err != nil && ctx.Err() == nil {
				t.Errorf("writer: %v", err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for round := 1; round <= 3; round++ {
		report := h.verify()
		if r := report.Mappings[0]; r.Drift() != 0 {
			cancel()
			wg.Wait()
			t.Fatalf("round %d: verify reported drift while streaming: missing %d, stale %d, extra %d, duplicate %d\nexamples: %+v",
				round, r.Missing, r.Stale, r.Extra, r.Duplicate, r.Examples)
		}
	}
	cancel()
	wg.Wait()
	h.requireInSync("after the workload")
}

// verify runs the verification in-process and returns its report.
func (h *harness) verify() *verify.Report {
	h.t.Helper()
	log := zerolog.New(zerolog.ConsoleWriter{Out: testWriter{h.t}, NoColor: true}).Level(zerolog.InfoLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, deps, err := indexer.OpenVerify(ctx, h.cfg, log)
	if err != nil {
		h.t.Fatalf("verify: %v", err)
	}
	defer env.Close()
	report, err := verify.Run(ctx, deps, verify.Options{}, log)
	if err != nil {
		h.t.Fatalf("verify: %v", err)
	}
	return report
}

// verifyExit runs `cdc-indexer verify` with args and returns its exit code.
func (h *harness) verifyExit(args ...string) int {
	h.t.Helper()
	p := h.startCommand("verify", args...)
	err := p.wait(5 * time.Minute)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		h.t.Logf("verify %v:\n%s", args, tail(p.log(), 3000))
		return exit.ExitCode()
	default:
		h.t.Fatalf("verify %v: %v", args, err)
		return -1
	}
}

// putObject writes an object with the given id and o's properties (text
// replaced) straight to Weaviate's REST API, behind the connector's back:
// PUT replaces an existing object, POST creates one.
func (h *harness) putObject(method, collection, id string, o sink.StoredObject, text string) {
	h.t.Helper()
	props := map[string]any{
		"source_table": o.SourceTable, "source_key": o.SourceKey, "chunk_index": o.ChunkIndex,
		"chunk_count": o.ChunkCount, "text": text, "content_hash": o.ContentHash, "source_lsn": o.SourceLSN,
	}
	for k, v := range o.Metadata {
		props[k] = v
	}
	body, err := json.Marshal(map[string]any{"class": collection, "id": id, "properties": props, "vector": o.Vector})
	if err != nil {
		h.t.Fatal(err)
	}
	url := h.cfg.Weaviate.URL + "/v1/objects"
	if method == http.MethodPut {
		url += "/" + collection + "/" + id
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		h.t.Fatalf("PUT object %s: %s: %s", id, resp.Status, msg)
	}
}

// TestPeriodicVerificationExportsDrift: with verify.interval set, `run`
// verifies by itself and exports the counts; drift made behind its back
// shows in cdc_indexer_verify, and is not repaired by it.
func TestPeriodicVerificationExportsDrift(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	h.setConfig("verify.interval", "500ms")
	h.start()
	seedArticles(h, 30)
	h.requireInSync("seed")
	waitMetric := func(what string, want float64, labels ...string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for h.metric("cdc_indexer_verify{", labels...) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: cdc_indexer_verify%v = %v, want %v", what, labels, h.metric("cdc_indexer_verify{", labels...), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitMetric("rows verified", 30, `kind="rows"`)
	if n := h.metric("cdc_indexer_verify{", `kind="missing"`); n != 0 {
		t.Fatalf("missing = %v on an exact index", n)
	}
	if err := h.weaviate.Delete(context.Background(), h.maps[0].Collection, "", "public.articles", []string{"7"}); err != nil {
		t.Fatal(err)
	}
	waitMetric("a row deleted behind the connector's back", 1, `kind="missing"`)
	if n := h.metric("cdc_indexer_verify_runs_total", `result="ok"`); n < 2 {
		t.Errorf("verify runs = %v, want several", n)
	}
}

// TestPeriodicVerificationSamples: with verify.sample below 1, each round
// compares a slice of the keys, and successive slices find drift wherever
// it is.
func TestPeriodicVerificationSamples(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	h.setConfig("verify.interval", "300ms")
	h.setConfig("verify.sample", "0.25")
	h.start()
	seedArticles(h, 40)
	h.requireInSync("seed")
	if err := h.weaviate.Delete(context.Background(), h.maps[0].Collection, "", "public.articles", []string{"7"}); err != nil {
		t.Fatal(err)
	}
	// Rounds go on; the one whose slice holds row 7 reports it missing.
	// Rounds that began before the seed was in count less: skip them.
	began := h.metric("cdc_indexer_verify_runs_total", `result="ok"`)
	deadline := time.Now().Add(time.Minute)
	rows := map[float64]bool{}
	for h.metric("cdc_indexer_verify{", `kind="missing"`) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("row 7 never reported missing; rows compared per round: %v", rows)
		}
		if h.metric("cdc_indexer_verify_runs_total", `result="ok"`) >= began+2 {
			rows[h.metric("cdc_indexer_verify{", `kind="rows"`)] = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	for n := range rows {
		if n <= 0 || n >= 40 {
			t.Errorf("a round compared %v of 40 rows: not a quarter's slice", n)
		}
	}
}

// TestVerifyAcrossTenants: a multi-tenant mapping (contract section 3) is
// verified tenant by tenant. A row whose objects were deleted from its
// tenant is missing; a copy of a row's object in another tenant is extra
// (it would answer that tenant's queries); the repair, made while the
// connector streams (so through its backfill lane, for the one differing
// row), mends both and the oracle, which checks every object's tenant,
// agrees.
func TestVerifyAcrossTenants(t *testing.T) {
	h := newHarness(t, notesSchema, notes())
	m := h.maps[0]
	c := h.start()
	h.exec(`INSERT INTO notes SELECT 'org-' || (g % 10), g, 'note ' || g FROM generate_series(1, 200) g`)
	h.requireInSync("seed")
	c.stop(t)
	ctx := context.Background()
	got := h.indexed(m)
	missingKey, movedKey := `["org-1","1"]`, `["org-2","2"]`
	if len(got[missingKey]) != 1 || len(got[movedKey]) != 1 {
		t.Fatalf("rows %s and %s have %d and %d objects, want one each", missingKey, movedKey, len(got[missingKey]), len(got[movedKey]))
	}
	if err := h.weaviate.Delete(ctx, m.Collection, "org-1", "public.notes", []string{missingKey}); err != nil {
		t.Fatal(err)
	}
	o := got[movedKey][0]
	copyElsewhere := &transform.Document{Collection: m.Collection, SourceTable: "public.notes", SourceKey: movedKey, Tenant: "org-3",
		Text: o.Text, ContentHash: o.ContentHash, Chunks: []transform.Chunk{{Index: 0, Text: o.Text, Vector: o.Vector}}}
	if err := h.weaviate.Write(ctx, []*transform.Document{copyElsewhere}); err != nil {
		t.Fatal(err)
	}

	r := h.verify().Mappings[0]
	if r.Missing != 1 || r.Extra != 1 || r.Stale != 0 || r.Duplicate != 0 || r.Rows != 200 {
		t.Fatalf("verify over tenants: rows %d, missing %d, extra %d, stale %d, duplicate %d; want 200, 1, 1, 0, 0\nexamples: %+v",
			r.Rows, r.Missing, r.Extra, r.Stale, r.Duplicate, r.Examples)
	}
	h.start()
	out, code := h.cliExit("verify", "--repair")
	if code != 0 {
		t.Fatalf("verify --repair exited %d, want 0\n%s", code, out)
	}
	if !strings.Contains(out, "1 rows re-indexed") || !strings.Contains(out, "running connector") {
		t.Errorf("verify --repair did not re-index the one row through the running connector:\n%s", out)
	}
	if code := h.verifyExit(); code != 0 {
		t.Fatalf("verify after the repair exited %d, want 0", code)
	}
	h.requireEqual("after the repair across tenants")
}
