package metrics

import "github.com/prometheus/client_golang/prometheus"

// EmbeddingMetrics describe the embedding provider: what was sent, what it
// cost, how it answered. model is the embedder's model id
// (openai/<model>/<dimensions>, hash/v1/<dimensions>). Tokens per model and
// table are Metrics.EmbedTokens (cdc_indexer_embedding_tokens_total).
type EmbeddingMetrics struct {
	Requests    *prometheus.CounterVec // by model, outcome (HTTP status, timeout, error)
	Retries     *prometheus.CounterVec // by model, reason (HTTP status, timeout, error, invalid_response)
	Cost        *prometheus.CounterVec // by model, table
	CacheHits   *prometheus.CounterVec // by model
	CircuitOpen *prometheus.GaugeVec   // by model
	Truncated   *prometheus.CounterVec // by model
}

func newEmbeddingMetrics(register func(...prometheus.Collector)) *EmbeddingMetrics {
	e := &EmbeddingMetrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_indexer_embedding_requests_total",
			Help: "HTTP requests to the embedding provider, by model and outcome (the HTTP status, timeout or error).",
		}, []string{"model", "outcome"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_indexer_embedding_retries_total",
			Help: "Embedding requests retried after a failure, by model and reason (HTTP status, timeout, error, invalid_response).",
		}, []string{"model", "reason"}),
		Cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_indexer_embedding_cost_total",
			Help: "Estimated cost of the tokens sent to the embedding provider (embedding.price_per_million_tokens), by model and table.",
		}, []string{"model", "table"}),
		CacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_indexer_embedding_cache_hits_total",
			Help: "Chunks whose vector came from the embedding cache instead of the provider, by model.",
		}, []string{"model"}),
		CircuitOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdc_indexer_embedding_circuit_open",
			Help: "1 while the embedding provider keeps failing and embedding is paused (circuit breaker open), else 0.",
		}, []string{"model"}),
		Truncated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_indexer_embedding_truncated_total",
			Help: "Inputs cut to the model's input limit (embedding.max_input_tokens) before embedding, by model.",
		}, []string{"model"}),
	}
	register(e.Requests, e.Retries, e.Cost, e.CacheHits, e.CircuitOpen, e.Truncated)
	return e
}
