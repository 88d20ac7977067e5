package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// TestKill9InLargeTransaction kills the connector in the middle of a
// 50,000-row transaction. Until Weaviate holds every row of it, the slot
// must not confirm its commit; after a restart Weaviate must equal the table
// exactly.
func TestKill9InLargeTransaction(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	m := h.maps[0]
	cmd := h.startProcess()
	h.exec(`INSERT INTO articles SELECT g, 'seed ' || g, 'seed body', 'a', g, NULL FROM generate_series(1, 100) g`)
	h.requireInSync("seed rows")

	h.exec(`INSERT INTO articles SELECT g, 'title ' || g, 'body of row ' || g, 'b', g, NULL FROM generate_series(1001, 51000) g`)
	const total = 50100

	// Each sample is the slot's position read before Weaviate's count: if
	// the position already covers the big transaction, the count must be
	// complete. The transaction's exact commit LSN is known only afterwards,
	// from the source_lsn it wrote.
	type sample struct {
		confirmed pglogrepl.LSN
		count     int
	}
	var samples []sample
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		confirmed := h.confirmedLSN()
		n, err := h.weaviate.Count(ctx, m.Collection, "public.articles")
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, sample{confirmed, n})
		if n >= 5000 {
			t.Logf("kill -9 with %d of %d rows indexed, slot at %s", n, total, confirmed)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d rows indexed after 5 minutes", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = cmd.Process.Wait()
	confirmed := h.confirmedLSN()
	n, err := h.weaviate.Count(ctx, m.Collection, "public.articles")
	if err != nil {
		t.Fatal(err)
	}
	samples = append(samples, sample{confirmed, n})

	h.startProcess()
	h.requireInSync("restart after kill -9")

	commit, err := pglogrepl.ParseLSN(h.sourceLSNs(m)["1001"])
	if err != nil {
		t.Fatalf("source_lsn of a row of the big transaction: %v", err)
	}
	for _, s := range samples {
		if s.confirmed >= commit && s.count < total {
			t.Fatalf("slot confirmed %s, covering the transaction committed at %s, while Weaviate held only %d of %d rows", s.confirmed, commit, s.count, total)
		}
	}
	t.Logf("%d samples before and at the kill: slot never covered the commit %s early", len(samples), commit)
}

// TestNoOpSkipSurvivesRestart: the content hashes that make an unchanged
// document cost nothing are persisted, not only cached in memory.
func TestNoOpSkipSurvivesRestart(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	m := h.maps[0]
	c := h.start()
	h.exec(`INSERT INTO articles VALUES (1, 'kept', 'as is', 'ann', 1, NULL)`)
	h.requireInSync("insert")
	c.stop(t)

	before := h.sourceLSNs(m)
	h.start()
	h.exec(`UPDATE articles SET internal_note = 'outside the template' WHERE id = 1`)
	h.requireInSync("no-op update after restart")
	if after := h.sourceLSNs(m); after["1"] != before["1"] {
		t.Fatalf("no-op update after restart rewrote the row: source_lsn %s -> %s", before["1"], after["1"])
	}
	if n := h.metric("cdc_indexer_changes_total", `op="update"`, `outcome="skipped"`); n != 1 {
		t.Fatalf("skipped updates = %v, want 1", n)
	}
}

// TestLongDocumentChunks: a document longer than max_tokens becomes several
// objects that concatenate back to it; shrinking it removes the extra ones.
func TestLongDocumentChunks(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	m := h.maps[0]
	h.start()
	var long strings.Builder
	for i := 0; i < 12; i++ {
		long.WriteString("This paragraph talks about replication slots, write-ahead logs and vector indexes at some length. ")
		long.WriteString("It goes on for a while so that the document needs several chunks.\n\n")
	}
	h.exec(`INSERT INTO articles VALUES (1, 'Long', $1, 'ann', 1, NULL), (2, 'Short', 'tiny', 'bob', 1, NULL)`, long.String())
	h.requireInSync("long document")
	if n := len(h.indexed(m)["1"]); n < 3 {
		t.Fatalf("long document became %d chunks; want several at max_tokens 64", n)
	}
	h.exec(`UPDATE articles SET body = 'now short' WHERE id = 1`)
	h.requireInSync("shrunk document")
	if n := len(h.indexed(m)["1"]); n != 1 {
		t.Fatalf("shrunk document has %d objects, want 1", n)
	}
}
