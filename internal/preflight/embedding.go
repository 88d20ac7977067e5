package preflight

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
)

// EmbeddingProvider sends the provider one tiny request and checks that it
// answers, accepts the key, knows the model and returns vectors of
// embedding.dimensions. A wrong key, model or dimension otherwise shows up
// only at `run`, retried behind the circuit breaker. The request is sent
// once, without the client's retries, so each failure is named as it is.
func EmbeddingProvider(ctx context.Context, e config.Embedding) Result {
	check := "embedding provider " + e.Provider
	switch e.Provider {
	case config.ProviderHash:
		return pass(check, "built in, offline, %d dimensions", e.Dimensions)
	case config.ProviderNone:
		return pass(check, "Weaviate's vectorizer %s makes the vectors (checked with each collection)", e.Vectorizer)
	case config.ProviderOpenAI:
	default:
		return fail(check, "set embedding.provider to hash, openai or none", "unknown provider %q", e.Provider)
	}
	endpoint, err := embedding.EmbeddingsURL(e.BaseURL)
	if err != nil {
		return fail(check, "set embedding.base_url to the provider's API root, e.g. https://api.openai.com/v1", "%s", oneLine(err))
	}
	body := map[string]any{"model": e.Model, "input": []string{"cdc-indexer check"}}
	if e.SendsDimensions() {
		body["dimensions"] = e.Dimensions
	}
	raw, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(raw))
	if err != nil {
		return fail(check, "", "%s", oneLine(err))
	}
	req.Header.Set("Content-Type", "application/json")
	if key := e.ResolvedAPIKey(); key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range e.Headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fail(check, "check embedding.base_url and that the provider is reachable from here", "%s unreachable: %s", endpoint, oneLine(err))
	}
	defer resp.Body.Close()
	latency := time.Since(start).Round(time.Millisecond)
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fail(check, "set embedding.api_key (or the variable embedding.api_key_env names) to a key the provider accepts",
			"%s refused the key: %s %s", endpoint, resp.Status, excerpt(answer))
	case resp.StatusCode == http.StatusNotFound:
		return fail(check, fmt.Sprintf("set embedding.model to a model the provider serves (not %q), or embedding.base_url to its API root", e.Model),
			"%s: %s %s", endpoint, resp.Status, excerpt(answer))
	case resp.StatusCode/100 != 2:
		return fail(check, "see the provider's answer; a 400 often means a model or dimensions the provider does not support (embedding.model, embedding.dimensions, embedding.send_dimensions)",
			"%s answered %s %s", endpoint, resp.Status, excerpt(answer))
	}
	var parsed struct {
		Data []struct {
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(answer, &parsed); err != nil || len(parsed.Data) != 1 {
		return fail(check, "point embedding.base_url at an OpenAI-compatible /v1/embeddings endpoint",
			"%s answered something that is not an embeddings response: %s", endpoint, excerpt(answer))
	}
	if n := len(parsed.Data[0].Embedding); n != e.Dimensions {
		return fail(check, fmt.Sprintf("set embedding.dimensions to %d (the model's), or a model or send_dimensions that gives %d", n, e.Dimensions),
			"model %s returned a vector of %d values, embedding.dimensions is %d", e.Model, n, e.Dimensions)
	}
	return pass(check, "model %s at %s: key accepted, %d-dimension vectors, %s", e.Model, endpoint, e.Dimensions, latency)
}

func excerpt(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "..."
	}
	return s
}
