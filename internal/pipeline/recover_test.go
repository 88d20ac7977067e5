package pipeline

import (
	"context"
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
