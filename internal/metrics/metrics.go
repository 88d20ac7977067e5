// Package metrics holds the Prometheus metrics of the indexer. Every name
// starts with cdc_indexer_, as the contract requires.
package metrics

import (
	"regexp"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Outcomes of cdc_indexer_changes_total.
const (
	OutcomeApplied = "applied" // the change reached Weaviate
	OutcomeSkipped = "skipped" // the document was unchanged: nothing embedded or written
	// OutcomeDeadLettered is a change recorded as a dead letter (a row that
	// can never be indexed) instead of being applied; the pipeline counts
	// it with Changes.WithLabelValues(table, op, OutcomeDeadLettered).
	OutcomeDeadLettered = "dead_lettered"
)

// Stages of cdc_indexer_stage_seconds.
const (
	StageDecode = "decode" // pgoutput message to change, per message (sampled)
	StageLookup = "lookup" // the state's record of the batch's rows, per batch
	StageRender = "render" // rows to documents and content hashes, per batch
	StageEmbed  = "embed"  // chunking and embedding, per batch
	StageWrite  = "write"  // Weaviate writes and deletes, per batch
)

// DecodeSampleEvery is how many decoded messages share one decode timing:
// decoding is the reader's hot path, so only one message in this many is
// timed.
const DecodeSampleEvery = 64

// Metrics is one set of registered collectors; a process has one, tests make
// their own so that counts do not leak between them.
type Metrics struct {
	Registry   *prometheus.Registry
	collectors []prometheus.Collector // what New registered (Names)

	Changes        *prometheus.CounterVec // by table, op, outcome (applied, skipped, dead_lettered)
	Freshness      prometheus.Histogram   // commit time to Weaviate acknowledgement
	BatchSize      prometheus.Histogram
	ConfirmedLSN   prometheus.Gauge
	EmbeddedChunks *prometheus.CounterVec // by model
	EmbedTokens    *prometheus.CounterVec // by model, table
	WriteErrors    prometheus.Counter
	Embedding      *EmbeddingMetrics // provider requests, retries, cost, cache (embedding.go)

	Received    *prometheus.CounterVec   // changes taken from the stream, by table and op
	Stage       *prometheus.HistogramVec // by stage (decode, render, embed, write)
	LagBytes    prometheus.Gauge         // server WAL position minus the applied position
	LagSeconds  prometheus.Gauge         // age of the oldest transaction not yet applied
	RetainedWAL prometheus.Gauge         // server WAL position minus the slot's restart_lsn
	Up          *prometheus.GaugeVec     // by dependency (postgres, weaviate): 1 reachable, 0 not
	Ready       prometheus.Gauge         // 1 while /readyz answers 200
	Standby     prometheus.Gauge         // 1 while waiting as a standby for another instance's slot
	Waits       *prometheus.CounterVec   // /v1/wait requests by result (ok, timeout, bad_request)
	MemoryHeld  prometheus.Gauge         // bytes of row data held against pipeline.memory_budget
	DeadLetters prometheus.Gauge         // open dead letters of this connector's mappings
	Verify      *prometheus.GaugeVec     // last periodic verification, by table, collection and kind (rows, missing, stale, extra, duplicate)
	VerifyRuns  *prometheus.CounterVec   // periodic verifications by result (ok, error)
	// Versions is the version number of each configured collection's
	// serving and (during a reindex) filling version.
	Versions     *prometheus.GaugeVec
	MemoryBudget prometheus.Gauge // pipeline.memory_budget in bytes (0: unbounded)

	// Lag remembers the commit time of each transaction not yet applied.
	Lag *LagClock

	queues     *funcGauges // cdc_indexer_queue_depth by queue
	receivedMu sync.RWMutex
	received   map[receivedKey]prometheus.Counter
}

// New registers a fresh set of metrics.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_indexer_changes_total",
			Help: "Row changes handled, by table, operation and outcome (applied; skipped when the document was unchanged; dead_lettered when the row can never be indexed).",
		}, []string{"table", "op", "outcome"}),
		Freshness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cdc_indexer_freshness_seconds",
			Help:    "Time from a transaction's commit in PostgreSQL to Weaviate acknowledging its change.",
			Buckets: []float64{.002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cdc_indexer_batch_size",
			Help:    "Changes applied per worker batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		ConfirmedLSN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_indexer_confirmed_lsn",
			Help: "Highest commit LSN whose changes are all acknowledged by Weaviate.",
		}),
		EmbeddedChunks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_indexer_embedded_chunks_total",
			Help: "Chunks sent to the embedder, by model.",
		}, []string{"model"}),
		EmbedTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_indexer_embedding_tokens_total",
			Help: "cl100k_base tokens sent to the embedding provider (cache hits excluded), by model and table.",
		}, []string{"model", "table"}),
		WriteErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cdc_indexer_weaviate_write_errors_total",
			Help: "Failed Weaviate write attempts (each is retried).",
		}),
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_indexer_changes_received_total",
			Help: "Row changes taken from the replication stream, by table and operation.",
		}, []string{"table", "op"}),
		Stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cdc_indexer_stage_seconds",
			Help:    "Time spent per stage: decode per pgoutput message (one in 64 timed); render, embed (with chunking) and write per batch of one table.",
			Buckets: []float64{1e-6, 5e-6, 2.5e-5, 1e-4, 5e-4, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"stage"}),
		LagBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_indexer_lag_bytes",
			Help: "Bytes of WAL between the server's current position (pg_current_wal_lsn) and the position up to which every change is in Weaviate.",
		}),
		LagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_indexer_lag_seconds",
			Help: "Seconds since the commit of the oldest transaction whose changes are not all in Weaviate yet; 0 when caught up.",
		}),
		RetainedWAL: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_indexer_slot_retained_wal_bytes",
			Help: "Bytes of WAL the replication slot keeps on the server (pg_current_wal_lsn - restart_lsn).",
		}),
		Up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdc_indexer_dependency_up",
			Help: "1 when the last check of the dependency (postgres, weaviate) succeeded, 0 when it failed.",
		}, []string{"dependency"}),
		Ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_indexer_ready",
			Help: "1 while /readyz answers 200 (streaming and every dependency reachable).",
		}),
		Standby: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_indexer_standby",
			Help: "1 while `run --standby` waits for the slot another instance streams, 0 otherwise.",
		}),
		Waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_indexer_wait_requests_total",
			Help: "Read-your-writes /v1/wait requests by result (ok, timeout, bad_request).",
		}, []string{"result"}),
		MemoryHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_indexer_memory_held_bytes",
			Help: "Bytes of row data held (queued changes, batches, snapshot rows read ahead, re-read values), bounded by pipeline.memory_budget.",
		}),
		MemoryBudget: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_indexer_memory_budget_bytes",
			Help: "pipeline.memory_budget in bytes; 0 when unbounded.",
		}),
		Verify: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdc_indexer_verify",
			Help: "Last periodic verification (verify.interval) per mapping, by kind: rows read, and missing, stale, extra, duplicate and state (state schema disagreeing with Weaviate) counts.",
		}, []string{"table", "collection", "kind"}),
		VerifyRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_indexer_verify_runs_total",
			Help: "Periodic verifications by result (ok, error).",
		}, []string{"result"}),
		Versions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdc_indexer_collection_version",
			Help: "Version number of each configured collection's serving version and, while a reindex runs, of its filling version (phase=serving|filling).",
		}, []string{"collection", "phase"}),
		DeadLetters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdc_indexer_dead_letters",
			Help: "Open dead letters (rows that could not be indexed and wait for a fix), as the state schema holds them.",
		}),
		Lag:    &LagClock{},
		queues: newFuncGauges("cdc_indexer_queue_depth", "Items waiting, by queue: stream (decoded messages not yet dispatched), live (changes waiting for a worker), backfill (snapshot rows waiting for a worker), in_flight (changes dispatched and not yet acknowledged).", "queue"),
	}
	m.register(m.Changes, m.Freshness, m.BatchSize, m.ConfirmedLSN,
		m.EmbeddedChunks, m.EmbedTokens, m.WriteErrors,
		m.Received, m.Stage, m.LagBytes, m.LagSeconds, m.RetainedWAL, m.Up, m.Ready, m.Standby, m.Waits, m.MemoryHeld, m.MemoryBudget, m.Verify, m.VerifyRuns, m.Versions, m.DeadLetters, m.queues, buildInfo(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "cdc_indexer"}))
	m.Embedding = newEmbeddingMetrics(m.register)
	return m
}

