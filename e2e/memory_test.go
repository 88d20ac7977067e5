package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// Memory is bounded by bytes (pipeline.memory_budget), not by item counts:
// a backlog of big rows, read by a snapshot or from the slot after an
// outage, never holds more than the budget, so the connector's peak memory
// does not grow with the rows' size.

// bigRows holds rows of about 100 KB (a body of 100,000 characters that
// PostgreSQL stores compressed, so the test database stays small while the
// connector decodes every byte). The template renders the title and the
// body's first 300 characters: the rows are big in memory, their documents
// one chunk, so the test measures what the connector holds rather than
// Weaviate's import of millions of chunks.
const bigRowsSchema = `CREATE TABLE big (id int PRIMARY KEY, title text NOT NULL, body text NOT NULL)`

func bigRows() mapping {
	return mapping{
		Table:    "public.big",
		Template: `{{.title}} {{printf "%.300s" .body}}`,
		KeySQL:   "id::text",
		TextSQL:  "title || ' ' || left(body, 300)",
	}
}

// insertBigRows adds rows first..last, 1,000 to a transaction.
func (h *harness) insertBigRows(first, last int) {
	for lo := first; lo <= last; lo += 1000 {
		h.exec(fmt.Sprintf(`INSERT INTO big SELECT g, 'row ' || g, repeat(md5(g::text), 3125)
			FROM generate_series(%d, %d) g`, lo, min(lo+999, last)))
	}
}

// rssOverhead is what the process holds beyond the budget's row data: the
// Go runtime and the garbage collector's headroom, the libraries, the
// decoded changes in the hand-over to the dispatcher, and the documents,
// vectors and requests of the batches being written. Measured peaks are
// logged; docs/deployment.md ("Memory") records them.
const rssOverhead = 192 << 20

func TestBacklogOfBigRowsStaysWithinMemoryBudget(t *testing.T) {
	h := newHarness(t, bigRowsSchema, bigRows())
	budget := int64(64 << 20)
	h.setConfig("pipeline.memory_budget", "64MB")
	limit := budget + rssOverhead

	// A snapshot of 2,000 rows (200 MB) on the first start.
	h.insertBigRows(1, 2000)
	snap := h.startSnapshotProcess()
	if err := snap.wait(5 * time.Minute); err != nil {
		t.Fatalf("snapshot: %v\n%s", err, tail(snap.log(), 4000))
	}
	peak := snap.peakRSS()
	t.Logf("snapshot of 2,000 rows of 100 KB: peak RSS %.1f MiB (budget %d MiB)", float64(peak)/(1<<20), budget>>20)
	if peak > limit {
		t.Errorf("snapshot peak RSS %.1f MiB, above the budget of %d MiB plus %d MiB", float64(peak)/(1<<20), budget>>20, rssOverhead>>20)
	}
	h.requireEqual("snapshot of big rows")

	// 20,000 rows (2 GB) written while the connector is stopped: after an
	// outage, the slot holds them all and `run` reads them as fast as
	// PostgreSQL sends.
	h.insertBigRows(2001, 22000)
	h.exec(`UPDATE big SET title = title || ' edited' WHERE id % 10 = 0`)
	target := h.currentLSN()
	run := h.startCommand("run")
	h.waitConfirmedByProcess(run, target, 10*time.Minute)
	run.terminate(t, time.Minute)
	peak = run.peakRSS()
	t.Logf("backlog of 20,000 rows of 100 KB: peak RSS %.1f MiB (budget %d MiB)", float64(peak)/(1<<20), budget>>20)
	if peak > limit {
		t.Errorf("run peak RSS %.1f MiB, above the budget of %d MiB plus %d MiB", float64(peak)/(1<<20), budget>>20, rssOverhead>>20)
	}
	h.requireEqual("backlog of big rows")
}

// waitConfirmedByProcess waits until the slot confirms target, failing at
// once if the process exits first.
func (h *harness) waitConfirmedByProcess(p *process, target pglogrepl.LSN, timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for h.confirmedLSN() < target {
		if p.exited() {
			h.t.Fatalf("%s exited before confirming %s:\n%s", p.cmd.Args[1], target, tail(p.log(), 4000))
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("slot confirmed %s, not %s within %s", h.confirmedLSN(), target, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
