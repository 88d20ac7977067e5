package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

var (
	// Weaviate capitalises class names itself; requiring the canonical form
	// keeps the name in the config equal to the one queries use.
	collectionName = regexp.MustCompile(`^[A-Z][_0-9A-Za-z]*$`)
	propertyName   = regexp.MustCompile(`^[_A-Za-z][_0-9A-Za-z]*$`)
	slotName       = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	sqlIdentifier  = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
)

// builtinProperties are set on every object (contract section 3); a metadata
// column of the same name would overwrite one of them. id and _additional are
// reserved by Weaviate.
var builtinProperties = map[string]bool{
	"source_table": true, "source_key": true, "chunk_index": true, "chunk_count": true,
	"text": true, "content_hash": true, "source_lsn": true,
	"id": true, "_id": true, "_additional": true,
}

// ParseTemplate parses a table's template with the options the transform
// renders it with, so that validation and rendering agree.
func ParseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=zero").Parse(text)
}

// Validate checks everything that can be checked without connecting to
// anything and reports every problem, each naming its key. Checks that need
// the database (a template naming a missing column, a table without a primary
// key) happen after introspection.
func (c *Config) Validate() error {
	var l errorList
	c.Postgres.validate(&l)
	c.Weaviate.validate(&l)
	c.Embedding.validate(&l)
	c.Embedding.validateMore(&l, c.Chunking) // embedding.go
	c.Chunking.validate(&l)
	validateTables(&l, c.Tables)
	c.Pipeline.validate(&l)
	c.Observability.validate(&l)
	c.Log.validate(&l)
	if c.Verify.Sample <= 0 || c.Verify.Sample > 1 {
		l.add("verify.sample", fmt.Errorf("must be above 0 and at most 1 (a fraction of the rows per round), got %v", c.Verify.Sample))
	}
	if c.Reindex.Retention < 0 {
		l.add("reindex.retention", fmt.Errorf("must not be negative, got %s", c.Reindex.Retention))
	}
	return l.err()
}

// versionSuffix is how the physical versions of a collection are named
// (Article_v2): a configured collection must not take such a name of
// another configured collection.
var versionSuffix = regexp.MustCompile(`^(.+)_v[0-9]+$`)

func (p *Postgres) validate(l *errorList) {
	if isBlank(p.DSN) {
		l.addf("postgres.dsn", "required")
	} else if _, err := pgx.ParseConfig(p.DSN); err != nil {
		l.add("postgres.dsn", fmt.Errorf("malformed connection string: %s", dsnParseReason(err, p.DSN)))
	}
	if !slotName.MatchString(p.Slot) {
		l.add("postgres.slot", fmt.Errorf("%q is not a valid replication slot name (1 to 63 of a-z, 0-9 and _)", p.Slot))
	}
	checkIdentifier(l, "postgres.publication", p.Publication)
	checkIdentifier(l, "postgres.state_schema", p.StateSchema)
	if _, err := ParseSize(p.MaxRetainedWAL); err != nil {
		l.add("postgres.max_retained_wal", err)
	}
	if p.HeartbeatInterval < 0 {
		l.add("postgres.heartbeat_interval", fmt.Errorf("must not be negative, got %s", p.HeartbeatInterval))
	}
}

func checkIdentifier(l *errorList, key, value string) {
	if !sqlIdentifier.MatchString(value) {
		l.add(key, fmt.Errorf("%q is not a lower-case SQL identifier (a-z or _, then up to 62 of a-z, 0-9 and _)", value))
	}
}

func (w *Weaviate) validate(l *errorList) {
	if isBlank(w.URL) {
		l.addf("weaviate.url", "required")
	} else if err := checkHTTPURL(w.URL); err != nil {
		l.add("weaviate.url", err)
	}
	if isBlank(w.GRPC) {
		l.addf("weaviate.grpc", "required")
	} else if err := checkHostPort(w.GRPC, true); err != nil {
		l.add("weaviate.grpc", err)
	}
	if w.Timeout <= 0 {
		l.add("weaviate.timeout", fmt.Errorf("must be positive, got %s", w.Timeout))
	}
	if !slices.Contains(consistencyLevels, w.ConsistencyLevel) {
		l.add("weaviate.consistency_level", fmt.Errorf("%q: want ONE, QUORUM or ALL", w.ConsistencyLevel))
	}
	if w.ReplicationFactor < 1 {
		l.add("weaviate.replication_factor", fmt.Errorf("must be at least 1, got %d", w.ReplicationFactor))
	}
	switch w.GRPCTLS {
	case "auto", "on", "off":
	default:
		l.add("weaviate.grpc_tls", fmt.Errorf("%q: want auto, on or off", w.GRPCTLS))
	}
	if w.CAFile != "" {
		if _, err := os.Stat(w.CAFile); err != nil {
			l.add("weaviate.ca_file", err)
		}
	}
}