// register registers collectors and remembers them for Names.
func (m *Metrics) register(cs ...prometheus.Collector) {
	m.Registry.MustRegister(cs...)
	m.collectors = append(m.collectors, cs...)
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// Names are the names of the metrics the service exports (labelled ones
// included, which /metrics lists only once they have a child), sorted: for
// checks that dashboards and alert rules name only what exists. Metrics
// other packages register on Registry (snapshot progress) are not in it.
func (m *Metrics) Names() []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		for _, c := range m.collectors {
			c.Describe(ch)
		}
		close(ch)
	}()
	var out []string
	for d := range ch {
		if n := fqName.FindStringSubmatch(d.String()); n != nil && !slices.Contains(out, n[1]) {
			out = append(out, n[1])
		}
	}
	slices.Sort(out)
	return out
}

type receivedKey struct{ table, op string }

// CountReceived counts one change taken from the stream. It caches the
// labelled counter, since it runs once per change on the dispatcher.
func (m *Metrics) CountReceived(table, op string) {
	k := receivedKey{table, op}
	m.receivedMu.RLock()
	c, ok := m.received[k]
	m.receivedMu.RUnlock()
	if !ok {
		c = m.Received.WithLabelValues(table, op)
		m.receivedMu.Lock()
		if m.received == nil {
			m.received = map[receivedKey]prometheus.Counter{}
		}
		m.received[k] = c
		m.receivedMu.Unlock()
	}
	c.Inc()
}

