package metrics

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

func TestLagClock(t *testing.T) {
	var c LagClock
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c.Received(10, t0)
	c.Received(10, t0.Add(time.Hour)) // same transaction: ignored
	c.Received(20, t0.Add(time.Second))
	now := t0.Add(5 * time.Second)
	if got := c.Lag(5, now); got != 5*time.Second {
		t.Errorf("lag %v, want 5s (oldest pending committed at t0)", got)
	}
	if got := c.Lag(10, now); got != 4*time.Second {
		t.Errorf("lag %v, want 4s", got)
	}
	if got := c.Lag(20, now); got != 0 {
		t.Errorf("lag %v when caught up, want 0", got)
	}
}

func TestLagClockBounded(t *testing.T) {
	var c LagClock
	var confirmed pglogrepl.LSN
	c.SetConfirmed(func() pglogrepl.LSN { return confirmed })
	t0 := time.Now()
	for i := 1; i <= 3*maxLagEntries; i++ {
		c.Received(pglogrepl.LSN(i), t0)
		confirmed = pglogrepl.LSN(i - 1)
	}
	if n := len(c.pending); n > maxLagEntries {
		t.Errorf("%d entries kept for one pending transaction", n)
	}
}

func TestQueueDepthAndReceived(t *testing.T) {
	m := New()
	m.SetQueueDepth("live", func() int { return 7 })
	m.CountReceived("public.a", "insert")
	m.CountReceived("public.a", "insert")
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "cdc_indexer_") && !strings.HasPrefix(f.GetName(), "go_") {
			t.Errorf("metric %s lacks the cdc_indexer_ prefix", f.GetName())
		}
		for _, mt := range f.Metric {
			key := f.GetName()
			for _, l := range mt.Label {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case mt.Counter != nil:
				values[key] = mt.Counter.GetValue()
			case mt.Gauge != nil:
				values[key] = mt.Gauge.GetValue()
			}
		}
	}
	if got := values["cdc_indexer_changes_received_total,op=insert,table=public.a"]; got != 2 {
		t.Errorf("received %v, want 2", got)
	}
	if got := values["cdc_indexer_queue_depth,queue=live"]; got != 7 {
		t.Errorf("queue depth %v, want 7", got)
	}
}

func TestBuildInfo(t *testing.T) {
	SetBuild("v9.9.9", "abc123")
	defer SetBuild("dev", "unknown")
	m := New()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "cdc_indexer_build_info" {
			continue
		}
		labels := map[string]string{}
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["version"] != "v9.9.9" || labels["commit"] != "abc123" || labels["goversion"] == "" || f.GetMetric()[0].GetGauge().GetValue() != 1 {
			t.Fatalf("build_info %v = %v", labels, f.GetMetric()[0].GetGauge().GetValue())
		}
		return
	}
	t.Fatal("no cdc_indexer_build_info")
}

// The shipped Grafana dashboard has a panel for every metric the process
// exports (the Go runtime's own aside).
func TestDashboardShowsEveryMetric(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana/cdc-indexer.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	var exprs strings.Builder
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs.WriteString(tg.Expr + "\n")
		}
	}
	m := New()
	m.Verify.WithLabelValues("t", "c", "rows").Set(1) // vectors show once they have a child
	m.VerifyRuns.WithLabelValues("ok").Inc()
	m.Changes.WithLabelValues("t", "insert", OutcomeApplied).Inc()
	m.Received.WithLabelValues("t", "insert").Inc()
	m.EmbeddedChunks.WithLabelValues("m").Inc()
	m.EmbedTokens.WithLabelValues("m", "t").Inc()
	m.Stage.WithLabelValues(StageRender).Observe(1)
	m.Up.WithLabelValues("postgres").Set(1)
	m.Waits.WithLabelValues("ok").Inc()
	m.Embedding.Requests.WithLabelValues("m", "200").Inc()
	m.Embedding.Retries.WithLabelValues("m", "500").Inc()
	m.Embedding.Cost.WithLabelValues("m", "t").Inc()
	m.Embedding.CacheHits.WithLabelValues("m").Inc()
	m.Embedding.CircuitOpen.WithLabelValues("m").Set(0)
	m.Embedding.Truncated.WithLabelValues("m").Inc()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		name := f.GetName()
		if !strings.HasPrefix(name, "cdc_indexer_") || strings.HasPrefix(name, "cdc_indexer_process_") {
			continue
		}
		if !strings.Contains(exprs.String(), name) {
			t.Errorf("no dashboard panel shows %s", name)
		}
	}
}

// Names lists every metric New registers, labelled ones before they have
// a child too.
func TestNames(t *testing.T) {
	names := New().Names()
	for _, want := range []string{"cdc_indexer_ready", "cdc_indexer_freshness_seconds", "cdc_indexer_verify", "cdc_indexer_embedding_circuit_open", "cdc_indexer_build_info"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() lacks %s: %v", want, names)
		}
	}
	if !slices.IsSorted(names) {
		t.Error("Names() is not sorted")
	}
}
