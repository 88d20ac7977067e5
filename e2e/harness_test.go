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
	"syscall"
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
	// Tenant is the tenant column (tables[].tenant), if any; every object
	// of a row must be in the tenant named by its value.
	Tenant string
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
	// running is the connector last started in-process: waiting on it
	// fails at once, with its error, when it exited.
	running *connector
}

func newHarness(t *testing.T, schema string, maps ...mapping) *harness {
	t.Helper()
	url, grpc := testenv.Weaviate(t)
	return newHarnessAt(t, testenv.Postgres(t), url, grpc, schema, maps...)
}

// newHarnessAt is newHarness on the given database and Weaviate (see
// privateWeaviate starts a Weaviate of the test's own with extra
// environment (KEY=VALUE), stopped at cleanup; its log is shown when the
// test failed. A Weaviate that cannot start fails the test loudly.
func privateWeaviate(t *testing.T, env ...string) *testenv.WeaviateServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wv, err := testenv.StartWeaviate(ctx, testenv.WeaviateOptions{Env: env})
	if err != nil {
		t.Fatalf("TEST ENVIRONMENT UNAVAILABLE: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(wv.LogPath()); err == nil {
				t.Logf("weaviate log:\n%s", tail(string(b), 6000))
			}
		}
		wv.Close()
	})
	return wv
}

// newPrivateHarness).
func newHarnessAt(t *testing.T, dsn, url, grpc, schema string, maps ...mapping) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{t: t, dsn: dsn}
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
		entry := map[string]any{"table": m.Table, "collection": m.Collection, "template": m.Template, "metadata": m.Metadata}
		if m.Tenant != "" {
			entry["tenant"] = m.Tenant
		}
		tables = append(tables, entry)
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
	h.running = c
	return c
}

// exited reports the error of a connector that stopped by itself.
func (c *connector) exited() (error, bool) {
	if c == nil || c.cancel == nil {
		return nil, false
	}
	select {
	case err := <-c.done:
		c.cancel()
		c.cancel = nil
		return err, true
	default:
		return nil, false
	}
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
	return h.startInstance(h.listen)
}

// startInstance runs the binary's run command with extra args and its
// observability endpoints on listen, and waits until /readyz there answers
// 200 (streaming, or waiting as a standby).
func (h *harness) startInstance(listen string, args ...string) *exec.Cmd {
	h.t.Helper()
	return h.startInstanceOf(h.cfgPath, listen, args...)
}

// startInstanceOf is startInstance with the configuration file cfgPath.
func (h *harness) startInstanceOf(cfgPath, listen string, args ...string) *exec.Cmd {
	h.t.Helper()
	bin, err := binary()
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"run", "--config", cfgPath}, args...)...)
	cmd.Env = append(os.Environ(), config.EnvName("observability.listen")+"="+listen)
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
			h.t.Logf("connector log (%s):\n%s", listen, tail(string(b), 4000))
		}
	})
	h.waitReadyAt(listen, exited)
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
	h.waitReadyAt(h.listen, exited)
}

// waitReadyAt is waitReady for the instance whose endpoints are on listen.
func (h *harness) waitReadyAt(listen string, exited <-chan error) {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			h.t.Fatalf("connector exited before ready: %v", err)
		default:
		}
		resp, err := http.Get("http://" + listen + "/readyz")
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
		if err, ok := h.running.exited(); ok {
			h.t.Fatalf("connector exited while catching up to %s: %v", target, err)
		}
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
	Tenant   string
}

