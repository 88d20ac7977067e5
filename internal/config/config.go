// Package config loads and validates the YAML configuration of the contract
// (section 2), with CDC_INDEXER_* environment overrides.
package config

import (
	"os"
	"time"
)

// Config is the whole configuration file.
type Config struct {
	Postgres      Postgres      `mapstructure:"postgres"`
	Weaviate      Weaviate      `mapstructure:"weaviate"`
	Embedding     Embedding     `mapstructure:"embedding"`
	Chunking      Chunking      `mapstructure:"chunking"`
	Tables        []Table       `mapstructure:"tables"`
	Pipeline      Pipeline      `mapstructure:"pipeline"`
	Observability Observability `mapstructure:"observability"`
	Log           Log           `mapstructure:"log"`
	Verify        Verify        `mapstructure:"verify"`
	Reindex       Reindex       `mapstructure:"reindex"`
}

// Reindex tunes zero-downtime reindexes (docs/reindex.md).
type Reindex struct {
	// Retention is how long a version that was switched away from is kept
	// (not updated any more) before it is deleted; never less than 5s
	// (indexer.minRetention), for queries that resolved the alias before it
	// moved.
	Retention time.Duration `mapstructure:"retention"`
}

// Verify tunes the verification `run` performs by itself.
type Verify struct {
	// Interval between two verifications of every mapping while `run`
	// streams; 0 (the default) turns them off.
	Interval time.Duration `mapstructure:"interval"`
	// Sample is the fraction of each mapping's rows one periodic round
	// compares (0 < Sample <= 1, default 1): successive rounds take
	// successive slices of the key space, so 1/Sample rounds cover every
	// row, each round costing Sample of a full verification's reads.
	Sample float64 `mapstructure:"sample"`
}

type Postgres struct {
	DSN         string `mapstructure:"dsn"`
	Slot        string `mapstructure:"slot"`
	Publication string `mapstructure:"publication"`
	StateSchema string `mapstructure:"state_schema"`
	// MaxRetainedWAL is the WAL size the slot may retain before a warning
	// is logged, e.g. "1GB"; "0" turns the warning off.
	MaxRetainedWAL string `mapstructure:"max_retained_wal"`
	// HeartbeatInterval is how often a logical decoding message is written
	// so that the slot's position moves on an idle database; 0 disables.
	HeartbeatInterval time.Duration `mapstructure:"heartbeat_interval"`
}

type Weaviate struct {
	URL     string        `mapstructure:"url"`
	GRPC    string        `mapstructure:"grpc"`
	APIKey  string        `mapstructure:"api_key"`
	Timeout time.Duration `mapstructure:"timeout"`
	// ConsistencyLevel (ONE, QUORUM, ALL) of every write, delete and read.
	ConsistencyLevel string `mapstructure:"consistency_level"`
	// ReplicationFactor of the collections the connector creates.
	ReplicationFactor int `mapstructure:"replication_factor"`
	// TextFilterable makes the chunk text property of collections the
	// connector creates filterable (a roaring-bitmap index besides the
	// BM25 one): off by default, since nothing filters on chunk text and
	// the index costs Weaviate CPU on every write.
	TextFilterable bool `mapstructure:"text_filterable"`
	// GRPCTLS is auto, on or off for the gRPC connection.
	GRPCTLS string `mapstructure:"grpc_tls"`
	// CAFile is a PEM file of extra certificates to trust.
	CAFile string `mapstructure:"ca_file"`
}

// Weaviate consistency levels.
var consistencyLevels = []string{"ONE", "QUORUM", "ALL"}

// Embedding providers.
const (
	ProviderHash   = "hash"   // built in, offline, deterministic
	ProviderOpenAI = "openai" // any OpenAI-compatible /v1/embeddings endpoint
	ProviderNone   = "none"   // Weaviate's own vectorizer makes the vectors
)

