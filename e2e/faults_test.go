package e2e

// The fault-injection suite: each scenario injects a fault into a running
// connector (kill -9, a dependency stopped or restarted, a provider failing,
// rows that cannot be indexed, hostile data) under a continuous workload and
// ends with Weaviate compared to the tables exactly. Each logs one line
//
//	FAULT-TABLE | scenario | written N | verified N | missing 0 | stale 0 | duplicate 0
//
// where written counts the row changes the workload committed and verified
// the rows found exactly as the contract wants them.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
	"github.com/cdc-indexer/cdc-indexer/internal/openaitest"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/sink"
)

// mixedLoad inserts, updates and deletes rows of articles on keys 1..keys in
// small transactions until stopped, reconnecting whenever the database goes
// away. It counts the row changes whose commit was acknowledged.
type mixedLoad struct {
	t       *testing.T
	dsn     string
	keys    int
	written atomic.Int64
	txs     atomic.Int64
	stop    chan struct{}
	done    chan struct{}
}

func startWorkload(t *testing.T, dsn string, keys int) *mixedLoad {
	w := &mixedLoad{t: t, dsn: dsn, keys: keys, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	t.Cleanup(w.finish)
	return w
}

func (w *mixedLoad) run() {
	defer close(w.done)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(ctx)
		}
	}()
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		if conn == nil || conn.IsClosed() {
			c, err := pgx.Connect(ctx, w.dsn)
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			conn = c
		}
		n, err := w.transaction(ctx, conn, rng)
		if err != nil {
			conn.Close(ctx)
			conn = nil
			time.Sleep(50 * time.Millisecond)
			continue
		}
		w.written.Add(int64(n))
		w.txs.Add(1)
		time.Sleep(time.Duration(2+rng.IntN(6)) * time.Millisecond)
	}
}

// transaction commits 1 to 4 changes on random keys and returns how many.
func (w *mixedLoad) transaction(ctx context.Context, conn *pgx.Conn, rng *rand.Rand) (int, error) {
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tx, err := conn.Begin(tctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	n := 1 + rng.IntN(4)
	for i := 0; i < n; i++ {
		id := 1 + rng.IntN(w.keys)
		var sql string
		var args []any
		switch r := rng.IntN(10); {
		case r < 4: // insert or replace
			sql = `INSERT INTO articles VALUES ($1, $2, $3, $4, $5, NULL)
			       ON CONFLICT (id) DO UPDATE SET title = excluded.title, body = excluded.body, author = excluded.author, views = excluded.views`
			args = []any{id, fmt.Sprintf("title %d.%d", id, rng.IntN(1000)), body(rng), fmt.Sprintf("author%d", rng.IntN(20)), rng.IntN(1000)}
		case r < 8: // update the document
			sql = `UPDATE articles SET body = $2, views = views + 1 WHERE id = $1`
			args = []any{id, body(rng)}
		case r < 9: // outside the template: skipped by the content hash
			sql = `UPDATE articles SET internal_note = $2 WHERE id = $1`
			args = []any{id, fmt.Sprint(rng.IntN(1000))}
		default:
			sql = `DELETE FROM articles WHERE id = $1`
			args = []any{id}
		}
		if _, err := tx.Exec(tctx, sql, args...); err != nil {
			return 0, err
		}
	}
	return n, tx.Commit(tctx)
}

var words = strings.Fields("replication slot write ahead log vector index weaviate postgres chunk token embedding " +
	"commit transaction snapshot checkpoint tuple relation publication subscriber lag confirmed flush")

// body is a document text of a few to a few hundred words, so that some
// rows need several chunks (max_tokens 64 in the harness) and shrink later.
func body(rng *rand.Rand) string {
	n := 3 + rng.IntN(20)
	if rng.IntN(8) == 0 {
		n = 60 + rng.IntN(200)
	}
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[rng.IntN(len(words))])
	}
	return b.String()
}

