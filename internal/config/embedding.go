package config

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Values of embedding.send_dimensions.
const (
	// SendDimensionsAuto sends "dimensions" for models that accept it: the
	// text-embedding-3 family.
	SendDimensionsAuto   = "auto"
	SendDimensionsAlways = "always"
	SendDimensionsNever  = "never"
)

// SendsDimensions reports whether provider openai puts "dimensions" in its
// requests.
func (e Embedding) SendsDimensions() bool {
	switch e.SendDimensions {
	case SendDimensionsAlways:
		return true
	case SendDimensionsNever:
		return false
	}
	return strings.HasPrefix(e.Model, "text-embedding-3")
}

var (
	vectorizerName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	headerName     = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// validateMore checks the keys of provider openai, the cache, the cost and
// provider none's vectorizer, and how they fit with chunking.
func (e *Embedding) validateMore(l *errorList, c Chunking) {
	nonNegative := []struct {
		key   string
		value int64
	}{
		{"embedding.requests_per_minute", int64(e.RequestsPerMinute)},
		{"embedding.tokens_per_minute", int64(e.TokensPerMinute)},
		{"embedding.cache_memory_mb", int64(e.CacheMemoryMB)},
		{"embedding.cache_max_stored", int64(e.CacheMaxStored)},
	}
	for _, f := range nonNegative {
		if f.value < 0 {
			l.add(f.key, fmt.Errorf("must not be negative (0: unlimited or off), got %d", f.value))
		}
	}
	if e.PricePerMillionTokens < 0 {
		l.add("embedding.price_per_million_tokens", fmt.Errorf("must not be negative, got %v", e.PricePerMillionTokens))
	}
	if e.Provider == ProviderOpenAI {
		e.validateOpenAI(l, c)
	}
	switch {
	case e.Provider != ProviderNone && e.Vectorizer != "":
		l.add("embedding.vectorizer", fmt.Errorf("only with provider none (Weaviate vectorizes); provider %s sends its own vectors", e.Provider))
	case e.Vectorizer != "" && !vectorizerName.MatchString(e.Vectorizer):
		l.add("embedding.vectorizer", fmt.Errorf("%q is not a Weaviate module name such as text2vec-openai", e.Vectorizer))
	}
	if len(e.VectorizerConfig) > 0 && (e.Vectorizer == "" || e.Vectorizer == "none") {
		l.addf("embedding.vectorizer_config", "set, but embedding.vectorizer names no module")
	}
}

func (e *Embedding) validateOpenAI(l *errorList, c Chunking) {
	if isBlank(e.Model) {
		l.addf("embedding.model", "required for provider openai (e.g. text-embedding-3-small)")
	}
	switch e.SendDimensions {
	case SendDimensionsAuto, SendDimensionsAlways, SendDimensionsNever:
	default:
		l.add("embedding.send_dimensions", fmt.Errorf("unknown value %q (want %s, %s or %s)", e.SendDimensions, SendDimensionsAuto, SendDimensionsAlways, SendDimensionsNever))
	}
	switch e.EncodingFormat {
	case "auto", "base64", "float":
	default:
		l.add("embedding.encoding_format", fmt.Errorf("unknown value %q (want auto, base64 or float)", e.EncodingFormat))
	}
	for name, value := range e.Headers {
		if !headerName.MatchString(name) {
			l.add("embedding.headers", fmt.Errorf("%q is not an HTTP header name", name))
		}
		if strings.ContainsAny(value, "\r\n") {
			l.add("embedding.headers", fmt.Errorf("header %s: value spans lines", name))
		}
	}
	positive := []struct {
		key   string
		value int
	}{
		{"embedding.max_batch_tokens", e.MaxBatchTokens},
		{"embedding.max_input_tokens", e.MaxInputTokens},
		{"embedding.breaker_failures", e.BreakerFailures},
		{"embedding.concurrency", e.Concurrency},
	}
	for _, f := range positive {
		if f.value <= 0 {
			l.add(f.key, fmt.Errorf("must be positive, got %d", f.value))
		}
	}
	durations := []struct {
		key   string
		value fmt.Stringer
		ok    bool
	}{
		{"embedding.timeout", e.Timeout, e.Timeout > 0},
		{"embedding.max_backoff", e.MaxBackoff, e.MaxBackoff > 0},
		{"embedding.breaker_cooldown", e.BreakerCooldown, e.BreakerCooldown > 0},
	}
	for _, d := range durations {
		if !d.ok {
			l.add(d.key, fmt.Errorf("must be positive, got %s", d.value))
		}
	}
	// A chunk must fit the model, a request and a minute's token budget;
	// truncation is only a safety net.
	if c.MaxTokens <= 0 {
		return
	}
	if e.MaxInputTokens > 0 && c.MaxTokens > e.MaxInputTokens {
		l.add("chunking.max_tokens", fmt.Errorf("%d is above embedding.max_input_tokens (%d): chunks would be truncated", c.MaxTokens, e.MaxInputTokens))
	}
	if e.MaxBatchTokens > 0 && e.MaxBatchTokens < c.MaxTokens {
		l.add("embedding.max_batch_tokens", fmt.Errorf("%d is below chunking.max_tokens (%d): a chunk would not fit in a request", e.MaxBatchTokens, c.MaxTokens))
	}
	if e.TokensPerMinute > 0 && e.TokensPerMinute < c.MaxTokens {
		l.add("embedding.tokens_per_minute", fmt.Errorf("%d is below chunking.max_tokens (%d): a chunk would not fit in a minute's budget", e.TokensPerMinute, c.MaxTokens))
	}
}

// mapKeys are the keys whose value is a mapping the connector passes on as
// written: viper lower-cases mapping keys, but Weaviate's module settings
// are case-sensitive (baseURL, vectorizeClassName).
var mapKeys = [][]string{{"embedding", "vectorizer_config"}, {"embedding", "headers"}}

// restoreMapKeys re-reads the mappings of mapKeys from the file with their
// keys as written, unless the environment overrides them (whose JSON or
// YAML value keeps its case anyway).
func restoreMapKeys(path string, cfg *Config) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return err
	}
	for _, k := range mapKeys {
		if _, ok := os.LookupEnv(EnvName(strings.Join(k, "."))); ok {
			continue
		}
		v := lookupPath(doc, k)
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		switch strings.Join(k, ".") {
		case "embedding.vectorizer_config":
			cfg.Embedding.VectorizerConfig = m
		case "embedding.headers":
			h := make(map[string]string, len(m))
			for name, value := range m {
				h[name] = fmt.Sprint(value)
			}
			cfg.Embedding.Headers = h
		}
	}
	return nil
}