type Embedding struct {
	Provider   string `mapstructure:"provider"`
	Model      string `mapstructure:"model"`
	Dimensions int    `mapstructure:"dimensions"`
	BaseURL    string `mapstructure:"base_url"`
	APIKey     string `mapstructure:"api_key"`
	APIKeyEnv  string `mapstructure:"api_key_env"`
	// BatchSize bounds how many texts go to the embedder in one call.
	BatchSize int `mapstructure:"batch_size"`

	// Provider openai (see embedding.go for the rules).
	SendDimensions string            `mapstructure:"send_dimensions"` // auto | always | never
	Headers        map[string]string `mapstructure:"headers"`
	MaxBatchTokens int               `mapstructure:"max_batch_tokens"`
	// Concurrency is how many requests one batch of texts may have in
	// flight; EncodingFormat how vectors travel (auto | base64 | float).
	Concurrency       int           `mapstructure:"concurrency"`
	EncodingFormat    string        `mapstructure:"encoding_format"`
	MaxInputTokens    int           `mapstructure:"max_input_tokens"`
	RequestsPerMinute int           `mapstructure:"requests_per_minute"`
	TokensPerMinute   int           `mapstructure:"tokens_per_minute"`
	Timeout           time.Duration `mapstructure:"timeout"`
	MaxBackoff        time.Duration `mapstructure:"max_backoff"`
	BreakerFailures   int           `mapstructure:"breaker_failures"`
	BreakerCooldown   time.Duration `mapstructure:"breaker_cooldown"`
	// PricePerMillionTokens estimates the cost of what is sent.
	PricePerMillionTokens float64 `mapstructure:"price_per_million_tokens"`
	// The cache of computed vectors: its in-memory layer in MiB, and the
	// rows kept in <state_schema>.embedding_cache (0: not persisted).
	CacheMemoryMB  int `mapstructure:"cache_memory_mb"`
	CacheMaxStored int `mapstructure:"cache_max_stored"`

	// Provider none: Weaviate's vectorizer module and its class settings.
	Vectorizer       string         `mapstructure:"vectorizer"`
	VectorizerConfig map[string]any `mapstructure:"vectorizer_config"`
}

type Chunking struct {
	MaxTokens int `mapstructure:"max_tokens"`
	Overlap   int `mapstructure:"overlap"`
}

type Table struct {
	Table      string   `mapstructure:"table"`
	Collection string   `mapstructure:"collection"`
	Template   string   `mapstructure:"template"`
	Metadata   []string `mapstructure:"metadata"`
	// Tenant names a column whose text form is the Weaviate tenant of the
	// row's objects; empty for a collection without tenants.
	Tenant string `mapstructure:"tenant"`
}

// Pipeline tunes parallelism and batching; the defaults suit most setups.
type Pipeline struct {
	Workers   int `mapstructure:"workers"`
	QueueSize int `mapstructure:"queue_size"`
	// MemoryBudget bounds the bytes of row data held at once (queued
	// changes, batches, snapshot rows read ahead, re-read values): a size
	// such as "64MB"; "0" leaves it unbounded.
	MemoryBudget    string        `mapstructure:"memory_budget"`
	MaxBatch        int           `mapstructure:"max_batch"`
	MaxWait         time.Duration `mapstructure:"max_wait"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	StatusInterval  time.Duration `mapstructure:"status_interval"`
}

type Observability struct {
	Listen string `mapstructure:"listen"`
}

type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// MemoryBudgetBytes is pipeline.memory_budget in bytes (0: unbounded).
func (p Pipeline) MemoryBudgetBytes() int64 {
	n, _ := ParseSize(p.MemoryBudget) // validated
	return n
}

// ResolvedAPIKey is the embedding provider's API key: api_key, or else the
// value of the environment variable api_key_env names.
func (e Embedding) ResolvedAPIKey() string {
	if e.APIKey != "" {
		return e.APIKey
	}
	if e.APIKeyEnv != "" {
		return os.Getenv(e.APIKeyEnv)
	}
	return ""
}