func (e *Embedding) validate(l *errorList) {
	switch e.Provider {
	case ProviderHash, ProviderOpenAI:
		if e.Dimensions <= 0 {
			l.add("embedding.dimensions", fmt.Errorf("must be positive for provider %s, got %d", e.Provider, e.Dimensions))
		}
	case ProviderNone:
	default:
		l.add("embedding.provider", fmt.Errorf("unknown provider %q (want %s, %s or %s)", e.Provider, ProviderHash, ProviderOpenAI, ProviderNone))
	}
	if e.Provider == ProviderOpenAI {
		if isBlank(e.BaseURL) {
			l.addf("embedding.base_url", "required for provider openai")
		} else if err := checkHTTPURL(e.BaseURL); err != nil {
			l.add("embedding.base_url", err)
		}
		if isBlank(e.APIKey) && isBlank(e.APIKeyEnv) {
			l.addf("embedding.api_key", "provider openai needs api_key or api_key_env")
		}
	}
	if e.BatchSize <= 0 {
		l.add("embedding.batch_size", fmt.Errorf("must be positive, got %d", e.BatchSize))
	}
}

func (c *Chunking) validate(l *errorList) {
	if c.MaxTokens <= 0 {
		l.add("chunking.max_tokens", fmt.Errorf("must be positive, got %d", c.MaxTokens))
	}
	switch {
	case c.Overlap < 0:
		l.add("chunking.overlap", fmt.Errorf("must not be negative, got %d", c.Overlap))
	case c.MaxTokens > 0 && c.Overlap >= c.MaxTokens:
		l.add("chunking.overlap", fmt.Errorf("must be less than chunking.max_tokens (%d), got %d", c.MaxTokens, c.Overlap))
	}
}

func validateTables(l *errorList, tables []Table) {
	if len(tables) == 0 {
		l.addf("tables", "required: at least one table mapping")
		return
	}
	type mapping struct{ table, collection string }
	seen := map[mapping]int{}
	tenancy := map[string]int{} // collection -> first mapping, which decides whether it has tenants
	for i, t := range tables {
		key := fmt.Sprintf("tables[%d]", i)
		name, nameOK := t.validate(l, key)
		if !nameOK || !collectionName.MatchString(t.Collection) {
			continue
		}
		if first, ok := tenancy[t.Collection]; !ok {
			tenancy[t.Collection] = i
		} else if (tables[first].Tenant == "") != (t.Tenant == "") {
			l.add(key+".tenant", fmt.Errorf("collection %s is shared with tables[%d], and either both mappings name a tenant column or neither does (a collection has tenants or not)", t.Collection, first))
		}
		if base := versionSuffix.FindStringSubmatch(t.Collection); base != nil && slices.ContainsFunc(tables, func(o Table) bool { return o.Collection == base[1] }) {
			l.add(key+".collection", fmt.Errorf("%s is the name of a version of collection %s (its reindexes create %s_v1, %s_v2, ...): choose another name", t.Collection, base[1], base[1], base[1]))
		}
		m := mapping{name.String(), t.Collection}
		if first, dup := seen[m]; dup {
			l.add(key, fmt.Errorf("duplicate mapping of table %s to collection %s (also tables[%d])", m.table, m.collection, first))
			continue
		}
		seen[m] = i
	}
}

