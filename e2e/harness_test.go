package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/sink"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// mapping is one table of the connector's configuration, with the SQL that
// computes each row's expected document independently of the connector's
// template engine, so that the comparison checks it rather than repeats it.
type mapping struct {
	Table      string
	Collection string
	Template   string
	Metadata   []string
	// KeySQL is the contract's source_key of a row, as SQL.
	KeySQL string
	// TextSQL is the row's expected rendered document, as SQL.
	TextSQL string
}

// harness is one database and one Weaviate collection per mapping, and the
// connector pointed at them.
type harness struct {
	t        *testing.T
	dsn      string
	db       *pgx.Conn
	weaviate *sink.Weaviate
	cfgPath  string
	cfg      *config.Config
	maps     []mapping
	listen   string
}

func newHarness(t *testing.T, schema string, maps ...mapping) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{t: t, dsn: testenv.Postgres(t)}
	url, grpc := testenv.Weaviate(t)
	var err error
	if h.db, err = pgx.Connect(ctx, h.dsn); err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { h.db.Close(context.Background()) })
	h.exec(schema)
	if h.weaviate, err = sink.New(ctx, sink.Config{URL: url, GRPC: grpc, Timeout: 30 * time.Second}); err != nil {
		t.Fatalf("weaviate client: %v", err)
	}
	t.Cleanup(func() { h.weaviate.Close() })

	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	h.listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	tables := []map[string]any{}
	for i := range maps {
		if maps[i].Collection == "" {
			maps[i].Collection = testenv.CollectionName(t)
		}
		m := maps[i]
		tables = append(tables, map[string]any{"table": m.Table, "collection": m.Collection, "template": m.Template, "metadata": m.Metadata})
	}
	h.maps = maps
	doc := map[string]any{
		"postgres":      map[string]any{"dsn": h.dsn, "slot": "cdc_indexer", "publication": "cdc_indexer", "state_schema": "cdc_indexer"},
		"weaviate":      map[string]any{"url": url, "grpc": grpc},
		"embedding":     map[string]any{"provider": "hash", "dimensions": 64},
		"chunking":      map[string]any{"max_tokens": 64, "overlap": 0},
		"tables":        tables,
		"pipeline":      map[string]any{"status_interval": "100ms", "shutdown_timeout": "10s"},
		"observability": map[string]any{"listen": h.listen},
		"log":           map[string]any{"level": "info", "format": "console"},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	h.cfgPath = filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(h.cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if h.cfg, err = config.Load(h.cfgPath); err != nil {
		t.Fatalf("load config: %v", err)
	}
	if err := h.cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return h
}

func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	if _, err := h.db.Exec(context.Background(), sql, args...); err != nil {
		h.t.Fatalf("exec %q: %v", abbreviate(sql), err)
	}
}

