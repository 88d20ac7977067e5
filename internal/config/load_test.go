package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// minimalYAML sets only the required keys.
const minimalYAML = `
postgres:
  dsn: "postgres://app:secret@127.0.0.1:5432/app?sslmode=disable"
weaviate:
  url: "http://127.0.0.1:8080"
  grpc: "127.0.0.1:50051"
tables:
  - table: public.articles
    collection: Article
    template: "{{.title}}"
`

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, content string) *Config {
	t.Helper()
	cfg, err := Load(writeConfig(t, content))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestLoadDefaults(t *testing.T) {
	cfg := mustLoad(t, minimalYAML)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"postgres.slot", cfg.Postgres.Slot, "cdc_indexer"},
		{"postgres.publication", cfg.Postgres.Publication, "cdc_indexer"},
		{"postgres.state_schema", cfg.Postgres.StateSchema, "cdc_indexer"},
		{"weaviate.timeout", cfg.Weaviate.Timeout, 30 * time.Second},
		{"embedding.provider", cfg.Embedding.Provider, "hash"},
		{"embedding.dimensions", cfg.Embedding.Dimensions, 384},
		{"embedding.batch_size", cfg.Embedding.BatchSize, 128},
		{"chunking.max_tokens", cfg.Chunking.MaxTokens, 512},
		{"chunking.overlap", cfg.Chunking.Overlap, 0},
		{"observability.listen", cfg.Observability.Listen, "127.0.0.1:9187"},
		{"log.level", cfg.Log.Level, "info"},
		{"log.format", cfg.Log.Format, "json"},
		{"pipeline.workers", cfg.Pipeline.Workers, 4},
		{"pipeline.queue_size", cfg.Pipeline.QueueSize, 4096},
		{"pipeline.memory_budget", cfg.Pipeline.MemoryBudget, "64MB"},
		{"pipeline.max_batch", cfg.Pipeline.MaxBatch, 500},
		{"pipeline.max_wait", cfg.Pipeline.MaxWait, time.Duration(0)},
		{"pipeline.shutdown_timeout", cfg.Pipeline.ShutdownTimeout, 30 * time.Second},
		{"pipeline.status_interval", cfg.Pipeline.StatusInterval, time.Second},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
	if len(cfg.Tables) != 1 || cfg.Tables[0].Collection != "Article" || cfg.Tables[0].Template != "{{.title}}" {
		t.Errorf("tables = %+v", cfg.Tables)
	}
}

