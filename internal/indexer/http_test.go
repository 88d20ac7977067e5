package indexer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
)

// testObservability serves the endpoints on a free loopback port until
// the test ends.
func testObservability(t *testing.T) (*observability, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o, err := startObservability(addr, metrics.New(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o, "http://" + addr
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /healthz answers while the process runs; /readyz only while streaming
// with every dependency reachable; /v1/wait only once streaming.
func TestObservabilityEndpoints(t *testing.T) {
	o, base := testObservability(t)

	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "not streaming") {
		t.Errorf("readyz before streaming: %d %s", code, body)
	}
	if code, body := get(t, base+"/v1/wait?lsn=0/1"); code != 503 {
		t.Errorf("wait before streaming: %d %s", code, body)
	}
	o.setReady(true)
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("readyz while streaming: %d %s", code, body)
	}
	o.setDependency(depWeaviate, errors.New("connection refused"))
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "weaviate unreachable: connection refused") {
		t.Errorf("readyz with Weaviate down: %d %s", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("healthz with Weaviate down: %d", code)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, `cdc_indexer_dependency_up{dependency="weaviate"} 0`) || !strings.Contains(body, "cdc_indexer_ready 0") {
		t.Errorf("metrics with Weaviate down: %d", code)
	}
	o.setDependency(depWeaviate, nil)
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("readyz after Weaviate came back: %d %s", code, body)
	}

	o.progress.Store(&progress{tracker: checkpoint.NewTracker(100), stream: &caughtUp{}})
	for q, want := range map[string]int{
		"lsn=0/50": 200, "lsn=0/64&timeout=1s": 200, "lsn=0/65&timeout=20ms": 408,
		"lsn=": 400, "timeout=1s": 400, "lsn=0/zz": 400, "lsn=0/1&timeout=x": 400,
	} {
		if code, body := get(t, base+"/v1/wait?"+q); code != want {
			t.Errorf("wait?%s: %d %s, want %d", q, code, body, want)
		}
	}
	if code, body := get(t, base+"/v1/wait?lsn=0/50"); !strings.Contains(body, `"applied_lsn":"0/64"`) {
		t.Errorf("wait body: %d %s", code, body)
	}
	resp, err := http.Post(base+"/v1/wait?lsn=0/1", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST wait: %d", resp.StatusCode)
	}
}

// /v1/wait?searchable=true also waits until Weaviate's vector indexing
// queues have drained (searchable.go).
func TestWaitSearchable(t *testing.T) {
	o, base := testObservability(t)
	o.progress.Store(&progress{tracker: checkpoint.NewTracker(100), stream: &caughtUp{}})
	var looks atomic.Int64
	var drained atomic.Bool
	check := func(context.Context) (bool, error) {
		looks.Add(1)
		return drained.Load(), nil
	}
	o.vectorIndexed.Store(&check)
	if code, body := get(t, base+"/v1/wait?lsn=0/50&searchable=maybe"); code != 400 || !strings.Contains(body, "searchable") {
		t.Errorf("searchable=maybe: %d %s", code, body)
	}
	if code, body := get(t, base+"/v1/wait?lsn=0/50&searchable=false"); code != 200 || strings.Contains(body, "searchable") || looks.Load() != 0 {
		t.Errorf("searchable=false: %d %s, %d looks at the queues", code, body, looks.Load())
	}
	code, body := get(t, base+"/v1/wait?lsn=0/50&searchable=true&timeout=50ms")
	if code != 408 || !strings.Contains(body, "not found by vector search") || looks.Load() == 0 {
		t.Errorf("queues not drained: %d %s", code, body)
	}
	if code, body := get(t, base+"/v1/wait?lsn=0/65&searchable=true&timeout=20ms"); code != 408 || !strings.Contains(body, "not applied") {
		t.Errorf("not applied: %d %s", code, body)
	}
	time.AfterFunc(30*time.Millisecond, func() { drained.Store(true) })
	if code, body := get(t, base+"/v1/wait?lsn=0/50&searchable=true&timeout=5s"); code != 200 || !strings.Contains(body, `"searchable":true`) {
		t.Errorf("queues drained: %d %s", code, body)
	}
}

// A standby is ready without streaming, says so, and counts in
// cdc_indexer_standby; once it streams it is an ordinary instance.
func TestStandbyIsReady(t *testing.T) {
	o, base := testObservability(t)
	o.setStandby(true)
	if code, body := get(t, base+"/readyz"); code != 200 || !strings.Contains(body, "standby") {
		t.Errorf("readyz of a standby: %d %s", code, body)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "cdc_indexer_standby 1") || !strings.Contains(body, "cdc_indexer_ready 1") {
		t.Errorf("metrics of a standby lack cdc_indexer_standby 1 and cdc_indexer_ready 1")
	}
	o.setStandby(false)
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Errorf("readyz after the standby took over, before streaming: %d", code)
	}
	o.setReady(true)
	if code, body := get(t, base+"/readyz"); code != 200 || strings.Contains(body, "standby") {
		t.Errorf("readyz while streaming: %d %s", code, body)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "cdc_indexer_standby 0") {
		t.Errorf("metrics after the takeover lack cdc_indexer_standby 0")
	}
}

// The per-minute summary reports the interval's throughput and freshness.
func TestSummaryLine(t *testing.T) {
	m := metrics.New()
	s := newSummary(m)
	for range 10 {
		m.CountReceived("public.a", "insert")
		m.Changes.WithLabelValues("public.a", "insert", metrics.OutcomeApplied).Inc()
		m.Freshness.Observe(0.03)
	}
	m.Changes.WithLabelValues("public.a", "update", metrics.OutcomeSkipped).Inc()
	var b strings.Builder
	s.log(zerolog.New(&b), s.at.Add(10*time.Second), m)
	line := b.String()
	for _, want := range []string{`"received_per_second":1`, `"applied_per_second":1`, `"skipped":1`, `"dead_lettered":0`,
		`"freshness_p50_seconds":0.035`, `"freshness_p99_seconds":0.05`, `"message":"summary"`} {
		if !strings.Contains(line, want) {
			t.Errorf("summary %s lacks %s", line, want)
		}
	}
	// The next interval starts from zero.
	b.Reset()
	s.log(zerolog.New(&b), s.at.Add(10*time.Second), m)
	if !strings.Contains(b.String(), `"applied_per_second":0`) || strings.Contains(b.String(), "freshness") {
		t.Errorf("second summary %s", b.String())
	}
}
