// Package status gathers the operator's overview behind `cdc-indexer
// status`: the slot, the confirmed position, the lag, retained WAL, per-table
// counts in PostgreSQL, the state schema and Weaviate, and dead letters. It
// only reads.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/sink"
)

// Report is the overview. Counts that could not be read are nil, with the
// reason in Notes.
type Report struct {
	Slot       Slot     `json:"slot"`
	ServerLSN  string   `json:"server_lsn"`           // pg_current_wal_lsn()
	Checkpoint string   `json:"checkpoint,omitempty"` // confirmed position recorded in the state schema
	LagBytes   *uint64  `json:"lag_bytes"`            // server_lsn - the slot's confirmed_flush_lsn
	LagSeconds *float64 `json:"lag_seconds"`          // from the running indexer, else pg_stat_replication
	LagSource  string   `json:"lag_seconds_source"`   // where lag_seconds comes from
	Retained   *uint64  `json:"retained_wal_bytes"`   // server_lsn - restart_lsn
	Indexer    string   `json:"indexer,omitempty"`    // the running indexer's /readyz answer
	Tables     []Table  `json:"tables"`
	DeadTotal  int64    `json:"dead_letters"`
	Embedding  Usage    `json:"embedding"`
	Notes      []string `json:"notes,omitempty"`
}

// Slot is the replication slot as pg_replication_slots shows it.
type Slot struct {
	Name         string `json:"name"`
	Exists       bool   `json:"exists"`
	Plugin       string `json:"plugin,omitempty"`
	Active       bool   `json:"active"`
	ActivePID    int    `json:"active_pid,omitempty"`
	WALStatus    string `json:"wal_status,omitempty"`
	ConfirmedLSN string `json:"confirmed_flush_lsn,omitempty"`
	RestartLSN   string `json:"restart_lsn,omitempty"`
}

// Table is one configured table's counts.
type Table struct {
	Table      string `json:"table"`
	Collection string `json:"collection"`
	// Version is the Weaviate collection the configured one (an alias)
	// points at; the configured name itself for a plain collection.
	Version string `json:"version,omitempty"`
	// Reindex is the mapping's part of a reindex under way (nil: none).
	Reindex *Reindex `json:"reindex,omitempty"`
	// Rows in PostgreSQL: count(*), or the planner's estimate for a big
	// table (RowsEstimated).
	Rows          *int64 `json:"rows"`
	RowsEstimated bool   `json:"rows_estimated,omitempty"`
	Documents     *int64 `json:"documents"` // rows indexed, per the state schema
	Chunks        *int64 `json:"chunks"`    // objects the state schema expects in Weaviate
	Objects       *int64 `json:"objects"`   // objects in Weaviate, over every tenant
	// Tenants the collection has in Weaviate, for a mapping with
	// tables[].tenant (absent otherwise).
	Tenants     *int64 `json:"tenants,omitempty"`
	DeadLetters int64  `json:"dead_letters"`
	// Embedding tokens sent and their estimated cost, per the state
	// schema's embedding_usage (nil when it is not recorded).
	Tokens *int64   `json:"embedding_tokens,omitempty"`
	Cost   *float64 `json:"embedding_cost,omitempty"`
}

// Reindex is how far a reindex has filled the new version with a table.
type Reindex struct {
	Version   string `json:"version"` // the collection being filled
	Status    string `json:"status"`  // of the table's backfill: pending, running, done, failed
	RowsDone  int64  `json:"rows_done"`
	RowsTotal *int64 `json:"rows_total"` // nil until the backfill counted the table
}

// Usage is the embedding usage so far, when known.
type Usage struct {
	Tokens *float64 `json:"tokens"`
	Cost   *float64 `json:"cost"` // in the currency of embedding.price_per_million_tokens
	Source string   `json:"source"`
}

// ExactCountLimit is the estimated size up to which rows are counted with
// count(*); bigger tables show the planner's estimate.
var ExactCountLimit = 1_000_000

// Timeout bounds each query and request.
var Timeout = 30 * time.Second