// finish stops the workload and waits for its last transaction.
func (w *mixedLoad) finish() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// faultCounts is one line of the fault table.
type faultCounts struct {
	written, verified, missing, stale, duplicate int
}

// verifyExact waits until the connector caught up and compares every
// mapping with Weaviate, counting rows verified, missing, stale (wrong text
// or metadata, or a deleted row still indexed) and duplicated (extra or
// misnumbered chunks, ids that are not the deterministic ones). Rows in
// deadLettered must be absent from Weaviate instead. It logs the fault
// table's line and fails the test unless missing, stale and duplicate are 0.
func (h *harness) verifyExact(scenario string, written int, deadLettered map[string]bool) faultCounts {
	h.t.Helper()
	h.waitCaughtUp()
	c := faultCounts{written: written}
	for _, m := range h.maps {
		want := h.expectedRows(m)
		got := h.indexed(m)
		for key, e := range want {
			chunks, ok := got[key]
			if deadLettered[key] {
				if ok {
					c.stale++
				}
				continue
			}
			if !ok {
				c.missing++
				continue
			}
			dup, stale := false, false
			var text strings.Builder
			for i, ch := range chunks {
				if ch.ChunkIndex != i || ch.ChunkCount != len(chunks) ||
					ch.ID != string(sink.ObjectID(m.Collection, sourceTable(m.Table), key, ch.ChunkIndex)) {
					dup = true
				}
				if len(ch.Vector) != h.cfg.Embedding.Dimensions && h.cfg.Embedding.Provider != "none" {
					stale = true
				}
				for name, v := range e.Metadata {
					if fmt.Sprint(ch.Metadata[name]) != fmt.Sprint(v) {
						stale = true
					}
				}
				text.WriteString(ch.Text)
			}
			if text.String() != e.Text {
				stale = true
			}
			switch {
			case dup:
				c.duplicate++
			case stale:
				c.stale++
			default:
				c.verified++
			}
		}
		for key := range got {
			if _, ok := want[key]; !ok {
				c.stale++ // a deleted row still served
			}
		}
	}
	h.t.Logf("FAULT-TABLE | %s | written %d | verified %d | missing %d | stale %d | duplicate %d",
		scenario, c.written, c.verified, c.missing, c.stale, c.duplicate)
	if c.missing+c.stale+c.duplicate > 0 {
		for _, m := range h.maps {
			p := h.diff(m)
			if len(p) > 20 {
				p = append(p[:20], fmt.Sprintf("... and %d more", len(p)-20))
			}
			h.t.Logf("%s: %s", m.Collection, strings.Join(p, "\n  "))
		}
		h.t.Fatalf("%s: Weaviate differs from the tables", scenario)
	}
	return c
}

