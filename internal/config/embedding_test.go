package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEmbeddingDefaults(t *testing.T) {
	e := mustLoad(t, minimalYAML).Embedding
	if e.SendDimensions != SendDimensionsAuto || e.MaxBatchTokens != 100000 || e.MaxInputTokens != 8191 ||
		e.RequestsPerMinute != 0 || e.TokensPerMinute != 0 || e.Timeout != 30*time.Second || e.MaxBackoff != time.Minute ||
		e.BreakerFailures != 5 || e.BreakerCooldown != 30*time.Second || e.PricePerMillionTokens != 0 ||
		e.CacheMemoryMB != 128 || e.CacheMaxStored != 1000000 || e.Vectorizer != "" {
		t.Errorf("defaults: %+v", e)
	}
}

// Mapping keys keep their case: Weaviate's module settings are
// case-sensitive, and viper lower-cases what it reads.
func TestEmbeddingMappingsKeepTheirKeys(t *testing.T) {
	cfg := mustLoad(t, minimalYAML+`
embedding:
  provider: none
  vectorizer: text2vec-openai
  vectorizer_config:
    baseURL: "http://127.0.0.1:1234"
    vectorizeClassName: false
    nested: {someKey: 1}
  headers:
    X-Team: search
  price_per_million_tokens: 0.13
`)
	want := map[string]any{"baseURL": "http://127.0.0.1:1234", "vectorizeClassName": false, "nested": map[string]any{"someKey": 1}}
	if !reflect.DeepEqual(cfg.Embedding.VectorizerConfig, want) {
		t.Errorf("vectorizer_config = %#v", cfg.Embedding.VectorizerConfig)
	}
	if !reflect.DeepEqual(cfg.Embedding.Headers, map[string]string{"X-Team": "search"}) {
		t.Errorf("headers = %#v", cfg.Embedding.Headers)
	}
	if cfg.Embedding.PricePerMillionTokens != 0.13 {
		t.Errorf("price = %v", cfg.Embedding.PricePerMillionTokens)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}

	t.Setenv("CDC_INDEXER_EMBEDDING_VECTORIZER_CONFIG", `{"baseURL": "http://env"}`)
	cfg = mustLoad(t, minimalYAML+"embedding:\n  vectorizer_config: {baseURL: file}\n")
	if !reflect.DeepEqual(cfg.Embedding.VectorizerConfig, map[string]any{"baseURL": "http://env"}) {
		t.Errorf("environment override: %#v", cfg.Embedding.VectorizerConfig)
	}
}

func TestEmbeddingHeadersAreRedacted(t *testing.T) {
	cfg := mustLoad(t, minimalYAML+"embedding:\n  headers: {api-key: very-secret-value}\n")
	if s := cfg.String(); strings.Contains(s, "very-secret-value") || !strings.Contains(s, "api-key") {
		t.Errorf("redacted view: %s", s)
	}
	if cfg.Embedding.Headers["api-key"] != "very-secret-value" {
		t.Error("redaction changed the configuration itself")
	}
}

func TestSendsDimensions(t *testing.T) {
	for _, c := range []struct {
		mode, model string
		want        bool
	}{
		{SendDimensionsAuto, "text-embedding-3-small", true},
		{SendDimensionsAuto, "text-embedding-3-large", true},
		{SendDimensionsAuto, "text-embedding-ada-002", false},
		{SendDimensionsAuto, "nomic-embed-text", false},
		{SendDimensionsAlways, "nomic-embed-text", true},
		{SendDimensionsNever, "text-embedding-3-small", false},
	} {
		if got := (Embedding{SendDimensions: c.mode, Model: c.model}).SendsDimensions(); got != c.want {
			t.Errorf("%s %s: %v", c.mode, c.model, got)
		}
	}
}

