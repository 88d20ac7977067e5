// Package metrics holds the Prometheus metrics of the indexer. Every name
// starts with cdc_indexer_, as the contract requires.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is one set of registered collectors; a process has one, tests make
// their own so that counts do not leak between them.
type Metrics struct {
	Registry *prometheus.Registry

	Changes        *prometheus.CounterVec // by table, op, outcome (applied, skipped)
	Freshness      prometheus.Histogram   // commit time to Weaviate acknowledgement
	BatchSize      prometheus.Histogram
	ConfirmedLSN   prometheus.Gauge
	EmbeddedChunks *prometheus.CounterVec // by model
	EmbedTokens    *prometheus.CounterVec // by model
	WriteErrors    prometheus.Counter
}

// New registers a fresh set of metrics.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_indexer_changes_total",
			Help: "Row changes handled, by table, operation and outcome (applied, skipped when the document was unchanged).",
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
			Help: "cl100k_base tokens sent to the embedder, by model.",
		}, []string{"model"}),
		WriteErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cdc_indexer_weaviate_write_errors_total",
			Help: "Failed Weaviate write attempts (each is retried).",
		}),
	}
	m.Registry.MustRegister(m.Changes, m.Freshness, m.BatchSize, m.ConfirmedLSN,
		m.EmbeddedChunks, m.EmbedTokens, m.WriteErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "cdc_indexer"}))
	return m
}