// readyStatus is /readyz's status code, 0 when it does not answer.
func (h *harness) readyStatus() int {
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + h.listen + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// watchReady samples /readyz until stop is closed and reports whether it
// answered 503 at least once.
func (h *harness) watchReady(stop <-chan struct{}) <-chan bool {
	out := make(chan bool, 1)
	go func() {
		saw := false
		for {
			if h.readyStatus() == http.StatusServiceUnavailable {
				saw = true
			}
			select {
			case <-stop:
				out <- saw
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return out
}

// deadLetters reads the state schema's dead letters.
func (h *harness) deadLetters() []state.DeadLetter {
	h.t.Helper()
	var out []state.DeadLetter
	rows, err := h.db.Query(context.Background(),
		`SELECT id, source_table, source_key, COALESCE(lsn::text, ''), COALESCE(error, ''), attempts FROM cdc_indexer.dead_letters ORDER BY id`)
	if err != nil {
		h.t.Fatalf("read dead letters: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d state.DeadLetter
		var lsn string
		if err := rows.Scan(&d.ID, &d.SourceTable, &d.SourceKey, &lsn, &d.Error, &d.Attempts); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// waitFor polls cond every 100ms until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// seedArticles inserts keys 1..n.
func (h *harness) seedArticles(n int) {
	h.exec(`INSERT INTO articles SELECT g, 'seed ' || g, 'seed body of ' || g, 'a' || (g % 7), g, NULL FROM generate_series(1, $1) g`, n)
}

// TestFaultKill9Repeated kills the connector with SIGKILL at random moments
// of a continuous mixed workload, five times in a row, restarting it each
// time.
func TestFaultKill9Repeated(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	cmd := h.startProcess()
	h.seedArticles(2000)
	w := startWorkload(t, h.dsn, 3000)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := 1; i <= 5; i++ {
		time.Sleep(time.Duration(1000+rng.IntN(2500)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		t.Logf("kill -9 #%d after %d transactions", i, w.txs.Load())
		waitGone(t, cmd)
		cmd = h.startProcess()
	}
	time.Sleep(time.Second)
	w.finish()
	h.verifyExact("kill -9 x5 under mixed workload", int(w.written.Load())+2000, nil)
}

// TestFaultWeaviateDown stops Weaviate for 20 s in the middle of the stream:
// the connector keeps the changes (the slot does not move past them), is
// not ready meanwhile, and catches up once Weaviate is back.
func TestFaultWeaviateDown(t *testing.T) {
	ctx := context.Background()
	wv := privateWeaviate(t)
	h := newPrivateHarness(t, nil, wv, articlesSchema, articles())
	h.start()
	h.seedArticles(1000)
	w := startWorkload(t, h.dsn, 2000)
	time.Sleep(2 * time.Second)

	stopWatch := make(chan struct{})
	sawNotReady := h.watchReady(stopWatch)
	if err := wv.Stop(); err != nil {
		t.Fatal(err)
	}
	stoppedAt := h.confirmedLSN()
	t.Logf("Weaviate stopped after %d transactions; slot at %s", w.txs.Load(), stoppedAt)
	time.Sleep(20 * time.Second)
	if err := wv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Weaviate started again after %d transactions", w.txs.Load())
	time.Sleep(3 * time.Second)
	w.finish()
	close(stopWatch)
	if !<-sawNotReady {
		t.Error("/readyz never answered 503 while Weaviate was down")
	}
	h.verifyExact("Weaviate stopped 20 s mid-stream", int(w.written.Load())+1000, nil)
}

// TestFaultPostgresRestart restarts PostgreSQL (fast shutdown) under the
// workload: the replication connection is re-established and resumes from
// the slot's confirmed position (which PostgreSQL 15 may even move back),
// without the process exiting.
func TestFaultPostgresRestart(t *testing.T) {
	ctx := context.Background()
	pg, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{})
	if err != nil {
		t.Fatalf("TEST ENVIRONMENT UNAVAILABLE: %v", err)
	}
	t.Cleanup(func() { pg.Close() })
	h := newPrivateHarness(t, pg, nil, articlesSchema, articles())
	c := h.start()
	h.seedArticles(1000)
	w := startWorkload(t, h.dsn, 2000)
	time.Sleep(2 * time.Second)

	stopWatch := make(chan struct{})
	sawNotReady := h.watchReady(stopWatch)
	for i := 1; i <= 2; i++ {
		t.Logf("restarting PostgreSQL (#%d) after %d transactions", i, w.txs.Load())
		if err := pg.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
	}
	w.finish()
	close(stopWatch)
	if !<-sawNotReady {
		t.Error("/readyz never answered 503 while PostgreSQL was restarting")
	}
	select {
	case err := <-c.done:
		t.Fatalf("connector exited after the restart: %v", err)
	default:
	}
	// The harness's own connection did not survive the restart.
	h.db.Close(ctx)
	if h.db, err = pgx.Connect(ctx, h.dsn); err != nil {
		t.Fatal(err)
	}
	h.verifyExact("PostgreSQL restarted (fast) x2 mid-stream", int(w.written.Load())+1000, nil)
}

// poisonArticles maps articles with a template that cannot render a row
// whose tags array is empty: {{index .tags 0}} is out of range there.
func poisonArticles() mapping {
	return mapping{
		Table:    "public.articles",
		Template: "{{.title}} {{index .tags 0}}",
		Metadata: []string{"author"},
		KeySQL:   "id::text",
		TextSQL:  "coalesce(title, '') || ' ' || coalesce(tags[1], '')",
	}
}

const poisonSchema = `
CREATE TABLE articles (
  id bigint PRIMARY KEY,
  title text,
  author text,
  tags text[] NOT NULL
);`

// TestFaultPoisonRow: one row the template cannot render, among good rows of
// the same transactions and batches. Only it is dead-lettered, with its key,
// LSN, error and attempts; its objects are removed; the slot moves on; a
// later good version of it is indexed and clears the dead letter.
func TestFaultPoisonRow(t *testing.T) {
	h := newHarness(t, poisonSchema, poisonArticles())
	h.start()
	h.exec(`INSERT INTO articles SELECT g, 'good ' || g, 'ann', ARRAY['t' || g] FROM generate_series(1, 300) g`)
	h.requireInSync("good rows")

	// The poison row was fine at first; its update cannot be rendered.
	h.exec(`BEGIN;
	        UPDATE articles SET title = 'updated ' || id WHERE id BETWEEN 100 AND 200;
	        UPDATE articles SET tags = '{}' WHERE id = 150;
	        INSERT INTO articles SELECT g, 'more ' || g, 'bob', ARRAY['u'] FROM generate_series(301, 400) g;
	        COMMIT`)
	poisonLSN := h.currentLSN()
	h.verifyExact("poison row among good rows", 400, map[string]bool{"150": true})

	letters := h.deadLetters()
	if len(letters) != 1 {
		t.Fatalf("dead letters = %+v, want exactly row 150", letters)
	}
	d := letters[0]
	if d.SourceTable != "public.articles" || d.SourceKey != "150" || d.Attempts < 2 ||
		!strings.Contains(d.Error, "index out of range") {
		t.Fatalf("dead letter = %+v", d)
	}
	if lsn := h.confirmedLSN(); lsn < poisonLSN {
		t.Fatalf("slot at %s, did not move past the poison row's change (%s)", lsn, poisonLSN)
	}
	if n := h.metric("cdc_indexer_changes_total", `outcome="dead_lettered"`); n != 1 {
		t.Errorf("dead_lettered changes = %v, want 1", n)
	}

	// A good version of the row is indexed and clears its dead letter.
	h.exec(`UPDATE articles SET tags = '{fixed}' WHERE id = 150`)
	h.verifyExact("poison row fixed by an update", 401, nil)
	if letters := h.deadLetters(); len(letters) != 0 {
		t.Fatalf("dead letters after the fix: %+v", letters)
	}
}

// TestFaultDeadLetterRetry: rows dead-lettered because of the template are
// indexed after the template is fixed and the connector restarted (the
// changed template re-indexes the table) and `cdc-indexer deadletters
// retry` asks the running connector to re-read what is left.
func TestFaultDeadLetterRetry(t *testing.T) {
	h := newHarness(t, poisonSchema, poisonArticles())
	first := h.startProcess()
	h.exec(`INSERT INTO articles SELECT g, 'row ' || g, 'ann', CASE WHEN g % 50 = 0 THEN '{}'::text[] ELSE ARRAY['t'] END FROM generate_series(1, 200) g`)
	poison := map[string]bool{"50": true, "100": true, "150": true, "200": true}
	h.verifyExact("four poison rows", 200, poison)
	out := h.cli("deadletters", "list")
	for key := range poison {
		if !strings.Contains(out, " "+key+" ") {
			t.Fatalf("deadletters list does not show row %s:\n%s", key, out)
		}
	}
	var listed struct {
		DeadLetters []struct {
			SourceKey string `json:"source_key"`
			Error     string `json:"error"`
		} `json:"dead_letters"`
	}
	if err := json.Unmarshal([]byte(h.cli("deadletters", "list", "--json")), &listed); err != nil || len(listed.DeadLetters) != len(poison) {
		t.Fatalf("deadletters list --json: %v, %+v", err, listed)
	}

	// Fix: a template that renders the empty array too (and every other
	// row exactly as before), then retry while the connector runs.
	h.setConfig("tables", fmt.Sprintf(`[{"table": "public.articles", "collection": %q, "template": "{{.title}} {{if .tags}}{{index .tags 0}}{{end}}", "metadata": ["author"]}]`, h.maps[0].Collection))
	first.Process.Signal(syscall.SIGTERM)
	waitGone(t, first)
	h.startProcess()
	// The changed template alone re-indexes the table online (mapping
	// shapes), which may clear some dead letters before the retry does.
	out = h.cli("deadletters", "retry", "--all", "--wait", "60s")
	if !strings.Contains(out, " 0 failed again") && !strings.HasPrefix(out, "0 dead letters marked") {
		t.Fatalf("deadletters retry:\n%s", out)
	}
	if letters := h.deadLetters(); len(letters) != 0 {
		t.Fatalf("dead letters after the retry: %+v", letters)
	}
	h.verifyExact("dead letters retried after a fix", 200, nil)
	if out := h.cli("deadletters", "list"); !strings.Contains(out, "no dead letters") {
		t.Fatalf("deadletters list after the retry:\n%s", out)
	}
}

// cli runs the cdc-indexer binary with the harness's config and returns its
// output; a non-zero exit fails the test.
func (h *harness) cli(args ...string) string {
	h.t.Helper()
	bin, err := binary()
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(bin, append(args, "--config", h.cfgPath)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("cdc-indexer %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	h.t.Logf("cdc-indexer %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// waitGone waits until a connector process started by startProcess has
// exited and been reaped.
func waitGone(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	waitFor(t, "connector process gone", 60*time.Second, func() bool {
		return syscall.Kill(cmd.Process.Pid, 0) != nil
	})
}

// hostileSchema has names that need quoting, a row of every kind of hostile
// value, and a 500-column table.
var hostileSchema = func() string {
	var b strings.Builder
	b.WriteString(`
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case" (
  "ID" int PRIMARY KEY,
  "Body Text" text,
  "select" text,
  raw bytea,
  n numeric
);
CREATE TABLE wide (id int PRIMARY KEY`)
	for i := 1; i < 500; i++ {
		fmt.Fprintf(&b, ", c%d text", i)
	}
	b.WriteString(");")
	return b.String()
}()

// TestFaultHostileInput: names that need quoting, control characters, a
// 10 MB document, every column NULL, binary data and a 500-column table are
// indexed exactly (or dead-lettered), and the process never crashes.
func TestFaultHostileInput(t *testing.T) {
	odd := mapping{
		Table:    `"Odd Schema"."Mixed Case"`,
		Template: `{{index . "Body Text"}}|{{index . "select"}}|{{.raw}}|{{.n}}`,
		KeySQL:   `"ID"::text`,
		TextSQL:  `coalesce("Body Text", '') || '|' || coalesce("select", '') || '|' || coalesce(raw::text, '') || '|' || coalesce(n::text, '')`,
	}
	wide := mapping{
		Table:    "public.wide",
		Template: "{{.c1}} {{.c250}} {{.c499}}",
		Metadata: []string{"c2", "c498"},
		KeySQL:   "id::text",
		TextSQL:  "coalesce(c1, '') || ' ' || coalesce(c250, '') || ' ' || coalesce(c499, '')",
	}
	h := newHarness(t, hostileSchema, odd, wide)
	h.setConfig("chunking.max_tokens", "8000") // a 10 MB document in a few hundred chunks
	c := h.start()

	var huge strings.Builder
	rng := rand.New(rand.NewPCG(3, 4))
	for huge.Len() < 10<<20 {
		huge.WriteString(words[rng.IntN(len(words))])
		huge.WriteByte(' ')
	}
	h.exec(`INSERT INTO "Odd Schema"."Mixed Case" VALUES
	  (1, 'plain text', 'reserved word column', NULL, 1.5),
	  (2, E'control \x01\x02\x07\x08\x0b\x0c\x1b\x1f\x7f chars\ttab\r\nnewline', E'\u00e9\u4e2d\U0001F600', '\x00ff10'::bytea, -0),
	  (3, NULL, NULL, NULL, NULL),
	  (4, '', '', ''::bytea, 'NaN'),
	  (5, $1, 'huge', NULL, 12345678901234567890.123)`, huge.String())
	var cols, vals []string
	for i := 1; i < 500; i++ {
		cols = append(cols, fmt.Sprintf("c%d", i))
		vals = append(vals, fmt.Sprintf("'value %d of ' || g", i))
	}
	h.exec(fmt.Sprintf(`INSERT INTO wide (id, %s) SELECT g, %s FROM generate_series(1, 50) g`, strings.Join(cols, ", "), strings.Join(vals, ", ")))
	h.exec(`INSERT INTO wide (id) VALUES (51)`) // every other column NULL
	h.exec(`UPDATE wide SET c250 = 'changed' WHERE id % 5 = 0`)
	h.exec(`UPDATE "Odd Schema"."Mixed Case" SET "Body Text" = "Body Text" || ' more' WHERE "ID" IN (1, 5)`)
	h.exec(`DELETE FROM "Odd Schema"."Mixed Case" WHERE "ID" = 4`)

	dead := map[string]bool{}
	h.waitCaughtUp()
	for _, d := range h.deadLetters() {
		t.Logf("dead-lettered: %s %s: %s", d.SourceTable, d.SourceKey, d.Error)
		dead[d.SourceKey] = true
	}
	if len(dead) > 0 {
		t.Errorf("hostile rows were dead-lettered; every one of them can be indexed: %v", dead)
	}
	h.verifyExact("hostile input (quoted names, control chars, 10 MB, NULLs, bytea, 500 columns)", 5+51+10+2+1, dead)
	// `verify` agrees on quoted names, a document of hundreds of chunks
	// and 500 columns.
	if out, code := h.cliExit("verify"); code != 0 {
		t.Fatalf("verify of the hostile tables exited %d, want 0\n%s", code, out)
	}
	select {
	case err := <-c.done:
		t.Fatalf("connector exited: %v", err)
	default:
	}
}

// TestFaultProviderOutage: the embedding provider answers 500 for 20 s under
// the workload; nothing is dead-lettered, /readyz reports the stall, and the
// connector catches up once the provider recovers.
func TestFaultProviderOutage(t *testing.T) {
	provider := newOpenAIServer(t)
	h := newHarness(t, articlesSchema, articles())
	h.useOpenAI(provider.URL(), 64, nil)
	h.start()
	h.seedArticles(500)
	w := startWorkload(t, h.dsn, 1000)
	time.Sleep(2 * time.Second)

	stopWatch := make(chan struct{})
	sawNotReady := h.watchReady(stopWatch)
	provider.Down(500)
	t.Logf("provider down after %d transactions", w.txs.Load())
	time.Sleep(20 * time.Second)
	provider.Up()
	t.Logf("provider up after %d transactions", w.txs.Load())
	time.Sleep(3 * time.Second)
	w.finish()
	close(stopWatch)
	if !<-sawNotReady {
		t.Error("/readyz never answered 503 while the provider failed")
	}
	h.verifyExact("embedding provider 500s for 20 s", int(w.written.Load())+500, nil)
	if letters := h.deadLetters(); len(letters) != 0 {
		t.Fatalf("the outage dead-lettered rows: %+v", letters)
	}
}

// TestFaultProviderRejectsInput: the provider refuses the text of one row
// (HTTP 400 for that input) among good rows in the same batches: only that
// row is dead-lettered.
func TestFaultProviderRejectsInput(t *testing.T) {
	provider := newOpenAIServer(t)
	h := newHarness(t, articlesSchema, articles())
	h.useOpenAI(provider.URL(), 64, nil)
	provider.Poison("POISON")
	h.start()
	h.exec(`INSERT INTO articles SELECT g, 'title ' || g, CASE WHEN g = 77 THEN 'a POISON body' ELSE 'body ' || g END, 'ann', g, NULL FROM generate_series(1, 300) g`)
	h.verifyExact("provider rejects one input", 300, map[string]bool{"77": true})
	letters := h.deadLetters()
	if len(letters) != 1 || letters[0].SourceKey != "77" {
		t.Fatalf("dead letters = %+v, want exactly row 77", letters)
	}
	t.Logf("dead letter: %+v", letters[0])
}

// TestSlotMissingWithCheckpoint: a slot dropped while the connector was
// stopped is not silently recreated: the start fails and says to snapshot
// again.
func TestSlotMissingWithCheckpoint(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	c := h.start()
	h.seedArticles(10)
	h.requireInSync("seed")
	c.stop(t)
	waitFor(t, "slot released", 30*time.Second, func() bool {
		var active bool
		h.db.QueryRow(context.Background(), `SELECT active FROM pg_replication_slots WHERE slot_name = 'cdc_indexer'`).Scan(&active)
		return !active
	})
	h.exec(`SELECT pg_drop_replication_slot('cdc_indexer')`)
	err := h.runOnce()
	if err == nil || !strings.Contains(err.Error(), "missing") || !strings.Contains(err.Error(), "re-snapshot") {
		t.Fatalf("start with a dropped slot: %v", err)
	}
	t.Logf("start with a dropped slot: %v", err)
	var n int
	h.db.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cdc_indexer'`).Scan(&n)
	if n != 0 {
		t.Fatal("the slot was recreated")
	}
}

// TestSlotBehindCheckpoint: a slot whose confirmed position is behind the
// recorded checkpoint (recreated, or the database restored) stops the start.
func TestSlotBehindCheckpoint(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	c := h.start()
	h.seedArticles(10)
	h.requireInSync("seed")
	c.stop(t)
	h.exec(`UPDATE cdc_indexer.checkpoint SET confirmed_lsn = pg_current_wal_lsn() + 1000000000`)
	err := h.runOnce()
	if err == nil || !strings.Contains(err.Error(), "behind the checkpoint") {
		t.Fatalf("start with a slot behind the checkpoint: %v", err)
	}
	t.Logf("start with a slot behind the checkpoint: %v", err)
}

// TestSecondRunFailsFast: a second `run` on the same slot fails at once
// with the PID holding it, and the first goes on undisturbed.
func TestSecondRunFailsFast(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	h.startProcess()
	h.seedArticles(100)
	h.requireInSync("first connector")
	start := time.Now()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	second := exec.Command(bin, "run", "--config", h.cfgPath)
	second.Env = append(os.Environ(), "CDC_INDEXER_OBSERVABILITY_LISTEN=127.0.0.1:0")
	out, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by PID") {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("second run took %s to fail", d)
	}
	t.Logf("second run failed after %s: %s", time.Since(start).Round(time.Millisecond), tail(string(out), 400))
	h.exec(`UPDATE articles SET body = 'after the second run' WHERE id <= 50`)
	h.verifyExact("second run on the same slot", 150, nil)
}

// TestReplicaIdentityRejected: tables whose deletes would not carry the
// primary key are refused at start, with the fix.
func TestReplicaIdentityRejected(t *testing.T) {
	for _, c := range []struct{ name, alter string }{
		{"nothing", `ALTER TABLE articles REPLICA IDENTITY NOTHING`},
		{"other index", `CREATE UNIQUE INDEX articles_title ON articles (title); ALTER TABLE articles ALTER title SET NOT NULL; ALTER TABLE articles REPLICA IDENTITY USING INDEX articles_title`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, articlesSchema+c.alter, articles())
			err := h.runOnce()
			if err == nil || !strings.Contains(err.Error(), "REPLICA IDENTITY DEFAULT") || !strings.Contains(err.Error(), "tables[0]") {
				t.Fatalf("start: %v", err)
			}
			t.Logf("start: %v", err)
		})
	}
}

// TestHeartbeatMovesIdleSlot: with nothing written to the database, the
// heartbeat still moves the slot's confirmed position.
func TestHeartbeatMovesIdleSlot(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	h.setConfig("postgres.heartbeat_interval", "200ms")
	h.start()
	h.waitCaughtUp()
	before := h.confirmedLSN()
	waitFor(t, "slot moved by the heartbeat", 20*time.Second, func() bool { return h.confirmedLSN() > before })
	var n int
	h.db.QueryRow(context.Background(), `SELECT count(*) FROM articles`).Scan(&n)
	if n != 0 {
		t.Fatal("the heartbeat wrote rows")
	}
	t.Logf("slot moved from %s to %s on an idle database", before, h.confirmedLSN())
}

// runOnce runs the connector in-process until it fails or 30 s pass and
// returns its error (nil when it was still running).
func (h *harness) runOnce() error {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runIndexer(ctx, h) }()
	select {
	case err := <-done:
		return err
	case <-time.After(25 * time.Second):
		cancel()
		<-done
		return nil
	}
}

// runIndexer runs the connector in-process with the harness's config.
func runIndexer(ctx context.Context, h *harness) error {
	log := zerolog.New(zerolog.ConsoleWriter{Out: testWriter{h.t}}).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	return indexer.Run(ctx, h.cfg, log)
}

// openAIServer is an in-process provider speaking the OpenAI embeddings
// protocol (the one test double the suite allows).
type openAIServer struct{ *openaitest.Server }

func newOpenAIServer(t *testing.T) openAIServer {
	s := openaitest.New(openaitest.Options{Dimensions: 64})
	t.Cleanup(s.Close)
	return openAIServer{s}
}

// Down makes every request fail with status until Up.
func (s openAIServer) Down(status int) {
	s.Server.Down(openaitest.Fault{Status: status, Body: `{"error": {"message": "injected outage", "type": "server_error"}}`})
}

// TestSlotLost: a slot that lost WAL it needed (wal_status lost, past
// max_slot_wal_keep_size while the connector was stopped) stops the start
// with the advice to snapshot again.
func TestSlotLost(t *testing.T) {
	ctx := context.Background()
	pg, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{Settings: map[string]string{
		"max_slot_wal_keep_size": "1MB", "wal_keep_size": "0", "max_wal_size": "64MB", "min_wal_size": "32MB",
	}})
	if err != nil {
		t.Fatalf("TEST ENVIRONMENT UNAVAILABLE: %v", err)
	}
	t.Cleanup(func() { pg.Close() })
	h := newPrivateHarness(t, pg, nil, articlesSchema+`CREATE TABLE filler (id serial PRIMARY KEY, pad text);`, articles())
	c := h.start()
	h.seedArticles(10)
	h.requireInSync("seed")
	c.stop(t)
	waitFor(t, "slot lost", 60*time.Second, func() bool {
		h.exec(`INSERT INTO filler (pad) SELECT repeat('x', 1000) FROM generate_series(1, 20000)`)
		h.exec(`SELECT pg_switch_wal()`)
		h.exec(`CHECKPOINT`)
		var status string
		h.db.QueryRow(ctx, `SELECT coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = 'cdc_indexer'`).Scan(&status)
		return status == "lost"
	})
	err = h.runOnce()
	if err == nil || !strings.Contains(err.Error(), "lost") || !strings.Contains(err.Error(), "re-snapshot") {
		t.Fatalf("start with a lost slot: %v", err)
	}
	t.Logf("start with a lost slot: %v", err)
}