func TestLoadFileValues(t *testing.T) {
	cfg := mustLoad(t, minimalYAML+`
embedding:
  provider: openai
  model: text-embedding-3-small
  dimensions: 1536
  base_url: "http://127.0.0.1:9999/v1"
  api_key_env: MY_KEY
pipeline:
  max_wait: 20ms
  workers: "8"
chunking: {max_tokens: 100, overlap: 10}
`)
	if cfg.Embedding.Provider != "openai" || cfg.Embedding.Dimensions != 1536 || cfg.Embedding.APIKeyEnv != "MY_KEY" {
		t.Errorf("embedding = %+v", cfg.Embedding)
	}
	if cfg.Pipeline.MaxWait != 20*time.Millisecond || cfg.Pipeline.Workers != 8 {
		t.Errorf("pipeline = %+v", cfg.Pipeline)
	}
	if cfg.Chunking != (Chunking{MaxTokens: 100, Overlap: 10}) {
		t.Errorf("chunking = %+v", cfg.Chunking)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"postgres.dsn":          "CDC_INDEXER_POSTGRES_DSN",
		"embedding.dimensions":  "CDC_INDEXER_EMBEDDING_DIMENSIONS",
		"postgres.state_schema": "CDC_INDEXER_POSTGRES_STATE_SCHEMA",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv("CDC_INDEXER_POSTGRES_DSN", "postgres://other@127.0.0.1:5433/db")
	t.Setenv("CDC_INDEXER_POSTGRES_SLOT", "slot_from_env")
	t.Setenv("CDC_INDEXER_EMBEDDING_DIMENSIONS", "768")
	t.Setenv("CDC_INDEXER_EMBEDDING_API_KEY", "k")
	t.Setenv("CDC_INDEXER_WEAVIATE_TIMEOUT", "2m")
	t.Setenv("CDC_INDEXER_LOG_FORMAT", "console")
	t.Setenv("CDC_INDEXER_PIPELINE_MAX_WAIT", "1ms")
	cfg := mustLoad(t, minimalYAML+"embedding:\n  dimensions: 384\n")
	if cfg.Postgres.DSN != "postgres://other@127.0.0.1:5433/db" {
		t.Errorf("dsn = %q", cfg.Postgres.DSN)
	}
	if cfg.Postgres.Slot != "slot_from_env" {
		t.Errorf("slot = %q", cfg.Postgres.Slot)
	}
	if cfg.Embedding.Dimensions != 768 {
		t.Errorf("dimensions = %d, want the environment's 768 over the file's 384", cfg.Embedding.Dimensions)
	}
	if cfg.Embedding.APIKey != "k" || cfg.Weaviate.Timeout != 2*time.Minute || cfg.Log.Format != "console" || cfg.Pipeline.MaxWait != time.Millisecond {
		t.Errorf("overrides not applied: %+v", cfg.Redacted())
	}
}

// Every scalar key must be overridable, including ones with no default and
// absent from the file.
func TestEnvOverridesEveryScalarKey(t *testing.T) {
	for _, key := range scalarKeys {
		t.Run(key, func(t *testing.T) {
			field := fieldByKey(reflect.ValueOf(&Config{}).Elem(), key)
			env, want := "from_env", any("from_env")
			switch {
			case field.Type() == durationType:
				env, want = "7s", 7*time.Second
			case field.Kind() == reflect.Int:
				env, want = "7", 7
			case field.Kind() == reflect.Float64:
				env, want = "7.5", 7.5
			case field.Kind() == reflect.Bool:
				env, want = "true", true
			case field.Kind() == reflect.Map:
				// A mapping comes as YAML or JSON.
				env, want = `{"Key": "7"}`, map[string]any{"Key": "7"}
				if field.Type().Elem().Kind() == reflect.String {
					want = map[string]string{"Key": "7"}
				}
			}
			t.Setenv(EnvName(key), env)
			cfg := mustLoad(t, minimalYAML)
			if got := fieldByKey(reflect.ValueOf(cfg).Elem(), key).Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("%s=%s gave %v, want %v", EnvName(key), env, got, want)
			}
			if field.Kind() != reflect.String {
				t.Setenv(EnvName(key), "[not a number")
				_, err := Load(writeConfig(t, minimalYAML))
				assertKeyError(t, err, key, EnvName(key))
			}
		})
	}
}

// fieldByKey is the field of a Config value that a key path names.
func fieldByKey(v reflect.Value, key string) reflect.Value {
	for _, part := range strings.Split(key, ".") {
		f, ok := fieldByTag(v.Type(), part)
		if !ok {
			panic("no field for " + key)
		}
		v = v.FieldByIndex(f.Index)
	}
	return v
}

func TestEnvOverrideTables(t *testing.T) {
	t.Setenv("CDC_INDEXER_TABLES", `[{"table": "public.notes", "collection": "Note", "template": "{{.body}}", "metadata": ["owner"]}]`)
	cfg := mustLoad(t, minimalYAML)
	if len(cfg.Tables) != 1 || cfg.Tables[0].Table != "public.notes" || cfg.Tables[0].Metadata[0] != "owner" {
		t.Fatalf("tables = %+v", cfg.Tables)
	}
	t.Setenv("CDC_INDEXER_TABLES", `[{"table": "public.notes", "colection": "Note"}]`)
	_, err := Load(writeConfig(t, minimalYAML))
	assertKeyError(t, err, "tables[0].colection", "unknown key")

	t.Setenv("CDC_INDEXER_TABLES", `{not yaml`)
	_, err = Load(writeConfig(t, minimalYAML))
	assertKeyError(t, err, "tables", "CDC_INDEXER_TABLES")
}