func TestValidateEmbeddingFailures(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(c *Config)
		key    string
		reason string
	}{
		{"openai without model", func(c *Config) { setOpenAI(c); c.Embedding.Model = " " }, "embedding.model", "required for provider openai"},
		{"bad send_dimensions", func(c *Config) { setOpenAI(c); c.Embedding.SendDimensions = "yes" }, "embedding.send_dimensions", "unknown value"},
		{"bad header name", func(c *Config) { setOpenAI(c); c.Embedding.Headers = map[string]string{"bad header": "x"} }, "embedding.headers", "not an HTTP header name"},
		{"header value with newline", func(c *Config) { setOpenAI(c); c.Embedding.Headers = map[string]string{"X-A": "a\nb"} }, "embedding.headers", "spans lines"},
		{"zero max_batch_tokens", func(c *Config) { setOpenAI(c); c.Embedding.MaxBatchTokens = 0 }, "embedding.max_batch_tokens", "must be positive"},
		{"zero breaker_failures", func(c *Config) { setOpenAI(c); c.Embedding.BreakerFailures = 0 }, "embedding.breaker_failures", "must be positive"},
		{"zero timeout", func(c *Config) { setOpenAI(c); c.Embedding.Timeout = 0 }, "embedding.timeout", "must be positive"},
		{"zero cooldown", func(c *Config) { setOpenAI(c); c.Embedding.BreakerCooldown = 0 }, "embedding.breaker_cooldown", "must be positive"},
		{"negative rpm", func(c *Config) { c.Embedding.RequestsPerMinute = -1 }, "embedding.requests_per_minute", "must not be negative"},
		{"negative cache", func(c *Config) { c.Embedding.CacheMaxStored = -1 }, "embedding.cache_max_stored", "must not be negative"},
		{"negative price", func(c *Config) { c.Embedding.PricePerMillionTokens = -1 }, "embedding.price_per_million_tokens", "must not be negative"},
		{"chunks above the model limit", func(c *Config) { setOpenAI(c); c.Embedding.MaxInputTokens = 256 }, "chunking.max_tokens", "above embedding.max_input_tokens (256)"},
		{"chunk above the request budget", func(c *Config) { setOpenAI(c); c.Embedding.MaxBatchTokens = 100 }, "embedding.max_batch_tokens", "below chunking.max_tokens"},
		{"chunk above the minute budget", func(c *Config) { setOpenAI(c); c.Embedding.TokensPerMinute = 100 }, "embedding.tokens_per_minute", "below chunking.max_tokens"},
		{"vectorizer with hash", func(c *Config) { c.Embedding.Vectorizer = "text2vec-openai" }, "embedding.vectorizer", "only with provider none"},
		{"bad vectorizer name", func(c *Config) { c.Embedding.Provider = ProviderNone; c.Embedding.Vectorizer = "Text2Vec" }, "embedding.vectorizer", "not a Weaviate module name"},
		{"vectorizer_config without module", func(c *Config) {
			c.Embedding.Provider = ProviderNone
			c.Embedding.VectorizerConfig = map[string]any{"model": "x"}
		}, "embedding.vectorizer_config", "names no module"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := validConfig(t)
			c.mutate(cfg)
			assertKeyError(t, cfg.Validate(), c.key, c.reason)
		})
	}
}

func TestValidateEmbeddingAccepts(t *testing.T) {
	for name, mutate := range map[string]func(c *Config){
		"openai with limits": func(c *Config) {
			setOpenAI(c)
			c.Embedding.RequestsPerMinute, c.Embedding.TokensPerMinute = 3000, 1000000
			c.Embedding.Headers = map[string]string{"OpenAI-Organization": "org-1"}
			c.Embedding.PricePerMillionTokens = 0.02
		},
		"none with a module": func(c *Config) {
			c.Embedding.Provider = ProviderNone
			c.Embedding.Vectorizer = "text2vec-openai"
			c.Embedding.VectorizerConfig = map[string]any{"model": "text-embedding-3-small"}
		},
		"none without a module": func(c *Config) { c.Embedding.Provider = ProviderNone; c.Embedding.Dimensions = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := validConfig(t)
			mutate(cfg)
			if err := cfg.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}
