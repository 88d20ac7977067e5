package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// tickets has a composite primary key, so that snapshots page through
// (text, int) keys as well as bigint ones.
func tickets() mapping {
	return mapping{
		Table:    "public.tickets",
		Template: "{{.subject}}\n{{.body}}",
		Metadata: []string{"tenant", "priority"},
		KeySQL:   "'[' || to_json(tenant)::text || ',' || to_json(seq::text)::text || ']'",
		TextSQL:  "coalesce(subject, '') || E'\\n' || coalesce(body, '')",
	}
}

const ticketsSchema = `
CREATE TABLE tickets (
  tenant text,
  seq int,
  subject text,
  body text,
  priority int,
  PRIMARY KEY (tenant, seq)
);`

// churn keeps inserting, updating and deleting rows of articles (and
// tickets, when it exists) on its own connection until stopped.
type churn struct {
	stop  chan struct{}
	done  chan error
	count atomic.Int64
}

// startChurn begins writing; rows is how many articles the table was seeded
// with (ids 1..rows), hot narrows the writes to ids 1..hot when positive,
// batch is how many rows one update statement changes.
func (h *harness) startChurn(rows, hot, batch int, withTickets bool, pause time.Duration) *churn {
	h.t.Helper()
	conn, err := pgx.Connect(context.Background(), h.dsn)
	if err != nil {
		h.t.Fatal(err)
	}
	c := &churn{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		defer conn.Close(context.Background())
		rng := rand.New(rand.NewPCG(1, 2))
		next := 1_000_000
		for i := 0; ; i++ {
			select {
			case <-c.stop:
				c.done <- nil
				return
			default:
			}
			ctx := context.Background()
			id := 1 + rng.IntN(rows)
			if hot > 0 {
				id = 1 + rng.IntN(hot)
			}
			var err error
			switch op := rng.IntN(10); {
			case op < 6:
				ids := []int{id}
				for len(ids) < batch {
					ids = append(ids, ids[0]+len(ids))
				}
				_, err = conn.Exec(ctx, `UPDATE articles SET body = 'edited ' || id || ' at step ' || $2::int, views = views + 1 WHERE id = ANY($1)`, ids, i)
			case op < 7:
				_, err = conn.Exec(ctx, `DELETE FROM articles WHERE id = $1`, id)
			case op < 8:
				next++
				_, err = conn.Exec(ctx, `INSERT INTO articles VALUES ($1::bigint, 'new ' || $1::bigint, 'inserted while snapshotting', 'churn', 0, NULL)`, next)
			case op < 9:
				// Delete and re-insert one key in one transaction.
				err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, `DELETE FROM articles WHERE id = $1`, id); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, `INSERT INTO articles VALUES ($1, 'again', 'reinserted', 'churn', 1, NULL)`, id)
					return err
				})
			default:
				if withTickets {
					_, err = conn.Exec(ctx, `UPDATE tickets SET body = body || ' +', priority = priority + 1 WHERE tenant = $1 AND seq = $2`,
						fmt.Sprintf("t%d", rng.IntN(4)), 1+rng.IntN(2000))
					if err == nil && rng.IntN(4) == 0 {
						_, err = conn.Exec(ctx, `DELETE FROM tickets WHERE tenant = $1 AND seq = $2`, fmt.Sprintf("t%d", rng.IntN(4)), 1+rng.IntN(2000))
					}
				}
			}
			if err != nil {
				c.done <- err
				return
			}
			c.count.Add(1)
			if pause > 0 {
				time.Sleep(pause)
			}
		}
	}()
	return c
}

// end stops the writer and returns how many writes it made.
func (c *churn) end(t *testing.T) int64 {
	t.Helper()
	close(c.stop)
	if err := <-c.done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	return c.count.Load()
}

func seedArticles(h *harness, n int) {
	h.exec(`INSERT INTO articles SELECT g, 'title ' || g, 'body of article ' || g || repeat(' word', g % 40), 'author ' || (g % 17), g % 1000, NULL
		FROM generate_series(1, $1::int) g`, n)
}