func lookupPath(doc map[string]any, path []string) any {
	var cur any = doc
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		var found bool
		for k, v := range m {
			if strings.EqualFold(k, p) {
				cur, found = v, true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return cur
}

// toFloat accepts numbers, and strings holding one (environment overrides).
func toFloat(data any) (any, error) {
	switch v := data.(type) {
	case float64:
		return v, nil
	case float32:
		return float64(v), nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		rv := reflect.ValueOf(v)
		if rv.CanInt() {
			return float64(rv.Int()), nil
		}
		return float64(rv.Uint()), nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return nil, fmt.Errorf("want a number, got %q", v)
		}
		return f, nil
	}
	return nil, fmt.Errorf("want a number, got %s", describe(data))
}

// toMap accepts a mapping, or a string holding one as YAML or JSON (an
// environment override such as CDC_INDEXER_EMBEDDING_HEADERS='{"X-Team": "search"}').
func toMap(data any) (any, error) {
	switch v := data.(type) {
	case map[string]any:
		return v, nil
	case string:
		if strings.TrimSpace(v) == "" {
			return map[string]any{}, nil
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(v), &m); err != nil || m == nil {
			return nil, fmt.Errorf("want a mapping (YAML or JSON), got %q", v)
		}
		return m, nil
	}
	return nil, fmt.Errorf("want a mapping, got %s", describe(data))
}