// expectedRows computes every row's document with SQL.
func (h *harness) expectedRows(m mapping) map[string]expected {
	h.t.Helper()
	cols := ", " + "''"
	if m.Tenant != "" {
		cols = ", " + m.Tenant + "::text"
	}
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
		e := expected{Text: vals[1].(string), Metadata: map[string]any{}, Tenant: vals[2].(string)}
		for i, c := range m.Metadata {
			if vals[3+i] != nil {
				e.Metadata[c] = vals[3+i]
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
			if c.Tenant != e.Tenant {
				problems = append(problems, fmt.Sprintf("row %s chunk %d: in tenant %q, want %q", key, c.ChunkIndex, c.Tenant, e.Tenant))
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
	h.requireEqual(step)
}

// requireConverges is requireInSync for a change that the connector applies
// in the background rather than from the stream (partitions attached or
// detached, which write no row changes): it waits up to a minute for
// Weaviate to equal the tables.
func (h *harness) requireConverges(step string) {
	h.t.Helper()
	h.requireConvergesWithin(step, time.Minute)
}

// requireConvergesWithin is requireConverges waiting up to d.
func (h *harness) requireConvergesWithin(step string, d time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		h.waitCaughtUp()
		equal := true
		for _, m := range h.maps {
			if len(h.diff(m)) > 0 {
				equal = false
				break
			}
		}
		if equal || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	h.requireEqual(step)
}

// requireEqual requires Weaviate to equal the tables exactly now, as after
// a snapshot with nothing streaming.
func (h *harness) requireEqual(step string) {
	h.t.Helper()
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

// scrape returns the connector's /metrics text.
func (h *harness) scrape() string {
	h.t.Helper()
	resp, err := http.Get("http://" + h.listen + "/metrics")
	if err != nil {
		h.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("scrape: %v", err)
	}
	return string(b)
}

// walLSN is the WAL position on the test's connection, as an application
// reads it after its write. The test clusters run with synchronous_commit = off, so the position is
// pg_current_wal_insert_lsn(): pg_current_wal_lsn() (what is written out)
// may not include a commit just made (docs/operations.md).
func (h *harness) walLSN() string {
	h.t.Helper()
	var s string
	if err := h.db.QueryRow(context.Background(), "SELECT pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

// waitFor calls GET /v1/wait and returns the status and body.
func (h *harness) waitFor(query string) (int, string) {
	h.t.Helper()
	resp, err := http.Get("http://" + h.listen + "/v1/wait?" + query)
	if err != nil {
		h.t.Fatalf("wait: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// newPrivateHarness is newHarness on servers of the test's own, which it
// may stop and start (fault injection): a new database in pg when pg is not
// nil, else in the shared cluster; wv when not nil, else the shared Weaviate.
func newPrivateHarness(t *testing.T, pg *testenv.PostgresServer, wv *testenv.WeaviateServer, schema string, maps ...mapping) *harness {
	t.Helper()
	dsn := ""
	if pg != nil {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, pg.AdminDSN())
		if err != nil {
			t.Fatalf("connect to the private cluster: %v", err)
		}
		db := "t_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
		if len(db) > 60 {
			db = db[:60]
		}
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
		conn.Close(ctx)
		if err != nil {
			t.Fatalf("create database: %v", err)
		}
		dsn = pg.DSN(db)
	} else {
		dsn = testenv.Postgres(t)
	}
	url, grpc := "", ""
	if wv != nil {
		url, grpc = wv.URL(), wv.GRPC()
	} else {
		url, grpc = testenv.Weaviate(t)
	}
	return newHarnessAt(t, dsn, url, grpc, schema, maps...)
}

// setConfig overrides a config key the way an operator would, through its
// CDC_INDEXER_ environment variable, for the rest of the test: both start
// (in-process) and startProcess (the binary) see it.
func (h *harness) setConfig(key, value string) {
	h.t.Helper()
	h.t.Setenv(config.EnvName(key), value)
	cfg, err := config.Load(h.cfgPath)
	if err != nil {
		h.t.Fatalf("load config: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		h.t.Fatalf("config: %v", err)
	}
	h.cfg = cfg
}

// setSection merges values into one section of the config file (e.g.
// "embedding") and reloads it, for the rest of the test.
func (h *harness) setSection(section string, values map[string]any) {
	h.t.Helper()
	doc := h.configDoc()
	sec, _ := doc[section].(map[string]any)
	if sec == nil {
		sec = map[string]any{}
	}
	for k, v := range values {
		sec[k] = v
	}
	doc[section] = sec
	h.writeConfigDoc(h.cfgPath, doc)
	cfg, err := config.Load(h.cfgPath)
	if err != nil {
		h.t.Fatalf("load config: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		h.t.Fatalf("config: %v", err)
	}
	h.cfg = cfg
}

// setTemplate changes mapping i's template in the config file (as an
// operator would before a restart) and the SQL oracle's expectation with it.
func (h *harness) setTemplate(i int, template, textSQL string) {
	h.t.Helper()
	doc := h.configDoc()
	doc["tables"].([]any)[i].(map[string]any)["template"] = template
	h.writeConfigDoc(h.cfgPath, doc)
	cfg, err := config.Load(h.cfgPath)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		h.t.Fatalf("config: %v", err)
	}
	h.cfg = cfg
	h.maps[i].Template, h.maps[i].TextSQL = template, textSQL
}

// configDoc is the config file as a document to edit.
func (h *harness) configDoc() map[string]any {
	h.t.Helper()
	raw, err := os.ReadFile(h.cfgPath)
	if err != nil {
		h.t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		h.t.Fatal(err)
	}
	return doc
}

// writeConfigDoc writes doc as the config file at path.
func (h *harness) writeConfigDoc(path string, doc map[string]any) {
	h.t.Helper()
	raw, err := yaml.Marshal(doc)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// useOpenAI points the connector at an OpenAI-compatible server (an
// openaitest.Server in tests) with short retry waits, in one step (the keys
// depend on each other); extra overrides the other embedding keys.
func (h *harness) useOpenAI(baseURL string, dims int, extra map[string]any) {
	h.t.Helper()
	values := map[string]any{
		"provider": "openai", "model": "test-embed", "dimensions": dims, "base_url": baseURL,
		"api_key": "sk-test", "send_dimensions": "always",
		"max_backoff": "1s", "breaker_failures": 3, "breaker_cooldown": "500ms", "timeout": "10s",
	}
	for k, v := range extra {
		values[k] = v
	}
	h.setSection("embedding", values)
}

// runUntilExit runs the connector in-process and returns its error, for
// starts that must fail; it fails the test if the connector is still
// running after the timeout.
func (h *harness) runUntilExit(timeout time.Duration) error {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := zerolog.New(zerolog.ConsoleWriter{Out: testWriter{h.t}}).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	done := make(chan error, 1)
	go func() { done <- indexer.Run(ctx, h.cfg, log) }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		cancel()
		<-done
		h.t.Fatalf("connector still running after %s; want it to refuse to start", timeout)
		return nil
	}
}

// runSnapshot runs `cdc-indexer snapshot` in-process with opts and returns
// what it printed; it fails the test if the snapshot fails.
func (h *harness) runSnapshot(opts indexer.SnapshotOptions) string {
	h.t.Helper()
	var out strings.Builder
	opts.Out = &out
	log := zerolog.New(zerolog.ConsoleWriter{Out: testWriter{h.t}, NoColor: true}).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := indexer.Snapshot(ctx, h.cfg, opts, log); err != nil {
		h.t.Fatalf("snapshot: %v", err)
	}
	return out.String()
}

// process is a command of the binary (`snapshot`, `run`) running as a
// process of its own.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// startSnapshotProcess runs the binary's snapshot command with args.
func (h *harness) startSnapshotProcess(args ...string) *process {
	h.t.Helper()
	return h.startCommand("snapshot", args...)
}

// startCommand runs the binary's command with the harness's config and args,
// without waiting for anything.
func (h *harness) startCommand(command string, args ...string) *process {
	h.t.Helper()
	bin, err := binary()
	if err != nil {
		h.t.Fatal(err)
	}
	p := &process{done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{command, "--config", h.cfgPath}, args...)...)
	logf, err := os.CreateTemp(h.t.TempDir(), command+"-*.log")
	if err != nil {
		h.t.Fatal(err)
	}
	p.logPath = logf.Name()
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); logf.Close(); close(p.done) }()
	h.t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if h.t.Failed() {
			h.t.Logf("%s log:\n%s", command, tail(p.log(), 4000))
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// wait returns the process's exit error (nil for exit 0).
func (p *process) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("still running after %s", timeout)
	}
}

func (p *process) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// terminate sends SIGTERM and requires a clean exit within timeout.
func (p *process) terminate(t *testing.T, timeout time.Duration) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(timeout); err != nil {
		t.Fatalf("%s after SIGTERM: %v\n%s", p.cmd.Args[1], err, tail(p.log(), 4000))
	}
}

// peakRSS is the most resident memory the exited process ever had
// (getrusage's ru_maxrss), in bytes.
func (p *process) peakRSS() int64 {
	<-p.done
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}

// snapshotRowsDone is the rows the snapshot recorded as indexed (0 before
// the state schema exists).
func (h *harness) snapshotRowsDone() int64 {
	h.t.Helper()
	if !h.stateRelation("snapshot_progress") {
		return 0
	}
	var n int64
	if err := h.db.QueryRow(context.Background(), `SELECT coalesce(sum(rows_done), 0) FROM cdc_indexer.snapshot_progress`).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// replicationSlots counts the database's replication slots.
func (h *harness) replicationSlots() int {
	h.t.Helper()
	var n int
	if err := h.db.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE database = current_database()`).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// stateRelation reports whether the state schema has the named table.
func (h *harness) stateRelation(name string) bool {
	h.t.Helper()
	var exists bool
	if err := h.db.QueryRow(context.Background(), `SELECT to_regclass('cdc_indexer.' || $1) IS NOT NULL`, name).Scan(&exists); err != nil {
		h.t.Fatal(err)
	}
	return exists
}

// hasCollection reports whether Weaviate has the collection.
func (h *harness) hasCollection(name string) bool {
	h.t.Helper()
	resp, err := http.Get(h.weaviate.URL() + "/v1/schema/" + name)
	if err != nil {
		h.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