// TestSnapshotWhileWriting: a snapshot of 20,000 existing rows in two
// tables while a writer keeps inserting, updating and deleting; then `run`
// streams from the slot's consistent point, and Weaviate equals the tables
// exactly: nothing the snapshot missed is lost, nothing is stale.
func TestSnapshotWhileWriting(t *testing.T) {
	h := newHarness(t, articlesSchema+ticketsSchema, articles(), tickets())
	seedArticles(h, 12000)
	h.exec(`INSERT INTO tickets SELECT 't' || (g % 4), g / 4 + 1, 'subject ' || g, 'ticket body ' || g, g % 5
		FROM generate_series(0, 7999) g`)

	w := h.startChurn(12000, 0, 1, true, time.Millisecond)
	var report indexer.SnapshotReport
	out := h.runSnapshot(indexer.SnapshotOptions{Readers: 3, ChunkRows: 1000, Report: &report})
	if report.Online || report.DryRun || len(report.Tables) != 2 || report.Rows < 19000 || report.Slot != "cdc_indexer" || report.FromLSN == "" {
		t.Fatalf("snapshot report %+v; want both tables, about 20,000 rows (the churn deletes some), the slot and where run continues", report)
	}
	// Writes after the snapshot's consistent point are the stream's.
	time.Sleep(500 * time.Millisecond)
	writes := w.end(t)
	t.Logf("snapshot output:\n%s", out)
	rate := snapshotRate(t, out)
	t.Logf("%d writes during and after the snapshot", writes)
	if h.replicationSlots() != 1 {
		t.Fatalf("the snapshot did not leave exactly one slot")
	}

	h.start()
	h.requireInSync("snapshot under writes, then run")

	// For comparison: Weaviate's own batch import of the same objects
	// (with their vectors) into a fresh collection.
	objects, secs := h.reimport(h.maps[0])
	t.Logf("THROUGHPUT: snapshot %.0f rows/s (read, render, chunk, embed, write, record); Weaviate batch import of the same %d objects: %.0f objects/s (%.2fs)",
		rate, objects, float64(objects)/secs, secs)
}

