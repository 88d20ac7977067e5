package preflight

import (
	"context"
	"testing"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/openaitest"
)

// The provider probe against an OpenAI-compatible server: each way a paid
// API refuses is its own failure with its own fix.
func TestEmbeddingProvider(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Dimensions: 16, APIKey: "sk-good"})
	defer srv.Close()
	base := config.Embedding{Provider: config.ProviderOpenAI, BaseURL: srv.URL(), Model: "m", Dimensions: 16, APIKey: "sk-good", SendDimensions: config.SendDimensionsNever}
	ctx := context.Background()

	expect(t, EmbeddingProvider(ctx, base), Pass, "key accepted", "16-dimension")

	wrongKey := base
	wrongKey.APIKey = "sk-bad"
	expect(t, EmbeddingProvider(ctx, wrongKey), Fail, "refused the key", "embedding.api_key")

	srv.FailNext(openaitest.Fault{Status: 404, Body: `{"error":{"message":"model 'nope' not found"}}`})
	noModel := base
	noModel.Model = "nope"
	expect(t, EmbeddingProvider(ctx, noModel), Fail, "404", "set embedding.model")

	wrongDims := base
	wrongDims.Dimensions = 24
	expect(t, EmbeddingProvider(ctx, wrongDims), Fail, "vector of 16 values", "set embedding.dimensions to 16")

	down := base
	down.BaseURL = "http://127.0.0.1:1"
	expect(t, EmbeddingProvider(ctx, down), Fail, "unreachable", "embedding.base_url")

	expect(t, EmbeddingProvider(ctx, config.Embedding{Provider: config.ProviderHash, Dimensions: 384}), Pass, "built in")
}
