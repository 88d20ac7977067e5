package config

import (
	"reflect"
	"strings"
	"time"
)

// EnvPrefix starts the name of every environment override.
const EnvPrefix = "CDC_INDEXER_"

// EnvName is the environment variable that overrides a key:
// postgres.dsn -> CDC_INDEXER_POSTGRES_DSN.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// tablesKey is the one non-scalar key; its environment override carries the
// whole list as YAML or JSON.
const tablesKey = "tables"

// defaults are the values a key takes when neither the file nor the
// environment sets it.
var defaults = map[string]any{
	"postgres.slot":               "cdc_indexer",
	"postgres.publication":        "cdc_indexer",
	"postgres.state_schema":       "cdc_indexer",
	"weaviate.timeout":            30 * time.Second,
	"weaviate.consistency_level":  "QUORUM",
	"weaviate.replication_factor": 1,
	"weaviate.text_filterable":    false,
	"weaviate.grpc_tls":           "auto",
	"weaviate.ca_file":            "",
	"embedding.provider":          ProviderHash,
	"embedding.dimensions":        384,
	"embedding.batch_size":        128,
	"chunking.max_tokens":         512,
	"chunking.overlap":            0,
	"pipeline.workers":            4,
	"pipeline.queue_size":         4096,
	"pipeline.memory_budget":      "64MB",
	"verify.interval":             time.Duration(0),
	"verify.sample":               1.0,
	"reindex.retention":           time.Duration(0),
	"pipeline.max_batch":          500,
	"pipeline.max_wait":           time.Duration(0),
	"pipeline.shutdown_timeout":   30 * time.Second,
	"pipeline.status_interval":    time.Second,
	"observability.listen":        "127.0.0.1:9187",
	"log.level":                   "info",
	"log.format":                  "json",

	// Slot health.
	"postgres.max_retained_wal":   "1GB",
	"postgres.heartbeat_interval": time.Minute,

	// Provider openai, cache and cost (embedding.go).
	"embedding.send_dimensions":          SendDimensionsAuto,
	"embedding.max_batch_tokens":         100000,
	"embedding.concurrency":              1,
	"embedding.encoding_format":          "auto",
	"embedding.max_input_tokens":         8191,
	"embedding.requests_per_minute":      0,
	"embedding.tokens_per_minute":        0,
	"embedding.timeout":                  30 * time.Second,
	"embedding.max_backoff":              time.Minute,
	"embedding.breaker_failures":         5,
	"embedding.breaker_cooldown":         30 * time.Second,
	"embedding.price_per_million_tokens": 0.0,
	"embedding.cache_memory_mb":          128,
	"embedding.cache_max_stored":         1000000,
	"embedding.vectorizer":               "",
}

// scalarKeys lists every scalar key of Config (postgres.dsn, ...), derived
// from the mapstructure tags so that a field added to the struct is
// overridable from the environment without further wiring: viper only
// consults the environment for keys it has been told about.
var scalarKeys = collectKeys(reflect.TypeFor[Config](), "")

// tableKeys lists the keys of one tables[i] entry.
var tableKeys = collectKeys(reflect.TypeFor[Table](), "")

var durationType = reflect.TypeFor[time.Duration]()

func collectKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("mapstructure")
		if name == "" || name == "-" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != durationType:
			keys = append(keys, collectKeys(f.Type, key)...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			// A list of mappings (tables) is not a scalar.
		default:
			keys = append(keys, key)
		}
	}
	return keys
}
