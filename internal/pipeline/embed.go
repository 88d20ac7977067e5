package pipeline

import (
	"context"
	"fmt"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/embedcache"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// usageEmbedder is an embedder that reports what each call sent to the
// provider (embedcache.Embedder: cache hits cost nothing).
type usageEmbedder interface {
	EmbedUsage(ctx context.Context, texts []string) ([][]float32, embedcache.Usage, error)
}

// usageRecorder keeps the embedding usage in the state schema for
// `cdc-indexer status`; *state.Store is one.
type usageRecorder interface {
	AddEmbeddingUsage(ctx context.Context, model, sourceTable string, texts, tokens int64, cost float64) error
}

// chunkAndEmbed splits each document and fills in its vectors.
//
// With a caching embedder all texts of the call go to it at once: it
// answers unchanged chunks (and metadata-only changes) from the cache with
// one lookup, batches what is left by the provider's limits itself, and
// reports the tokens it sent, which are counted per model and table. Other
// embedders get at most EmbedBatch texts per call.
//
// When the provider rejects some inputs, the other documents get their
// vectors and the returned error wraps embedding.InputErrors, whose
// indexes count the chunks of docs in order.
func (p *Pipeline) chunkAndEmbed(ctx context.Context, t *Table, docs []*transform.Document) error {
	enc := p.encoding(t)
	var texts []string
	var slots []*transform.Chunk
	for _, d := range docs {
		parts := enc.Chunker.Split(d.Text)
		d.Chunks = make([]transform.Chunk, len(parts))
		for i, s := range parts {
			d.Chunks[i] = transform.Chunk{Index: i, Text: s}
		}
		if enc.Embedder == nil {
			continue
		}
		for i := range d.Chunks {
			texts = append(texts, d.Chunks[i].Text)
			slots = append(slots, &d.Chunks[i])
		}
	}
	if len(texts) == 0 {
		return nil
	}
	model := enc.Embedder.ModelID()
	if ue, ok := enc.Embedder.(usageEmbedder); ok {
		vecs, u, err := ue.EmbedUsage(ctx, texts)
		p.recordUsage(ctx, docs[0].SourceTable, model, u)
		if err != nil {
			if ie, ok := embedding.AsInputErrors(err); ok && len(vecs) == len(texts) {
				for i, v := range vecs {
					slots[i].Vector = v
				}
				return fmt.Errorf("embed %d chunks with %s: %w", len(texts), model, ie)
			}
			return fmt.Errorf("embed %d chunks with %s: %w", len(texts), model, err)
		}
		if len(vecs) != len(texts) {
			return fmt.Errorf("embedder %s returned %d vectors for %d texts", model, len(vecs), len(texts))
		}
		for i, v := range vecs {
			slots[i].Vector = v
		}
		return nil
	}
	for start := 0; start < len(texts); start += p.cfg.EmbedBatch {
		end := min(start+p.cfg.EmbedBatch, len(texts))
		vecs, err := enc.Embedder.Embed(ctx, texts[start:end])
		if err != nil {
			return fmt.Errorf("embed %d chunks with %s: %w", end-start, model, err)
		}
		if len(vecs) != end-start {
			return fmt.Errorf("embedder %s returned %d vectors for %d texts", model, len(vecs), end-start)
		}
		for i, v := range vecs {
			slots[start+i].Vector = v
		}
		p.metrics.EmbeddedChunks.WithLabelValues(model).Add(float64(end - start))
	}
	return nil
}

// recordUsage counts what an embedding call sent, in the metrics and in
// the state schema. The state write is best effort: losing it loses an
// operator's statistic, never data.
func (p *Pipeline) recordUsage(ctx context.Context, table, model string, u embedcache.Usage) {
	m := p.metrics.Embedding
	if u.Hits > 0 && m != nil {
		m.CacheHits.WithLabelValues(model).Add(float64(u.Hits))
	}
	if u.Texts == 0 {
		return
	}
	p.metrics.EmbeddedChunks.WithLabelValues(model).Add(float64(u.Texts))
	p.metrics.EmbedTokens.WithLabelValues(model, table).Add(float64(u.Tokens))
	if m != nil {
		m.Cost.WithLabelValues(model, table).Add(u.Cost)
	}
	if r, ok := p.state.(usageRecorder); ok {
		if err := r.AddEmbeddingUsage(ctx, model, table, int64(u.Texts), int64(u.Tokens), u.Cost); err != nil && ctx.Err() == nil {
			p.log.Warn().Err(err).Msg("could not record embedding usage")
		}
	}
}

// observeEmbedder sends the provider's requests, retries and circuit state
// to the metrics, when the embedder reports them.
func observeEmbedder(e embedding.Embedder, m *metrics.Metrics) {
	o, ok := e.(interface{ SetObserver(embedding.EmbedObserver) })
	if !ok || m.Embedding == nil {
		return
	}
	o.SetObserver(embedObserver{m.Embedding})
}

type embedObserver struct{ m *metrics.EmbeddingMetrics }

func (o embedObserver) EmbedRequest(model, outcome string, inputs, tokens int) {
	o.m.Requests.WithLabelValues(model, outcome).Inc()
}

func (o embedObserver) EmbedRetry(model, reason string) {
	o.m.Retries.WithLabelValues(model, reason).Inc()
}

func (o embedObserver) EmbedCircuit(model string, open bool) {
	o.m.CircuitOpen.WithLabelValues(model).Set(float64(boolInt(open)))
}

func (o embedObserver) EmbedTruncated(model string) {
	o.m.Truncated.WithLabelValues(model).Inc()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
