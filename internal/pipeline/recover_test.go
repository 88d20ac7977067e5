package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"
	dto "github.com/prometheus/client_model/go"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
)

// forgetfulState is the state of a process killed after Weaviate
// acknowledged a write and before the state recorded it.
type forgetfulState struct{ *state.Store }

func (forgetfulState) ApplyDocuments(context.Context, string, string, []state.DocState, []string) error {
	return nil
}

// After an unclean stop, a replayed change whose document hashes to what the
// state recorded may still differ from what Weaviate holds: the killed
// process wrote a newer version it never recorded. Within RecoverUntil the
// pipeline writes such a change instead of skipping it.
func TestReplayAfterUncleanStopRewritesRecordedHash(t *testing.T) {
	f := newFixture(t, "{{.title}}")
	apply := func(cfg Config, st State, c *connector.Change, lsn pglogrepl.LSN) {
		t.Helper()
		run := f.pipeline(t, cfg, st)
		run.send(lsn, c)
		run.waitConfirmed(lsn)
		run.stop()
	}
	apply(Config{}, nil, f.row(connector.OpInsert, 1, "first version", "{}"), 100)
	// The killed process: Weaviate has the second version, the state the first.
	apply(Config{}, forgetfulState{f.state}, f.row(connector.OpUpdate, 1, "second version", "{}"), 200)
	if got := f.texts(t)["1"]; got != "second version" {
		t.Fatalf("setup: Weaviate holds %q", got)
	}

	// The row went back to the first version; its replay hashes as recorded.
	revert := func() *connector.Change { return f.row(connector.OpUpdate, 1, "first version", "{}") }
	// Trusting the state, it is skipped and Weaviate stays stale: the
	// hazard RecoverUntil exists for.
	apply(Config{}, nil, revert(), 300)
	if got := f.texts(t)["1"]; got != "second version" {
		t.Fatalf("a trusted replay with the recorded hash was not skipped: Weaviate holds %q", got)
	}
	apply(Config{RecoverUntil: 400}, nil, revert(), 300)
	if got := f.texts(t)["1"]; got != "first version" {
		t.Fatalf("replay after an unclean stop: Weaviate holds %q, want %q", got, "first version")
	}
	// Past RecoverUntil the state is trusted again: an unchanged document
	// is skipped.
	run := f.pipeline(t, Config{RecoverUntil: 400}, nil)
	run.send(500, revert())
	run.waitConfirmed(500)
	run.stop()
	skipped := run.p.metrics.Changes.WithLabelValues(f.table.SourceTable, connector.OpUpdate.String(), metrics.OutcomeSkipped)
	var m dto.Metric
	if err := skipped.Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 1 {
		t.Fatalf("unchanged update past RecoverUntil: %v skipped, want 1", n)
	}
}

// A snapshot stopped while it indexed a chunk may leave rows in Weaviate that
// the state does not record; the resumed snapshot re-reads that chunk
// (marked Unrecorded) and must not leave the old version's surplus chunks.
func TestResumedSnapshotRemovesUnrecordedChunks(t *testing.T) {
	f := newFixture(t, "{{.title}}")
	long := strings.Repeat("a long first version of the row that needs several chunks ", 40)
	backfill := func(st State, title string, unrecorded bool) {
		t.Helper()
		run := f.pipeline(t, Config{}, st)
		c := f.row(connector.OpInsert, 1, title, "{}")
		rows := []BackfillRow{{Key: c.Key, Row: c.Row, Unrecorded: unrecorded}}
		if err := run.p.Backfill(f.ctx, f.table, rows, 100); err != nil {
			t.Fatal(err)
		}
		run.stop()
	}
	chunks := func() int {
		t.Helper()
		objs, err := f.sink.Objects(f.ctx, f.coll, f.table.SourceTable)
		if err != nil {
			t.Fatal(err)
		}
		return len(objs)
	}
	// The stopped snapshot: Weaviate has the long version, the state nothing.
	backfill(forgetfulState{f.state}, long, false)
	if n := chunks(); n < 3 {
		t.Fatalf("setup: the long version has %d chunks, want several", n)
	}
	// Read again, as a fresh snapshot would read it, the short version
	// trusts the state and leaves the surplus chunks: the hazard.
	backfill(forgetfulState{f.state}, "short", false)
	if n := chunks(); n < 3 {
		t.Fatalf("a trusting backfill removed chunks it did not know of: %d left", n)
	}
	backfill(nil, "short", true)
	if got := f.texts(t)["1"]; got != "short" || chunks() != 1 {
		t.Fatalf("resumed snapshot: Weaviate holds %d objects, text %q; want one, %q", chunks(), got, "short")
	}
}
