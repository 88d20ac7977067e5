package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

// postgresSettings differ from the test defaults in one way that matters
// for freshness: commits are synchronous, as in production. With
// synchronous_commit=off a walsender sees a commit only once the WAL writer
// flushes it (up to 3 x wal_writer_delay = 600 ms later), which would
// measure PostgreSQL's configuration, not the connector. fsync stays off:
// the data is thrown away, and commit latency is not what is measured here.
var postgresSettings = map[string]string{
	"synchronous_commit": "on",
	"max_wal_size":       "8GB",
	"checkpoint_timeout": "30min",
}

// bench holds the servers and results of one run.
type bench struct {
	o       options
	root    string
	work    string // temporary directory: configs, logs, the binary
	binary  string
	pg      *testenv.PostgresServer
	wv      *testenv.WeaviateServer
	weav    *weaviateHTTP
	res     *results
	started time.Time
	cpu     *cpuMeter
}

func needs(sections []string, any ...string) bool {
	for _, s := range any {
		if slices.Contains(sections, s) {
			return true
		}
	}
	return false
}

func newBench(ctx context.Context, o options, root string, sections []string) (*bench, error) {
	b := &bench{o: o, root: root, started: time.Now()}
	b.res = newResults(o, sections)
	var err error
	if b.work, err = os.MkdirTemp("", "cdc-indexer-bench-"); err != nil {
		return b, err
	}
	b.res.Machine = describeMachine()
	logf("machine: %s, %d cores, load average %s", b.res.Machine.CPU, b.res.Machine.Cores, b.res.Machine.LoadStart)

	if needs(sections, "sink", "snapshot", "memory", "scaling") {
		if o.Binary != "" {
			b.binary = o.Binary
		} else {
			b.binary = filepath.Join(b.work, "cdc-indexer")
			logf("building %s", b.binary)
			cmd := exec.CommandContext(ctx, goBinary(), "build", "-trimpath", "-o", b.binary, "./cmd/cdc-indexer")
			cmd.Dir = root
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return b, fmt.Errorf("go build ./cmd/cdc-indexer: %w", err)
			}
		}
	}

	start := time.Now()
	if b.pg, err = testenv.StartPostgres(ctx, testenv.PostgresOptions{Settings: postgresSettings}); err != nil {
		return b, err
	}
	if err := queryRow(ctx, b.pg.AdminDSN(), "SHOW server_version", &b.res.Machine.Postgres); err != nil {
		return b, err
	}
	logf("PostgreSQL %s on port %d (synchronous_commit=on, fsync=off) in %s", b.res.Machine.Postgres, b.pg.Port(), time.Since(start).Round(time.Millisecond))

	if needs(sections, "sink", "freshness", "snapshot", "cost", "memory", "scaling") {
		start = time.Now()
		var env []string
		if o.WeaviateEnv != "" {
			env = strings.Split(o.WeaviateEnv, ",")
		}
		if b.wv, err = testenv.StartWeaviate(ctx, testenv.WeaviateOptions{AsyncIndexing: true, Env: env}); err != nil {
			return b, err
		}
		if b.weav, err = newWeaviateHTTP(ctx, b.wv.URL(), b.wv.GRPC()); err != nil {
			return b, err
		}
		b.res.Machine.Weaviate, _ = b.weav.version(ctx)
		b.res.Machine.AsyncIndexing = true
		logf("Weaviate %s at %s, gRPC %s, ASYNC_INDEXING=true, in %s", b.res.Machine.Weaviate, b.wv.URL(), b.wv.GRPC(), time.Since(start).Round(time.Millisecond))
	}
	b.cpu = b.newCPUMeter()
	return b, nil
}

func (b *bench) close() {
	if b.wv != nil {
		if err := b.wv.Close(); err != nil {
			logf("%v", err)
		}
	}
	if b.pg != nil {
		if err := b.pg.Close(); err != nil {
			logf("%v", err)
		}
	}
	if b.work != "" {
		os.RemoveAll(b.work)
	}
}

func (b *bench) finish() {
	b.res.Finished = time.Now()
	b.res.Duration = b.res.Finished.Sub(b.started).Round(time.Second).String()
	b.res.Machine.LoadEnd = loadAverage()
	b.res.print(os.Stdout)
}