// Collect builds the report. Only a failure to reach PostgreSQL is an
// error: anything else missing is noted in the report.
func Collect(ctx context.Context, cfg *config.Config) (*Report, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	db, err := pgx.Connect(ctx, cfg.Postgres.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres.dsn: cannot connect to %s: %w", config.RedactDSN(cfg.Postgres.DSN), err)
	}
	defer db.Close(context.WithoutCancel(ctx))
	r := &Report{Slot: Slot{Name: cfg.Postgres.Slot}, Tables: []Table{}}
	if err := r.slot(ctx, db, cfg.Postgres.Slot); err != nil {
		return nil, err
	}
	schema := connector.QuoteIdent(cfg.Postgres.StateSchema)
	stateReady := r.stateSchema(ctx, db, cfg.Postgres.StateSchema)
	if stateReady {
		var cp string
		err := db.QueryRow(ctx, `SELECT confirmed_lsn::text FROM `+schema+`.checkpoint WHERE slot = $1`, cfg.Postgres.Slot).Scan(&cp)
		if err == nil {
			r.Checkpoint = cp
		} else if !errors.Is(err, pgx.ErrNoRows) {
			r.note("checkpoint: %v", err)
		}
	}

	var w *sink.Weaviate
	wc := cfg.Weaviate.SinkConfig()
	wc.Timeout = Timeout
	if w, err = sink.New(ctx, wc); err != nil {
		r.note("weaviate: %v", err)
		w = nil
	} else {
		defer w.Close()
		if err := w.Ready(ctx); err != nil {
			r.note("weaviate: %v", err)
			w.Close()
			w = nil
		}
	}
	for _, t := range cfg.Tables {
		r.Tables = append(r.Tables, r.table(ctx, db, w, schema, stateReady, t))
	}
	for _, t := range r.Tables {
		r.DeadTotal += t.DeadLetters
	}
	if stateReady {
		r.usage(ctx, db, schema)
	}
	r.fromIndexer(ctx, cfg.Observability.Listen, db)
	return r, nil
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Report) slot(ctx context.Context, db *pgx.Conn, name string) error {
	var current string
	if err := db.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&current); err != nil {
		return fmt.Errorf("read the server's WAL position: %w", err)
	}
	r.ServerLSN = current
	cur, _ := pglogrepl.ParseLSN(current)
	st, err := connector.SlotInfo(ctx, db, name)
	if err != nil {
		return err
	}
	if !st.Exists {
		r.note("slot %s does not exist yet: run cdc-indexer run or snapshot", name)
		return nil
	}
	r.Slot = Slot{Name: name, Exists: true, Plugin: st.Plugin, Active: st.Active, ActivePID: st.ActivePID,
		WALStatus: st.WALStatus, ConfirmedLSN: st.ConfirmedFlush.String(), RestartLSN: st.RestartLSN.String()}
	lag := diff(cur, st.ConfirmedFlush)
	r.LagBytes = &lag
	if st.RestartLSN != 0 {
		ret := diff(cur, st.RestartLSN)
		r.Retained = &ret
	}
	return nil
}

func diff(a, b pglogrepl.LSN) uint64 {
	if a <= b {
		return 0
	}
	return uint64(a - b)
}

