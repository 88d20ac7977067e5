package pipeline

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

// Big rows from the stream and a backfill at once, through a budget that
// holds a few of them: the reader and the backfill wait, nothing is dropped,
// the budget is never exceeded, and everything it held is handed back.
func TestPipelineHoldsRowsWithinItsBudget(t *testing.T) {
	f := newFixture(t, `{{printf "%.24s" .title}}`)
	const budget = 256 << 10
	r := f.pipeline(t, Config{Workers: 2, MaxBatch: 50, MemoryBudget: budget}, nil)
	var peak atomic.Int64
	r.p.Budget().Observe(func(held int64) {
		for {
			p := peak.Load()
			if held <= p || peak.CompareAndSwap(p, held) {
				return
			}
		}
	})
	big := func(i int) string { return fmt.Sprintf("row %04d ", i) + strings.Repeat("x", 20<<10) }

	backfilled := make(chan error, 1)
	go func() {
		rows := make([]BackfillRow, 100)
		for i := range rows {
			c := f.row(connector.OpInsert, 1000+i, big(1000+i), "{}")
			rows[i] = BackfillRow{Key: c.Key, Row: c.Row}
		}
		backfilled <- r.p.Backfill(f.ctx, f.table, rows, 1)
	}()
	for i := range 200 {
		r.send(pglogrepl.LSN(10+i), f.row(connector.OpInsert, i, big(i), "{}"))
	}
	r.waitConfirmed(209)
	select {
	case err := <-backfilled:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("backfill did not finish")
	}
	r.stop()

	if got := len(f.texts(t)); got != 300 {
		t.Fatalf("%d rows indexed, want 300", got)
	}
	if p := peak.Load(); p > budget || p < budget/2 {
		t.Fatalf("peak held %d bytes: want within the budget of %d and near it (the rows outsize it 30 times)", p, budget)
	}
	if h := r.p.Budget().Held(); h != 0 {
		t.Fatalf("%d bytes still held after every row was applied", h)
	}
}