// ObserveStage records the time a stage took since start.
func (m *Metrics) ObserveStage(stage string, start time.Time) {
	m.Stage.WithLabelValues(stage).Observe(time.Since(start).Seconds())
}

// ObserveDecode records the time decoding one pgoutput message took.
func (m *Metrics) ObserveDecode(d time.Duration) {
	m.Stage.WithLabelValues(StageDecode).Observe(d.Seconds())
}

// SetQueueDepth makes cdc_indexer_queue_depth{queue=name} report fn() at
// each scrape; a nil fn removes it.
func (m *Metrics) SetQueueDepth(name string, fn func() int) { m.queues.set(name, fn) }

// funcGauges is one gauge family whose values are read at scrape time from
// functions registered after the metrics were created (the queues exist only
// once the pipeline does).
type funcGauges struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	fns  map[string]func() int
}

func newFuncGauges(name, help, label string) *funcGauges {
	return &funcGauges{desc: prometheus.NewDesc(name, help, []string{label}, nil), fns: map[string]func() int{}}
}

func (g *funcGauges) set(name string, fn func() int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fn == nil {
		delete(g.fns, name)
		return
	}
	g.fns[name] = fn
}

func (g *funcGauges) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *funcGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	names := make([]string, 0, len(g.fns))
	for n := range g.fns {
		names = append(names, n)
	}
	fns := make([]func() int, len(names))
	sort.Strings(names)
	for i, n := range names {
		fns[i] = g.fns[n]
	}
	g.mu.Unlock()
	for i, n := range names {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(fns[i]()), n)
	}
}

// LagClock keeps the commit time of every transaction the pipeline received
// whose changes are not all applied yet, oldest first, so that the lag in
// seconds is the age of the oldest one (0 when there is none). Received is
// called by the single dispatching goroutine; Lag from any goroutine.
type LagClock struct {
	last pglogrepl.LSN // dispatcher only: the transaction last recorded

	mu        sync.Mutex
	pending   []lagEntry
	confirmed func() pglogrepl.LSN
}

type lagEntry struct {
	lsn    pglogrepl.LSN
	commit time.Time
}

// maxLagEntries bounds the list between two calls of Lag: past it, Received
// drops the applied entries itself (when SetConfirmed told it how).
const maxLagEntries = 4096

// SetConfirmed gives the clock the position up to which everything is
// applied, so that it can drop entries between calls of Lag.
func (c *LagClock) SetConfirmed(fn func() pglogrepl.LSN) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.confirmed = fn
}

// Received records a change of the transaction committing at lsn; only the
// first change of each transaction costs anything.
func (c *LagClock) Received(lsn pglogrepl.LSN, commit time.Time) {
	if lsn == c.last {
		return
	}
	c.last = lsn
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) >= maxLagEntries && c.confirmed != nil {
		c.drop(c.confirmed())
	}
	c.pending = append(c.pending, lagEntry{lsn, commit})
}

// Lag drops the transactions at or below confirmed and returns how long ago
// the oldest remaining one committed, or 0.
func (c *LagClock) Lag(confirmed pglogrepl.LSN, now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop(confirmed)
	if len(c.pending) == 0 || c.pending[0].commit.IsZero() {
		return 0
	}
	return max(0, now.Sub(c.pending[0].commit))
}

func (c *LagClock) drop(confirmed pglogrepl.LSN) {
	i := 0
	for i < len(c.pending) && c.pending[i].lsn <= confirmed {
		i++
	}
	if i > 0 {
		c.pending = append(c.pending[:0], c.pending[i:]...)
	}
}

// ObserveVerify records one mapping's verification counts, by kind (rows,
// missing, stale, extra, duplicate, state).
func (m *Metrics) ObserveVerify(table, collection string, counts map[string]int64) {
	for kind, n := range counts {
		m.Verify.WithLabelValues(table, collection, kind).Set(float64(n))
	}
}

// build is what cdc_indexer_build_info reports (SetBuild).
var build = struct{ version, commit string }{"dev", "unknown"}

// SetBuild records the binary's version and commit for
// cdc_indexer_build_info; call it before New.
func SetBuild(version, commit string) { build.version, build.commit = version, commit }

func buildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cdc_indexer_build_info",
		Help: "1, labelled with the binary's version, commit and Go version.",
	}, []string{"version", "commit", "goversion"})
	g.WithLabelValues(build.version, build.commit, runtime.Version()).Set(1)
	return g
}