// validate checks one table mapping and returns its parsed name.
func (t *Table) validate(l *errorList, key string) (connector.TableName, bool) {
	var name connector.TableName
	nameOK := false
	if isBlank(t.Table) {
		l.addf(key+".table", "required")
	} else if n, err := connector.ParseTableName(t.Table); err != nil {
		l.add(key+".table", err)
	} else {
		name, nameOK = n, true
	}

	switch {
	case isBlank(t.Collection):
		l.addf(key+".collection", "required")
	case !collectionName.MatchString(t.Collection):
		l.add(key+".collection", fmt.Errorf("%q is not a valid Weaviate collection name: it must start with an upper-case letter followed by letters, digits or _ (%s)", t.Collection, collectionName))
	}

	if isBlank(t.Template) {
		l.addf(key+".template", "required")
	} else if _, err := ParseTemplate(t.Table, t.Template); err != nil {
		l.add(key+".template", err)
	}

	if t.Tenant != "" && isBlank(t.Tenant) {
		l.addf(key+".tenant", "blank column name")
	}

	first := map[string]int{}
	for j, col := range t.Metadata {
		mkey := fmt.Sprintf("%s.metadata[%d]", key, j)
		switch {
		case col == "":
			l.addf(mkey, "empty column name")
		case builtinProperties[col]:
			l.add(mkey, fmt.Errorf("column %q would collide with the built-in property of that name", col))
		case !propertyName.MatchString(col):
			l.add(mkey, fmt.Errorf("column %q cannot be a Weaviate property name (letters, digits and _, not starting with a digit)", col))
		default:
			if k, dup := first[col]; dup {
				l.add(mkey, fmt.Errorf("duplicate column %q (also metadata[%d])", col, k))
			} else {
				first[col] = j
			}
		}
	}
	return name, nameOK
}

// minMemoryBudget is the least pipeline.memory_budget accepted: below it,
// rows of a few kilobytes would already go through one at a time.
const minMemoryBudget = 1 << 20

func (p *Pipeline) validate(l *errorList) {
	positive := []struct {
		key   string
		value int
	}{
		{"pipeline.workers", p.Workers},
		{"pipeline.queue_size", p.QueueSize},
		{"pipeline.max_batch", p.MaxBatch},
	}
	for _, f := range positive {
		if f.value <= 0 {
			l.add(f.key, fmt.Errorf("must be positive, got %d", f.value))
		}
	}
	if n, err := ParseSize(p.MemoryBudget); err != nil {
		l.add("pipeline.memory_budget", err)
	} else if n > 0 && n < minMemoryBudget {
		l.add("pipeline.memory_budget", fmt.Errorf("%q is below the least useful budget of 1MB (\"0\" leaves memory unbounded)", p.MemoryBudget))
	}
	if p.MaxWait < 0 {
		l.add("pipeline.max_wait", fmt.Errorf("must not be negative, got %s", p.MaxWait))
	}
	if p.ShutdownTimeout <= 0 {
		l.add("pipeline.shutdown_timeout", fmt.Errorf("must be positive, got %s", p.ShutdownTimeout))
	}
	if p.StatusInterval <= 0 {
		l.add("pipeline.status_interval", fmt.Errorf("must be positive, got %s", p.StatusInterval))
	}
}

func (o *Observability) validate(l *errorList) {
	if err := checkHostPort(o.Listen, false); err != nil {
		l.add("observability.listen", err)
	}
}

func (g *Log) validate(l *errorList) {
	switch g.Level {
	case "debug", "info", "warn", "error":
	default:
		l.add("log.level", fmt.Errorf("unknown level %q (want debug, info, warn or error)", g.Level))
	}
	switch g.Format {
	case "json", "console":
	default:
		l.add("log.format", fmt.Errorf("unknown format %q (want json or console)", g.Format))
	}
}

func isBlank(s string) bool { return strings.TrimSpace(s) == "" }

func checkHTTPURL(raw string) error {
	if !strings.Contains(raw, "://") {
		return fmt.Errorf("malformed URL: want http://host:port or https://host, got %q", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL; the user has it already.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("malformed URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("malformed URL: want http:// or https://, got %q", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("malformed URL: no host in %q", raw)
	}
	return nil
}

// checkHostPort accepts host:port; an empty host (":9187", all interfaces)
// only where listening.
func checkHostPort(s string, needHost bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", s)
	}
	if needHost && host == "" {
		return fmt.Errorf("want host:port, got %q (no host)", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (needHost && n == 0) {
		return fmt.Errorf("want host:port, got %q (bad port)", s)
	}
	return nil
}
