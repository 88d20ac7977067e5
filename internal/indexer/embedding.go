package indexer

import (
	"errors"
	"fmt"
	"os"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/embedcache"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/sink"
)

// buildEmbedder makes the configured provider's embedder; nil when
// Weaviate vectorizes (provider none). It sends nothing.
func buildEmbedder(c config.Embedding, log zerolog.Logger) (embedding.Embedder, error) {
	switch c.Provider {
	case config.ProviderHash:
		return embedding.NewHashEmbedder(c.Dimensions), nil
	case config.ProviderNone:
		return nil, nil
	case config.ProviderOpenAI:
		key := c.ResolvedAPIKey()
		if key == "" && c.APIKey == "" && c.APIKeyEnv != "" {
			if _, set := os.LookupEnv(c.APIKeyEnv); !set {
				return nil, fmt.Errorf("embedding.api_key_env: environment variable %s is not set", c.APIKeyEnv)
			}
		}
		l := log.With().Str("component", "embedding").Logger()
		e, err := embedding.NewOpenAIEmbedder(embedding.OpenAIConfig{
			BaseURL: c.BaseURL, Model: c.Model, Dimensions: c.Dimensions, SendDimensions: c.SendsDimensions(),
			APIKey: key, Headers: c.Headers,
			BatchSize: c.BatchSize, MaxBatchTokens: c.MaxBatchTokens, MaxInputTokens: c.MaxInputTokens,
			Concurrency: c.Concurrency, EncodingFormat: c.EncodingFormat,
			RequestsPerMinute: c.RequestsPerMinute, TokensPerMinute: c.TokensPerMinute,
			Timeout: c.Timeout, MaxBackoff: c.MaxBackoff,
			BreakerFailures: c.BreakerFailures, BreakerCooldown: c.BreakerCooldown,
			Logger: &l,
		})
		if err != nil {
			return nil, fmt.Errorf("embedding: %w", err)
		}
		return e, nil
	}
	return nil, fmt.Errorf("embedding.provider: %q is not available in this build", c.Provider)
}

// EmbeddingModelID is the model id of the configured embedding, as the
// content hash and <state_schema>.collections record it: the embedder's
// ModelID (openai/<model>/<dimensions>, hash/v1/<dimensions>), or for
// provider none "weaviate/<module>" (just "none" without a module). It
// builds nothing and sends nothing.
func EmbeddingModelID(c config.Embedding) string {
	switch c.Provider {
	case config.ProviderHash:
		return embedding.NewHashEmbedder(max(c.Dimensions, 1)).ModelID()
	case config.ProviderOpenAI:
		return fmt.Sprintf("openai/%s/%d", c.Model, c.Dimensions)
	}
	if c.Vectorizer == "" || c.Vectorizer == sink.VectorizerNone {
		return "none"
	}
	return "weaviate/" + c.Vectorizer
}

// embeddingDimensions is the vector length the connector writes; 0 when
// Weaviate makes the vectors.
func embeddingDimensions(c config.Embedding) int {
	if c.Provider == config.ProviderNone {
		return 0
	}
	return c.Dimensions
}

// withCache puts the embedding cache in front of a provider that costs
// money or time per call (openai). The hash embedder is cheaper to run than
// to look up, so it stays as it is.
func withCache(e embedding.Embedder, c config.Embedding, st *state.Store, log zerolog.Logger) embedding.Embedder {
	if e == nil || c.Provider != config.ProviderOpenAI {
		return e
	}
	opts := embedcache.Options{
		MemoryBytes:           int64(c.CacheMemoryMB) << 20,
		MaxStored:             int64(c.CacheMaxStored),
		PricePerMillionTokens: c.PricePerMillionTokens,
		Log:                   log.With().Str("component", "embedding cache").Logger(),
	}
	if c.CacheMaxStored > 0 && st != nil {
		opts.Store = st
	}
	return embedcache.Wrap(e, opts)
}

// vectorizerSpec is how a collection is told who makes its vectors.
func vectorizerSpec(c config.Embedding) (string, map[string]any) {
	if c.Provider != config.ProviderNone || c.Vectorizer == "" {
		return sink.VectorizerNone, nil
	}
	return c.Vectorizer, c.VectorizerConfig
}

// depEmbedding names the embedding provider among /readyz's dependencies.
const depEmbedding = "embedding"

// embeddingCircuit is the circuit breaker of the configured provider, nil
// when there is no remote provider (hash, none).
func (e *Env) embeddingCircuit() interface{ CircuitOpen() bool } {
	emb := e.Embedder
	if c, ok := emb.(*embedcache.Embedder); ok {
		emb = c.Inner()
	}
	if c, ok := emb.(interface{ CircuitOpen() bool }); ok {
		return c
	}
	return nil
}

// EmbeddingProviderErr is non-nil while the embedding provider keeps
// failing and embedding is paused (its circuit breaker is open).
func (e *Env) EmbeddingProviderErr() error {
	if c := e.embeddingCircuit(); c != nil && c.CircuitOpen() {
		return errors.New("the embedding provider keeps failing; embedding is paused and retried")
	}
	return nil
}