// stateSchema reports whether the state schema has been migrated.
func (r *Report) stateSchema(ctx context.Context, db *pgx.Conn, schema string) bool {
	var docs, dead bool
	q := connector.QuoteIdent(schema)
	err := db.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL`,
		q+".documents", q+".dead_letters").Scan(&docs, &dead)
	if err != nil {
		r.note("state schema %s: %v", q, err)
		return false
	}
	if !docs || !dead {
		r.note("state schema %s is not set up yet (cdc-indexer run creates it)", q)
		return false
	}
	return true
}

func (r *Report) table(ctx context.Context, db *pgx.Conn, w *sink.Weaviate, schema string, stateReady bool, t config.Table) Table {
	out := Table{Table: t.Table, Collection: t.Collection}
	name, err := connector.ParseTableName(t.Table)
	if err != nil {
		r.note("%s: %v", t.Table, err)
		return out
	}
	src := name.String()
	out.Table = src
	var estimate float64
	err = db.QueryRow(ctx, `SELECT c.reltuples::float8 FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`, name.Schema, name.Name).Scan(&estimate)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		r.note("%s: table does not exist", src)
	case err != nil:
		r.note("%s: %v", src, err)
	case estimate > float64(ExactCountLimit):
		n := int64(math.Round(estimate))
		out.Rows, out.RowsEstimated = &n, true
	default:
		var n int64
		if err := db.QueryRow(ctx, `SELECT count(*) FROM `+src).Scan(&n); err != nil {
			r.note("%s: count rows: %v", src, err)
		} else {
			out.Rows = &n
		}
	}
	physical := t.Collection
	if stateReady {
		physical = r.versions(ctx, db, schema, t.Collection, src, &out)
		var docs, chunks int64
		err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE chunk_count > 0), COALESCE(sum(chunk_count), 0)::int8
FROM `+schema+`.documents WHERE collection = $1 AND source_table = $2`, physical, src).Scan(&docs, &chunks)
		if err != nil {
			r.note("%s: documents: %v", src, err)
		} else {
			out.Documents, out.Chunks = &docs, &chunks
		}
		err = db.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.dead_letters WHERE collection = $1 AND source_table = $2`,
			physical, src).Scan(&out.DeadLetters)
		if err != nil {
			r.note("%s: dead letters: %v", src, err)
		}
	}
	if w != nil {
		n, err := w.Count(ctx, physical, src)
		if err != nil {
			r.note("%s: count objects in %s: %v", src, t.Collection, err)
		} else {
			n64 := int64(n)
			out.Objects = &n64
		}
		if t.Tenant != "" {
			if tenants, err := w.Tenants(ctx, t.Collection); err != nil {
				r.note("%s: tenants of %s: %v", src, t.Collection, err)
			} else {
				n := int64(len(tenants))
				out.Tenants = &n
			}
		}
	}
	return out
}

// usage reads the embedding usage the pipeline records in the state schema
// (embedding_usage: tokens and estimated cost per model and table).
func (r *Report) usage(ctx context.Context, db *pgx.Conn, schema string) {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, schema+".embedding_usage").Scan(&exists); err != nil || !exists {
		return
	}
	rows, err := db.Query(ctx, `SELECT source_table, sum(tokens)::int8, sum(cost)::float8 FROM `+schema+`.embedding_usage GROUP BY source_table`)
	if err != nil {
		r.note("embedding usage: %v", err)
		return
	}
	var (
		table  string
		tokens int64
		cost   float64
	)
	var totalTokens int64
	var totalCost float64
	_, err = pgx.ForEachRow(rows, []any{&table, &tokens, &cost}, func() error {
		totalTokens += tokens
		totalCost += cost
		for i := range r.Tables {
			if r.Tables[i].Table == table {
				tk, c := tokens, cost
				r.Tables[i].Tokens, r.Tables[i].Cost = &tk, &c
			}
		}
		return nil
	})
	if err != nil {
		r.note("embedding usage: %v", err)
		return
	}
	tokensF := float64(totalTokens)
	r.Embedding = Usage{Tokens: &tokensF, Cost: &totalCost, Source: "recorded in the state schema (embedding_usage)"}
}

// fromIndexer reads lag in seconds, embedding usage and readiness from the
// running indexer's observability listener, when it answers; otherwise lag
// in seconds comes from pg_stat_replication.
func (r *Report) fromIndexer(ctx context.Context, listen string, db *pgx.Conn) {
	fromState := r.Embedding.Tokens != nil
	if !fromState {
		r.Embedding.Source = "not recorded in the state schema; available from a running indexer's /metrics"
	}
	base := indexerURL(listen)
	if base != "" {
		if samples, err := scrape(ctx, base+"/metrics"); err == nil {
			if v, ok := samples["cdc_indexer_lag_seconds"]; ok {
				r.LagSeconds, r.LagSource = &v, "indexer /metrics"
			}
			if v, ok := sumPrefix(samples, "cdc_indexer_embedding_tokens_total"); ok && !fromState {
				r.Embedding.Tokens = &v
				r.Embedding.Source = "since the running indexer started (its /metrics)"
				if v, ok := sumPrefix(samples, "cdc_indexer_embedding_cost_total"); ok {
					r.Embedding.Cost = &v
				}
			}
			r.Indexer = readyz(ctx, base+"/readyz")
		} else {
			r.Indexer = "not reachable at " + base
		}
	}
	if r.LagSeconds != nil || !r.Slot.Active {
		if r.LagSeconds == nil && r.LagBytes != nil && *r.LagBytes == 0 {
			zero := 0.0
			r.LagSeconds, r.LagSource = &zero, "caught up"
		}
		return
	}
	var lag *float64
	err := db.QueryRow(ctx, `SELECT EXTRACT(epoch FROM flush_lag)::float8 FROM pg_catalog.pg_stat_replication WHERE pid = $1`, r.Slot.ActivePID).Scan(&lag)
	if err == nil {
		if lag == nil {
			zero := 0.0
			lag = &zero
		}
		r.LagSeconds, r.LagSource = lag, "pg_stat_replication.flush_lag"
	}
}

// indexerURL turns the listen address into a URL to reach it from here.
func indexerURL(listen string) string {
	if listen == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

var httpClient = &http.Client{Timeout: 3 * time.Second}

func readyz(ctx context.Context, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "not reachable"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return strings.TrimSpace(string(b))
}

// scrape reads a Prometheus text exposition into series -> value.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, nil
}

func sumPrefix(samples map[string]float64, name string) (float64, bool) {
	total, found := 0.0, false
	for k, v := range samples {
		if k == name || strings.HasPrefix(k, name+"{") {
			total += v
			found = true
		}
	}
	return total, found
}

// PrintJSON writes the report as JSON.
func (r *Report) PrintJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Print writes the report for humans.
func (r *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	slot := "does not exist"
	if r.Slot.Exists {
		state := "inactive"
		if r.Slot.Active {
			state = fmt.Sprintf("active (pid %d)", r.Slot.ActivePID)
		}
		slot = fmt.Sprintf("%s, wal_status %s", state, r.Slot.WALStatus)
	}
	fmt.Fprintf(tw, "slot\t%s: %s\n", r.Slot.Name, slot)
	fmt.Fprintf(tw, "server WAL\t%s\n", r.ServerLSN)
	if r.Slot.Exists {
		fmt.Fprintf(tw, "confirmed LSN\t%s\n", r.Slot.ConfirmedLSN)
	}
	if r.Checkpoint != "" {
		fmt.Fprintf(tw, "checkpoint\t%s\n", r.Checkpoint)
	}
	lag := "unknown"
	if r.LagBytes != nil {
		lag = bytes(*r.LagBytes)
	}
	if r.LagSeconds != nil {
		lag += fmt.Sprintf(", %.1fs (%s)", *r.LagSeconds, r.LagSource)
	} else {
		lag += ", seconds unknown"
	}
	fmt.Fprintf(tw, "lag\t%s\n", lag)
	if r.Retained != nil {
		fmt.Fprintf(tw, "retained WAL\t%s\n", bytes(*r.Retained))
	}
	if r.Indexer != "" {
		fmt.Fprintf(tw, "indexer\t%s\n", r.Indexer)
	}
	fmt.Fprintf(tw, "dead letters\t%d\n", r.DeadTotal)
	usage := r.Embedding.Source
	if r.Embedding.Tokens != nil {
		usage = fmt.Sprintf("%.0f tokens", *r.Embedding.Tokens)
		if r.Embedding.Cost != nil {
			usage += fmt.Sprintf(", estimated cost %.4f", *r.Embedding.Cost)
		}
		usage += ", " + r.Embedding.Source
	}
	fmt.Fprintf(tw, "embedding\t%s\n", usage)
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tCOLLECTION\tVERSION\tROWS\tDOCUMENTS\tCHUNKS\tOBJECTS\tDEAD LETTERS\tTOKENS")
	for _, t := range r.Tables {
		rows := count(t.Rows)
		if t.RowsEstimated {
			rows = "~" + rows
		}
		objects := count(t.Objects)
		if t.Tenants != nil {
			objects += fmt.Sprintf(" in %d tenants", *t.Tenants)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", t.Table, t.Collection, or(t.Version, "-"), rows, count(t.Documents), count(t.Chunks), objects, t.DeadLetters, count(t.Tokens))
	}
	tw.Flush()
	for _, t := range r.Tables {
		if x := t.Reindex; x != nil {
			total := "?"
			if x.RowsTotal != nil {
				total = strconv.FormatInt(*x.RowsTotal, 10)
			}
			fmt.Fprintf(w, "reindex: %s -> %s: %s, %d of %s rows\n", t.Table, x.Version, x.Status, x.RowsDone, total)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

func count(n *int64) string {
	if n == nil {
		return "-"
	}
	return strconv.FormatInt(*n, 10)
}

func bytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// versions fills in the mapping's serving version and the progress of a
// reindex under way, and returns the collection that holds what
// applications query now.
func (r *Report) versions(ctx context.Context, db *pgx.Conn, schema, collection, src string, out *Table) string {
	var serving, filling string
	err := db.QueryRow(ctx, `SELECT COALESCE(max(physical) FILTER (WHERE phase = 'serving'), $1),
       COALESCE(max(physical) FILTER (WHERE phase = 'filling'), '')
FROM `+schema+`.collection_versions WHERE collection = $1`, collection).Scan(&serving, &filling)
	if err != nil {
		r.note("%s: collection versions: %v", src, err)
		return collection
	}
	out.Version = serving
	if filling == "" {
		return serving
	}
	x := &Reindex{Version: filling, Status: "pending"}
	err = db.QueryRow(ctx, `SELECT status, rows_done, rows_total FROM `+schema+`.backfill_requests
WHERE collection = $1 AND source_table = $2 ORDER BY id DESC LIMIT 1`, filling, src).Scan(&x.Status, &x.RowsDone, &x.RowsTotal)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		r.note("%s: reindex progress: %v", src, err)
	}
	out.Reindex = x
	return serving
}