func TestLoadUnknownKeys(t *testing.T) {
	cases := []struct {
		name, yaml, key, reason string
	}{
		{"top level", "foo: 1\n", "foo", "unknown key"},
		{"section", "postgres:\n  dns: x\n", "postgres.dns", "did you mean postgres.dsn?"},
		{"table entry", "tables:\n  - table: a\n    collection: A\n    template: x\n    colection: B\n", "tables[0].colection", "did you mean tables[0].collection?"},
		{"second table", "tables:\n  - {table: a, collection: A, template: x}\n  - {table: b, collection: B, template: x, extra: 1}\n", "tables[1].extra", "unknown key"},
		{"next to a type error", "embedding:\n  dimensions: abc\n  colour: red\n", "embedding.colour", "unknown key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, c.yaml))
			assertKeyError(t, err, c.key, c.reason)
		})
	}
}

func TestLoadWrongTypes(t *testing.T) {
	cases := []struct {
		name, yaml, key, reason string
	}{
		{"string for int", "embedding:\n  dimensions: abc\n", "embedding.dimensions", `want a whole number, got "abc"`},
		{"bool for int", "chunking:\n  max_tokens: true\n", "chunking.max_tokens", "want a whole number"},
		{"fraction for int", "pipeline:\n  workers: 2.5\n", "pipeline.workers", "want a whole number"},
		{"bare number for duration", "weaviate:\n  timeout: 30\n", "weaviate.timeout", "duration"},
		{"bad duration", "pipeline:\n  max_wait: soon\n", "pipeline.max_wait", "duration"},
		{"list for string", "log:\n  level: [info]\n", "log.level", "want a string, got a list"},
		{"scalar for section", "postgres: foo\n", "postgres", "want a mapping"},
		{"mapping for tables", "tables: {a: 1}\n", "tables", "want a list"},
		{"string for metadata", "tables:\n  - {table: a, collection: A, template: x, metadata: author}\n", "tables[0].metadata", "want a list"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, c.yaml))
			assertKeyError(t, err, c.key, c.reason)
		})
	}
}

func TestLoadWrongTypeFromEnv(t *testing.T) {
	t.Setenv("CDC_INDEXER_EMBEDDING_DIMENSIONS", "abc")
	_, err := Load(writeConfig(t, minimalYAML))
	assertKeyError(t, err, "embedding.dimensions", "(from CDC_INDEXER_EMBEDDING_DIMENSIONS)")
}

func TestLoadFileProblems(t *testing.T) {
	if _, err := Load(""); err == nil || !strings.Contains(err.Error(), "CDC_INDEXER_CONFIG") {
		t.Errorf("empty path: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(writeConfig(t, "postgres: [\n")); err == nil {
		t.Error("syntax error accepted")
	}
}

// assertKeyError checks that err is a configuration error for key whose
// message contains every one of parts.
func assertKeyError(t *testing.T, err error, key string, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one for %s", key)
	}
	var ke *KeyError
	found := false
	for _, e := range leaves(err) {
		if errors.As(e, &ke) && ke.Key == key {
			found = true
			for _, p := range parts {
				if !strings.Contains(ke.Error(), p) {
					t.Errorf("error for %s = %q, want it to contain %q", key, ke.Error(), p)
				}
			}
		}
	}
	if !found {
		t.Errorf("error %q has no entry for key %s", err, key)
	}
	if !strings.Contains(err.Error(), key+": ") {
		t.Errorf("error %q does not name %s", err, key)
	}
}