// database creates a fresh database with the benchmark table public.docs
// and returns its DSN.
func (b *bench) database(ctx context.Context, name string) (string, error) {
	_ = b.dropDatabase(name)
	if err := execSQL(ctx, b.pg.AdminDSN(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	dsn := b.pg.DSN(name)
	if err := execSQL(ctx, dsn, docsDDL); err != nil {
		return "", err
	}
	return dsn, nil
}

const docsDDL = `CREATE TABLE public.docs (
	id         bigint PRIMARY KEY,
	title      text NOT NULL,
	body       text NOT NULL,
	author     text NOT NULL,
	category   text NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
)`

// dropDatabase removes a database with its slots, so that nothing retains
// WAL for the following sections.
func (b *bench) dropDatabase(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.pg.AdminDSN())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	steps := []string{
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
		`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`,
		`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`,
	}
	var lastErr error
	for {
		lastErr = nil
		for _, q := range steps {
			if _, err := conn.Exec(ctx, q, name); err != nil {
				lastErr = err
			}
		}
		if lastErr == nil {
			if _, lastErr = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); lastErr == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drop database %s: %w", name, lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// scenario is one connector configuration over public.docs.
type scenario struct {
	DSN, Slot, Publication, Collection string
	ObsPort                            int
	MaxTokens                          int
	// OpenAIBaseURL, when set, makes the embedding provider openai at this
	// endpoint (the cost section's fake provider); else hash.
	OpenAIBaseURL string
	// Workers is pipeline.workers (0: the default).
	Workers int
}

func (b *bench) writeConfig(name string, s scenario) (string, error) {
	if s.MaxTokens == 0 {
		s.MaxTokens = 512
	}
	embedding := "  provider: hash\n  dimensions: 384"
	if s.OpenAIBaseURL != "" {
		embedding = fmt.Sprintf("  provider: openai\n  model: bench-embedding\n  dimensions: 384\n  base_url: %q\n  api_key: bench", s.OpenAIBaseURL)
	}
	pipeline := ""
	if s.Workers > 0 {
		pipeline = fmt.Sprintf("pipeline:\n  workers: %d\n", s.Workers)
	}
	listen := ""
	if s.ObsPort > 0 {
		listen = fmt.Sprintf("127.0.0.1:%d", s.ObsPort)
	}
	cfg := fmt.Sprintf(`postgres:
  dsn: %q
  slot: %s
  publication: %s
  state_schema: cdc_indexer
weaviate:
  url: %q
  grpc: %q
embedding:
%s
chunking:
  max_tokens: %d
  overlap: 0
tables:
  - table: public.docs
    collection: %s
    template: "{{.title}}\n\n{{.body}}"
    metadata: [author, category]
%sobservability:
  listen: %q
log:
  level: warn
  format: json
`, s.DSN, s.Slot, s.Publication, b.wv.URL(), b.wv.GRPC(), embedding, s.MaxTokens, s.Collection, pipeline, listen)
	path := filepath.Join(b.work, name+".yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// child is a cdc-indexer process.
type child struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

func (b *bench) startChild(name string, args ...string) (*child, error) {
	logPath := filepath.Join(b.work, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(b.binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", b.binary, err)
	}
	c := &child{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits (then kills) so that no child outlives a
// section.
func (c *child) stop() error {
	if c.exited() {
		return c.err
	}
	_ = c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
		return c.err
	case <-time.After(45 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		return errors.New("cdc-indexer did not stop within 45 s of SIGINT")
	}
}

// logTail is the end of the child's log, for error messages.
func (c *child) logTail() string {
	data, err := os.ReadFile(c.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// waitReady waits until the child's /readyz answers 200.
func (c *child) waitReady(ctx context.Context, port int) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if c.exited() {
			return fmt.Errorf("cdc-indexer exited during start-up (%v):\n%s", c.err, c.logTail())
		}
		if ok, _ := httpOK(ctx, url); ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within 2 minutes:\n%s", url, c.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(data, []byte("module github.com/cdc-indexer/cdc-indexer\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the benchmark inside the cdc-indexer repository (no go.mod found)")
		}
		dir = parent
	}
}

func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// machine describes where the figures come from.
type machine struct {
	CPU           string `json:"cpu"`
	Cores         int    `json:"cores"`
	MemoryMB      int    `json:"memory_mb"`
	Kernel        string `json:"kernel"`
	GoVersion     string `json:"go"`
	Postgres      string `json:"postgres"`
	Weaviate      string `json:"weaviate,omitempty"`
	AsyncIndexing bool   `json:"weaviate_async_indexing"`
	LoadStart     string `json:"load_average_start"`
	LoadEnd       string `json:"load_average_end"`
	Note          string `json:"note"`
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), LoadStart: loadAverage(),
		Note: "PostgreSQL, Weaviate, the connector and the load generator share these cores; " +
			"compare ratios measured in the same run, not absolute figures across runs"}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMB = kb / 1024
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