// TestSnapshotResumesAfterKill9: a snapshot killed with SIGKILL half way
// continues after its last indexed chunk when started again (it re-reads
// far fewer rows than the table holds), and after `run` Weaviate equals the
// table exactly, including the changes made while nothing ran.
func TestSnapshotResumesAfterKill9(t *testing.T) {
	const total = 30000
	h := newHarness(t, articlesSchema, articles())
	seedArticles(h, total)

	first := h.startSnapshotProcess("--chunk-rows", "500", "--readers", "2")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		n := h.snapshotRowsDone()
		if n >= 4000 {
			t.Logf("kill -9 with %d of %d rows recorded as indexed", n, total)
			break
		}
		if first.exited() {
			t.Fatalf("the snapshot finished (or failed) before it could be killed; log:\n%s", tail(first.log(), 3000))
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d rows indexed after 3 minutes", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	first.kill()
	before := h.snapshotRowsDone()

	// Changes while nothing runs: after the slot's consistent point, so
	// the stream must deliver them; some fall in ranges already read.
	h.exec(`UPDATE articles SET body = 'changed after the kill' WHERE id % 1000 = 7`)
	h.exec(`DELETE FROM articles WHERE id % 1000 = 8`)
	h.exec(`INSERT INTO articles SELECT g, 'late', 'inserted after the kill', 'x', 1, NULL FROM generate_series(40001, 40100) g`)

	second := h.startSnapshotProcess("--chunk-rows", "500", "--readers", "2")
	if err := second.wait(3 * time.Minute); err != nil {
		t.Fatalf("resumed snapshot: %v; log:\n%s", err, tail(second.log(), 3000))
	}
	log := second.log()
	m := regexp.MustCompile(`snapshot of table done.*`).FindString(log)
	read := logInt(t, m, "rows_read")
	earlier := logInt(t, m, "rows_before")
	if !strings.Contains(m, "resumed=true") || !strings.Contains(log, "resuming the snapshot of an earlier run") {
		t.Fatalf("second snapshot did not resume: %s", m)
	}
	if read <= 0 || read >= total || earlier < before {
		t.Fatalf("resumed snapshot read %d rows (earlier run: %d, recorded at the kill: %d); want fewer than the table's %d", read, earlier, before, total)
	}
	t.Logf("resumed: re-read %d of %d rows; %d were indexed before the kill", read, total, earlier)

	h.start()
	h.requireInSync("resumed snapshot, then run")
}

// TestRunFinishesInterruptedSnapshot: when `run` starts after a snapshot
// was killed half way, it finishes that snapshot itself while it streams.
func TestRunFinishesInterruptedSnapshot(t *testing.T) {
	const total = 20000
	h := newHarness(t, articlesSchema, articles())
	seedArticles(h, total)
	p := h.startSnapshotProcess("--chunk-rows", "500", "--readers", "2")
	deadline := time.Now().Add(3 * time.Minute)
	for h.snapshotRowsDone() < 3000 {
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("the snapshot was not caught half way; log:\n%s", tail(p.log(), 3000))
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.kill()
	h.exec(`UPDATE articles SET body = 'changed between kill and run' WHERE id % 997 = 0`)

	h.start()
	deadline = time.Now().Add(3 * time.Minute)
	for {
		var open int
		err := h.db.QueryRow(context.Background(), `SELECT count(*) FROM cdc_indexer.snapshot_progress WHERE NOT done`).Scan(&open)
		if err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d key ranges still unfinished after 3 minutes of run", open)
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.requireInSync("run finished the interrupted snapshot")
}

// TestOnlineSnapshotUnderUpdates: `snapshot --table` against a running
// connector backfills the table without stopping the stream, while heavy
// updates stream to the same rows; no older snapshot read may overwrite a
// newer streamed change, so at the end no document is stale.
func TestOnlineSnapshotUnderUpdates(t *testing.T) {
	const rows = 10000
	h := newHarness(t, articlesSchema+ticketsSchema, articles(), tickets())
	h.start()
	seedArticles(h, rows)
	h.requireInSync("seeded through the stream")

	// Lose rows 5001-5500 from the index (as after a bad restore of
	// Weaviate): only the backfill brings them back. Meanwhile heavy
	// updates hit rows 1-3000.
	lost := make([]string, 0, 500)
	for id := 5001; id <= 5500; id++ {
		lost = append(lost, strconv.Itoa(id))
	}
	if err := h.weaviate.Delete(context.Background(), h.maps[0].Collection, "", "public.articles", lost); err != nil {
		t.Fatal(err)
	}
	h.exec(`DELETE FROM cdc_indexer.documents WHERE source_key = ANY($1)`, lost)
	w := h.startChurn(rows, 3000, 25, false, 15*time.Millisecond)
	out := h.runSnapshot(indexer.SnapshotOptions{Tables: h.cfg.Tables[:1]})
	writes := w.end(t)
	if !strings.Contains(out, "through the running connector") {
		t.Fatalf("snapshot did not go through the running connector:\n%s", out)
	}
	t.Logf("%d writes streamed while the backfill ran", writes)
	h.requireInSync("online backfill under updates")

	if n := h.metric("cdc_indexer_snapshot_rows_total", `table="public.articles"`); n < rows*0.9 {
		t.Fatalf("the running connector backfilled %v rows, want about %d", n, rows)
	}
	var status string
	if err := h.db.QueryRow(context.Background(), `SELECT string_agg(status, ',') FROM cdc_indexer.backfill_requests`).Scan(&status); err != nil || status != "done" {
		t.Fatalf("backfill requests: %q, %v", status, err)
	}
}

// TestSnapshotDryRun reports rows, documents, chunks, tokens and cost, and
// creates or writes nothing: no slot, no state schema, no publication, no
// collection.
func TestSnapshotDryRun(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	seedArticles(h, 3000)
	long := strings.Repeat("A sentence about logical replication and vector search. ", 40)
	h.exec(`UPDATE articles SET body = $1 WHERE id <= 10`, long)
	h.cfg.Embedding.PricePerMillionTokens = 0.02

	out := h.runSnapshot(indexer.SnapshotOptions{DryRun: true, Readers: 2, ChunkRows: 700})
	t.Logf("dry run:\n%s", out)

	// The same counts, computed independently from the table.
	chunker, err := transform.NewChunker(h.cfg.Chunking.MaxTokens, h.cfg.Chunking.Overlap)
	if err != nil {
		t.Fatal(err)
	}
	var chunks, tokens int
	for _, e := range h.expectedRows(h.maps[0]) {
		for _, c := range chunker.Split(e.Text) {
			chunks++
			tokens += transform.CountTokens(c)
		}
	}
	if chunks <= 3000 {
		t.Fatalf("expected long documents to make more chunks than rows, got %d", chunks)
	}
	want := fmt.Sprintf("public.articles  %s  3000  3000  0  %d  %d", h.maps[0].Collection, chunks, tokens)
	if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
		t.Fatalf("dry run output lacks %q:\n%s", want, out)
	}
	cost := fmt.Sprintf("estimated embedding cost: %.4f", float64(tokens)/1e6*0.02)
	if !strings.Contains(out, cost) {
		t.Fatalf("dry run output lacks %q:\n%s", cost, out)
	}
	// The same as the report --json prints.
	var report indexer.SnapshotReport
	h.runSnapshot(indexer.SnapshotOptions{DryRun: true, Report: &report})
	if tb := report.Tables; !report.DryRun || len(tb) != 1 || tb[0].Collection != h.maps[0].Collection || tb[0].Rows != 3000 ||
		tb[0].Documents != 3000 || tb[0].Chunks != int64(chunks) || tb[0].Tokens != int64(tokens) || report.Tokens != int64(tokens) {
		t.Fatalf("dry run report %+v; want 3000 rows, %d chunks, %d tokens", report, chunks, tokens)
	}

	if n := h.replicationSlots(); n != 0 {
		t.Errorf("dry run created %d replication slots", n)
	}
	if h.stateRelation("documents") || h.stateRelation("snapshot_progress") {
		t.Error("dry run created the state schema")
	}
	var pubs int
	if err := h.db.QueryRow(context.Background(), `SELECT count(*) FROM pg_publication`).Scan(&pubs); err != nil || pubs != 0 {
		t.Errorf("dry run created %d publications (%v)", pubs, err)
	}
	if h.hasCollection(h.maps[0].Collection) {
		t.Error("dry run created the collection")
	}
}

// snapshotRate is the rows/s of the snapshot's summary lines.
func snapshotRate(t *testing.T, out string) float64 {
	t.Helper()
	m := regexp.MustCompile(`snapshot done: (\d+) rows in ([0-9.]+)(ms|s|m)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary in snapshot output:\n%s", out)
	}
	rows, _ := strconv.ParseFloat(m[1], 64)
	d, err := time.ParseDuration(m[2] + m[3])
	if err != nil {
		t.Fatal(err)
	}
	return rows / d.Seconds()
}

// logInt reads key=N from a console log line.
func logInt(t *testing.T, line, key string) int64 {
	t.Helper()
	m := regexp.MustCompile(`\b` + key + `=(\d+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no %s in log line %q", key, line)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// reimport writes the objects of a mapping, as stored (vectors included),
// into a new collection with one batch write, and returns how many objects
// and how many seconds Weaviate took.
func (h *harness) reimport(m mapping) (int, float64) {
	h.t.Helper()
	ctx := context.Background()
	byKey := h.indexed(m)
	coll := m.Collection + "Copy"
	spec := sink.CollectionSpec{Name: coll, Vectorizer: "none", Metadata: []transform.MetadataField{
		{Name: "author", Kind: transform.KindText}, {Name: "views", Kind: transform.KindInt}}}
	if _, err := h.weaviate.EnsureCollection(ctx, spec); err != nil {
		h.t.Fatal(err)
	}
	var docs []*transform.Document
	objects := 0
	for key, chunks := range byKey {
		d := &transform.Document{Collection: coll, SourceTable: sourceTable(m.Table), SourceKey: key,
			Metadata: chunks[0].Metadata, ContentHash: chunks[0].ContentHash}
		for _, c := range chunks {
			d.Text += c.Text
			d.Chunks = append(d.Chunks, transform.Chunk{Index: c.ChunkIndex, Text: c.Text, Vector: c.Vector})
		}
		objects += len(chunks)
		docs = append(docs, d)
	}
	start := time.Now()
	err := h.weaviate.Write(ctx, docs)
	secs := time.Since(start).Seconds()
	if err != nil {
		h.t.Fatalf("reimport: %v", err)
	}
	return objects, secs
}