func abbreviate(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// connector is a running `cdc-indexer run`, in this process.
type connector struct {
	cancel context.CancelFunc
	done   chan error
}

// start runs the connector in-process and waits until it streams.
func (h *harness) start() *connector {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &connector{cancel: cancel, done: make(chan error, 1)}
	log := zerolog.New(zerolog.ConsoleWriter{Out: testWriter{h.t}}).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	go func() { c.done <- indexer.Run(ctx, h.cfg, log) }()
	h.t.Cleanup(func() { c.stop(h.t) })
	h.waitReady(c.done)
	return c
}

// stop sends the equivalent of SIGTERM and requires a clean exit.
func (c *connector) stop(t *testing.T) {
	t.Helper()
	if c.cancel == nil {
		return
	}
	c.cancel()
	c.cancel = nil
	select {
	case err := <-c.done:
		if err != nil {
			t.Errorf("connector exited with %v; want clean shutdown", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("connector did not stop within 60s")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// binary builds cdc-indexer once per test process.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "cdc-indexer-e2e-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "cdc-indexer")
	out, err := exec.Command("go", "build", "-o", path, "../cmd/cdc-indexer").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return path, nil
})

// startProcess runs the connector binary, so that a test can kill -9 it.
func (h *harness) startProcess() *exec.Cmd {
	h.t.Helper()
	bin, err := binary()
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", h.cfgPath)
	logf, err := os.Create(filepath.Join(h.t.TempDir(), "connector.log"))
	if err != nil {
		h.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	h.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if h.t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			h.t.Logf("connector log:\n%s", tail(string(b), 4000))
		}
	})
	h.waitReady(exited)
	return cmd
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (h *harness) waitReady(exited <-chan error) {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			h.t.Fatalf("connector exited before ready: %v", err)
		default:
		}
		resp, err := http.Get("http://" + h.listen + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatal("connector not ready within 60s")
}

// currentLSN is the WAL position after everything written so far.
func (h *harness) currentLSN() pglogrepl.LSN {
	h.t.Helper()
	var s string
	if err := h.db.QueryRow(context.Background(), "SELECT pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
		h.t.Fatal(err)
	}
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		h.t.Fatal(err)
	}
	return lsn
}

// confirmedLSN is the slot's confirmed_flush_lsn.
func (h *harness) confirmedLSN() pglogrepl.LSN {
	h.t.Helper()
	var s *string
	err := h.db.QueryRow(context.Background(),
		"SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", h.cfg.Postgres.Slot).Scan(&s)
	if err != nil {
		h.t.Fatalf("read slot: %v", err)
	}
	if s == nil {
		return 0
	}
	lsn, err := pglogrepl.ParseLSN(*s)
	if err != nil {
		h.t.Fatal(err)
	}
	return lsn
}

// waitCaughtUp waits until the slot confirms everything written so far: by
// the contract, Weaviate then holds all of it.
func (h *harness) waitCaughtUp() {
	h.t.Helper()
	target := h.currentLSN()
	deadline := time.Now().Add(120 * time.Second)
	for h.confirmedLSN() < target {
		if time.Now().After(deadline) {
			h.t.Fatalf("slot confirmed %s, not caught up to %s within 120s", h.confirmedLSN(), target)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expected is a row's document as the contract says it must be indexed.
type expected struct {
	Text     string
	Metadata map[string]any
}

// expectedRows computes every row's document with SQL.
func (h *harness) expectedRows(m mapping) map[string]expected {
	h.t.Helper()
	cols := ""
	for _, c := range m.Metadata {
		cols += ", " + c
	}
	rows, err := h.db.Query(context.Background(), fmt.Sprintf("SELECT %s, %s%s FROM %s", m.KeySQL, m.TextSQL, cols, m.Table))
	if err != nil {
		h.t.Fatalf("read %s: %v", m.Table, err)
	}
	defer rows.Close()
	out := map[string]expected{}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			h.t.Fatal(err)
		}
		e := expected{Text: vals[1].(string), Metadata: map[string]any{}}
		for i, c := range m.Metadata {
			if vals[2+i] != nil {
				e.Metadata[c] = vals[2+i]
			}
		}
		out[vals[0].(string)] = e
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// indexed reads every object of a mapping back from Weaviate, by row.
func (h *harness) indexed(m mapping) map[string][]sink.StoredObject {
	h.t.Helper()
	objs, err := h.weaviate.Objects(context.Background(), m.Collection, sourceTable(m.Table))
	if err != nil {
		h.t.Fatalf("list %s: %v", m.Collection, err)
	}
	out := map[string][]sink.StoredObject{}
	for _, o := range objs {
		out[o.SourceKey] = append(out[o.SourceKey], o)
	}
	for _, chunks := range out {
		sort.Slice(chunks, func(i, j int) bool { return chunks[i].ChunkIndex < chunks[j].ChunkIndex })
	}
	return out
}

func sourceTable(table string) string {
	if !strings.Contains(table, ".") {
		return "public." + table
	}
	return table
}

// diff compares Weaviate with the table exactly and describes every
// difference: missing rows, stale or broken documents, extra objects.
func (h *harness) diff(m mapping) []string {
	want := h.expectedRows(m)
	got := h.indexed(m)
	var problems []string
	for key, e := range want {
		chunks, ok := got[key]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing row %s", key))
			continue
		}
		var text strings.Builder
		for i, c := range chunks {
			if c.ChunkIndex != i {
				problems = append(problems, fmt.Sprintf("row %s: chunk %d at position %d (duplicate or gap)", key, c.ChunkIndex, i))
			}
			if c.ChunkCount != len(chunks) {
				problems = append(problems, fmt.Sprintf("row %s: chunk %d says chunk_count %d, has %d objects", key, i, c.ChunkCount, len(chunks)))
			}
			if c.SourceTable != sourceTable(m.Table) {
				problems = append(problems, fmt.Sprintf("row %s: source_table %q", key, c.SourceTable))
			}
			if len(c.Vector) != h.cfg.Embedding.Dimensions {
				problems = append(problems, fmt.Sprintf("row %s chunk %d: vector length %d", key, i, len(c.Vector)))
			}
			if c.ID != string(sink.ObjectID(m.Collection, sourceTable(m.Table), key, c.ChunkIndex)) {
				problems = append(problems, fmt.Sprintf("row %s chunk %d: id %s is not the deterministic one", key, i, c.ID))
			}
			if _, err := pglogrepl.ParseLSN(c.SourceLSN); err != nil {
				problems = append(problems, fmt.Sprintf("row %s chunk %d: source_lsn %q: %v", key, i, c.SourceLSN, err))
			}
			text.WriteString(c.Text)
			for name, v := range e.Metadata {
				if fmt.Sprint(c.Metadata[name]) != fmt.Sprint(v) {
					problems = append(problems, fmt.Sprintf("row %s chunk %d: metadata %s = %v, want %v", key, i, name, c.Metadata[name], v))
				}
			}
		}
		if text.String() != e.Text {
			problems = append(problems, fmt.Sprintf("row %s: stale text %q, want %q", key, abbreviate(text.String()), abbreviate(e.Text)))
		}
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			problems = append(problems, fmt.Sprintf("extra objects of row %s (deleted or never existed)", key))
		}
	}
	sort.Strings(problems)
	return problems
}

// requireInSync waits until the connector caught up and then requires
// Weaviate to equal the tables exactly.
func (h *harness) requireInSync(step string) {
	h.t.Helper()
	h.waitCaughtUp()
	for _, m := range h.maps {
		if p := h.diff(m); len(p) > 0 {
			if len(p) > 20 {
				p = append(p[:20], fmt.Sprintf("... and %d more", len(p)-20))
			}
			h.t.Fatalf("%s: %s in Weaviate differs from %s:\n  %s", step, m.Collection, m.Table, strings.Join(p, "\n  "))
		}
	}
}

// sourceLSNs maps each row to the source_lsn of its first chunk.
func (h *harness) sourceLSNs(m mapping) map[string]string {
	out := map[string]string{}
	for key, chunks := range h.indexed(m) {
		out[key] = chunks[0].SourceLSN
	}
	return out
}

// metric reads one sample of the connector's /metrics.
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	resp, err := http.Get("http://" + h.listen + "/metrics")
	if err != nil {
		h.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			return v
		}
	}
	return 0
}
