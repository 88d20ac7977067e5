package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidateFailures(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(c *Config)
		key    string
		reason string
	}{
		// postgres
		{"missing dsn", func(c *Config) { c.Postgres.DSN = "" }, "postgres.dsn", "required"},
		{"blank dsn", func(c *Config) { c.Postgres.DSN = "  " }, "postgres.dsn", "required"},
		{"malformed dsn url", func(c *Config) { c.Postgres.DSN = "postgres://u:pw@127.0.0.1:notaport/db" }, "postgres.dsn", "malformed connection string"},
		{"malformed dsn keywords", func(c *Config) { c.Postgres.DSN = "host=127.0.0.1 sslmode=bogus" }, "postgres.dsn", "malformed connection string"},
		{"bad slot", func(c *Config) { c.Postgres.Slot = "My-Slot" }, "postgres.slot", "not a valid replication slot name"},
		{"long slot", func(c *Config) { c.Postgres.Slot = strings.Repeat("a", 64) }, "postgres.slot", "1 to 63"},
		{"empty slot", func(c *Config) { c.Postgres.Slot = "" }, "postgres.slot", "not a valid replication slot name"},
		{"bad publication", func(c *Config) { c.Postgres.Publication = "Pub" }, "postgres.publication", "lower-case SQL identifier"},
		{"bad state schema", func(c *Config) { c.Postgres.StateSchema = "1state" }, "postgres.state_schema", "lower-case SQL identifier"},
		// weaviate
		{"missing url", func(c *Config) { c.Weaviate.URL = "" }, "weaviate.url", "required"},
		{"url without scheme", func(c *Config) { c.Weaviate.URL = "127.0.0.1:8080" }, "weaviate.url", "malformed URL"},
		{"url bad scheme", func(c *Config) { c.Weaviate.URL = "ftp://127.0.0.1" }, "weaviate.url", "want http:// or https://"},
		{"url unparsable", func(c *Config) { c.Weaviate.URL = "http://[::1" }, "weaviate.url", "malformed URL"},
		{"url no host", func(c *Config) { c.Weaviate.URL = "http:///v1" }, "weaviate.url", "no host"},
		{"missing grpc", func(c *Config) { c.Weaviate.GRPC = "" }, "weaviate.grpc", "required"},
		{"grpc no port", func(c *Config) { c.Weaviate.GRPC = "127.0.0.1" }, "weaviate.grpc", "want host:port"},
		{"grpc url", func(c *Config) { c.Weaviate.GRPC = "http://127.0.0.1:50051" }, "weaviate.grpc", "want host:port"},
		{"grpc bad port", func(c *Config) { c.Weaviate.GRPC = "127.0.0.1:99999" }, "weaviate.grpc", "bad port"},
		{"grpc no host", func(c *Config) { c.Weaviate.GRPC = ":50051" }, "weaviate.grpc", "no host"},
		{"zero timeout", func(c *Config) { c.Weaviate.Timeout = 0 }, "weaviate.timeout", "must be positive"},
		// embedding
		{"bad provider", func(c *Config) { c.Embedding.Provider = "cohere" }, "embedding.provider", `unknown provider "cohere"`},
		{"zero dimensions hash", func(c *Config) { c.Embedding.Dimensions = 0 }, "embedding.dimensions", "must be positive for provider hash"},
		{"negative dimensions openai", func(c *Config) { setOpenAI(c); c.Embedding.Dimensions = -1 }, "embedding.dimensions", "must be positive for provider openai"},
		{"openai without base_url", func(c *Config) { setOpenAI(c); c.Embedding.BaseURL = "" }, "embedding.base_url", "required for provider openai"},
		{"openai bad base_url", func(c *Config) { setOpenAI(c); c.Embedding.BaseURL = "127.0.0.1/v1" }, "embedding.base_url", "malformed URL"},
		{"openai without key", func(c *Config) { setOpenAI(c); c.Embedding.APIKey = ""; c.Embedding.APIKeyEnv = "" }, "embedding.api_key", "api_key or api_key_env"},
		{"zero batch size", func(c *Config) { c.Embedding.BatchSize = 0 }, "embedding.batch_size", "must be positive"},
		// chunking
		{"zero max_tokens", func(c *Config) { c.Chunking.MaxTokens = 0 }, "chunking.max_tokens", "must be positive"},
		{"negative overlap", func(c *Config) { c.Chunking.Overlap = -1 }, "chunking.overlap", "must not be negative"},
		{"overlap equals max_tokens", func(c *Config) { c.Chunking.Overlap = 512 }, "chunking.overlap", "less than chunking.max_tokens (512)"},
		{"overlap above max_tokens", func(c *Config) { c.Chunking.MaxTokens = 10; c.Chunking.Overlap = 20 }, "chunking.overlap", "less than chunking.max_tokens"},
		// tables
		{"no tables", func(c *Config) { c.Tables = nil }, "tables", "at least one table"},
		{"missing table", func(c *Config) { c.Tables[1].Table = "" }, "tables[1].table", "required"},
		{"unparsable table", func(c *Config) { c.Tables[1].Table = `"Odd Schema.x` }, "tables[1].table", "unterminated quoted identifier"},
		{"three-part table", func(c *Config) { c.Tables[0].Table = "db.public.articles" }, "tables[0].table", "want schema.table"},
		{"missing collection", func(c *Config) { c.Tables[1].Collection = "" }, "tables[1].collection", "required"},
		{"lower-case collection", func(c *Config) { c.Tables[1].Collection = "note" }, "tables[1].collection", "not a valid Weaviate collection name"},
		{"collection with dash", func(c *Config) { c.Tables[0].Collection = "My-Articles" }, "tables[0].collection", "not a valid Weaviate collection name"},
		{"missing template", func(c *Config) { c.Tables[1].Template = "" }, "tables[1].template", "required"},
		{"template syntax", func(c *Config) { c.Tables[1].Template = "{{.title" }, "tables[1].template", "template: public.notes"},
		{"template unknown function", func(c *Config) { c.Tables[1].Template = "{{foo .title}}" }, "tables[1].template", `function "foo" not defined`},
		{"empty metadata entry", func(c *Config) { c.Tables[0].Metadata = []string{"author", ""} }, "tables[0].metadata[1]", "empty column name"},
		{"duplicate metadata", func(c *Config) { c.Tables[0].Metadata = []string{"author", "category", "author"} }, "tables[0].metadata[2]", `duplicate column "author" (also metadata[0])`},
		{"metadata collides", func(c *Config) { c.Tables[0].Metadata = []string{"text"} }, "tables[0].metadata[0]", "built-in property"},
		{"metadata not a property name", func(c *Config) { c.Tables[0].Metadata = []string{"Body Text"} }, "tables[0].metadata[0]", "Weaviate property name"},
		{"tenancy differs in a shared collection", func(c *Config) { c.Tables[1].Collection = c.Tables[0].Collection; c.Tables[1].Tenant = "org" }, "tables[1].tenant", "either both mappings name a tenant column or neither"},
		{"duplicate mapping", func(c *Config) { c.Tables[1] = c.Tables[0]; c.Tables[1].Table = "PUBLIC.Articles" }, "tables[1]", "duplicate mapping of table public.articles to collection Article (also tables[0])"},
		{"collection named as another's version", func(c *Config) { c.Tables[1].Collection = c.Tables[0].Collection + "_v2" }, "tables[1].collection", "is the name of a version of collection Article"},
		{"verify sample of nothing", func(c *Config) { c.Verify.Sample = 0 }, "verify.sample", "must be above 0 and at most 1"},
		{"verify sample above all", func(c *Config) { c.Verify.Sample = 1.5 }, "verify.sample", "must be above 0 and at most 1"},
		{"negative retention", func(c *Config) { c.Reindex.Retention = -time.Second }, "reindex.retention", "must not be negative"},
		// pipeline, observability, log
		{"zero workers", func(c *Config) { c.Pipeline.Workers = 0 }, "pipeline.workers", "must be positive"},
		{"zero queue", func(c *Config) { c.Pipeline.QueueSize = 0 }, "pipeline.queue_size", "must be positive"},
		{"zero batch", func(c *Config) { c.Pipeline.MaxBatch = -3 }, "pipeline.max_batch", "must be positive"},
		{"memory budget not a size", func(c *Config) { c.Pipeline.MemoryBudget = "lots" }, "pipeline.memory_budget", `"lots" is not a size`},
		{"memory budget too small", func(c *Config) { c.Pipeline.MemoryBudget = "64kB" }, "pipeline.memory_budget", "below the least useful budget of 1MB"},
		{"negative max_wait", func(c *Config) { c.Pipeline.MaxWait = -1 }, "pipeline.max_wait", "must not be negative"},
		{"zero shutdown timeout", func(c *Config) { c.Pipeline.ShutdownTimeout = 0 }, "pipeline.shutdown_timeout", "must be positive"},
		{"zero status interval", func(c *Config) { c.Pipeline.StatusInterval = 0 }, "pipeline.status_interval", "must be positive"},
		{"bad listen", func(c *Config) { c.Observability.Listen = "9187" }, "observability.listen", "want host:port"},
		{"bad level", func(c *Config) { c.Log.Level = "verbose" }, "log.level", `unknown level "verbose"`},
		{"bad format", func(c *Config) { c.Log.Format = "text" }, "log.format", `unknown format "text"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := validConfig(t)
			c.mutate(cfg)
			assertKeyError(t, cfg.Validate(), c.key, c.reason)
		})
	}
}

func setOpenAI(c *Config) {
	c.Embedding.Provider = ProviderOpenAI
	c.Embedding.Model = "text-embedding-3-small"
	c.Embedding.BaseURL = "http://127.0.0.1:9999/v1"
	c.Embedding.APIKey = "sk-test"
}

func TestValidateAccepts(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"as loaded", func(c *Config) {}},
		{"provider none ignores dimensions", func(c *Config) { c.Embedding.Provider = ProviderNone; c.Embedding.Dimensions = 0 }},
		{"openai with api_key_env", func(c *Config) { setOpenAI(c); c.Embedding.APIKey = ""; c.Embedding.APIKeyEnv = "OPENAI_API_KEY" }},
		{"keyword dsn", func(c *Config) { c.Postgres.DSN = "host=127.0.0.1 port=5432 dbname=app user=app password=secret" }},
		{"quoted table name", func(c *Config) { c.Tables[0].Table = `"Odd Schema"."Mixed Case"` }},
		{"table without schema", func(c *Config) { c.Tables[0].Table = "articles" }},
		{"same table, two collections", func(c *Config) { c.Tables[1] = c.Tables[0]; c.Tables[1].Collection = "ArticleV2" }},
		{"index template", func(c *Config) { c.Tables[0].Template = `{{index . "Body Text"}} {{if .title}}{{.title}}{{end}}` }},
		{"listen on all interfaces", func(c *Config) { c.Observability.Listen = ":9187" }},
		{"https url with path", func(c *Config) { c.Weaviate.URL = "https://weaviate.internal/prefix" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := validConfig(t)
			c.mutate(cfg)
			if err := cfg.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := validConfig(t)
	cfg.Postgres.DSN = ""
	cfg.Log.Level = "loud"
	cfg.Tables[1].Template = "{{"
	err := cfg.Validate()
	errs, ok := err.(Errors)
	if !ok || len(errs) != 3 {
		t.Fatalf("Validate = %#v, want 3 errors", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("message spans lines: %q", err)
	}
	for _, key := range []string{"postgres.dsn", "log.level", "tables[1].template"} {
		assertKeyError(t, err, key)
	}
}

// validConfig is a loaded configuration with two tables that validates.
func validConfig(t *testing.T) *Config {
	t.Helper()
	cfg := mustLoad(t, minimalYAML+`
  - table: public.notes
    collection: Note
    template: "{{.body}}"
`)
	cfg.Tables[0].Metadata = []string{"author", "category"}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("base config invalid: %v", err)
	}
	return cfg
}
