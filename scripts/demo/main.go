// Command demo shows cdc-indexer end to end (`make demo`): it starts a
// throwaway PostgreSQL and Weaviate, runs the connector on an articles
// table, writes rows, and shows them arriving in Weaviate as searchable
// objects, including an update and a delete.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

const (
	collection = "Article"
	// arrivalTimeout bounds every wait for a change to show up in Weaviate.
	arrivalTimeout = 60 * time.Second
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: FAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("\ndemo: done")
}

func run() error {
	ctx := context.Background()
	root, err := repoRoot()
	if err != nil {
		return err
	}

	step("building bin/cdc-indexer")
	binary := filepath.Join(root, "bin", "cdc-indexer")
	if err := buildConnector(ctx, root, binary); err != nil {
		return err
	}

	step("starting PostgreSQL and Weaviate")
	pg, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{})
	if err != nil {
		return err
	}
	defer pg.Close()
	wv, err := testenv.StartWeaviate(ctx, testenv.WeaviateOptions{})
	if err != nil {
		return err
	}
	defer wv.Close()
	fmt.Printf("    PostgreSQL %s\n    Weaviate   %s (gRPC %s)\n", pg.AdminDSN(), wv.URL(), wv.GRPC())

	step("creating database demo with table public.articles")
	if err := execSQL(ctx, pg.AdminDSN(), "CREATE DATABASE demo"); err != nil {
		return err
	}
	dsn := pg.DSN("demo")
	if err := execSQLFile(ctx, dsn, filepath.Join(root, "testdata", "demo", "schema.sql")); err != nil {
		return err
	}

	workDir, err := os.MkdirTemp("", "cdc-indexer-demo-")
	if err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer os.RemoveAll(workDir)
	obsPort, err := testenv.FreePort()
	if err != nil {
		return err
	}
	configPath := filepath.Join(workDir, "config.yaml")
	if err := os.WriteFile(configPath, []byte(demoConfig(dsn, wv.URL(), wv.GRPC(), obsPort)), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}

	step("starting cdc-indexer run --config " + configPath)
	conn, err := startConnector(binary, configPath, filepath.Join(workDir, "cdc-indexer.log"))
	if err != nil {
		return err
	}
	defer conn.kill()
	if err := conn.waitReady(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", obsPort)); err != nil {
		return conn.explain(err)
	}

	weav, err := newWeaviateClient(wv.GRPC())
	if err != nil {
		return err
	}
	defer weav.close()

	step("inserting 10 articles (testdata/demo/rows.sql)")
	if err := execSQLFile(ctx, dsn, filepath.Join(root, "testdata", "demo", "rows.sql")); err != nil {
		return err
	}
	step("updating articles 3 (body) and 5 (category only), deleting article 9")
	if err := execSQL(ctx, dsn, `
		UPDATE public.articles SET body = body || ' Okapi BM25 is the classic ranking function behind it.', updated_at = now() WHERE id = 3;
		UPDATE public.articles SET category = 'guides', updated_at = now() WHERE id = 5;
		DELETE FROM public.articles WHERE id = 9;`); err != nil {
		return err
	}

	step("waiting for Weaviate to hold exactly the 9 remaining articles")
	start := time.Now()
	err = waitFor(ctx, conn, func() (bool, string, error) {
		n, err := weav.count(ctx)
		if err != nil {
			return false, "", err
		}
		if n != 9 {
			return false, fmt.Sprintf("%d objects", n), nil
		}
		a3, err := weav.byKey(ctx, "3")
		if err != nil {
			return false, "", err
		}
		a5, err := weav.byKey(ctx, "5")
		if err != nil {
			return false, "", err
		}
		a9, err := weav.byKey(ctx, "9")
		if err != nil {
			return false, "", err
		}
		switch {
		case len(a3) == 0 || !strings.Contains(a3[0].Text, "Okapi"):
			return false, "update of article 3 not there yet", nil
		case len(a5) == 0 || a5[0].Category != "guides":
			return false, "update of article 5 not there yet", nil
		case len(a9) != 0:
			return false, "article 9 not deleted yet", nil
		}
		return true, "", nil
	})
	if err != nil {
		return conn.explain(err)
	}
	fmt.Printf("    all changes arrived in %s\n", time.Since(start).Round(time.Millisecond))

	const query = "replication"
	step(fmt.Sprintf("BM25 keyword search for %q", query))
	hits, err := weav.bm25(ctx, query, 5)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    score\ttitle\tsource_key\tsource_lsn\tchunk_index")
	for _, h := range hits {
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%d\n", h.Additional.Score, firstLine(h.Text), h.SourceKey, h.SourceLSN, h.ChunkIndex)
	}
	tw.Flush()

	step("objects per source_key")
	groups, err := weav.countPerKey(ctx)
	if err != nil {
		return err
	}
	tw = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    source_key\tobjects")
	for _, g := range groups {
		fmt.Fprintf(tw, "    %s\t%d\n", g.GroupedBy.Value, g.Meta.Count)
	}
	tw.Flush()

	step("watching an update arrive: article 1")
	before, err := weav.byKey(ctx, "1")
	if err != nil {
		return err
	}
	if len(before) == 0 {
		return errors.New("article 1 is missing from Weaviate")
	}
	fmt.Printf("    before (source_lsn %s):\n%s\n", before[0].SourceLSN, indent(before[0].Text))
	if err := execSQL(ctx, dsn, `UPDATE public.articles
		SET title = 'Logical replication in PostgreSQL, revisited',
		    body = 'A slot keeps WAL until its consumer confirms it; the connector confirms only what Weaviate has acknowledged.',
		    updated_at = now()
		WHERE id = 1`); err != nil {
		return err
	}
	start = time.Now()
	var after []object
	err = waitFor(ctx, conn, func() (bool, string, error) {
		var err error
		if after, err = weav.byKey(ctx, "1"); err != nil {
			return false, "", err
		}
		if len(after) == 0 || after[0].SourceLSN == before[0].SourceLSN {
			return false, "still the old version", nil
		}
		return true, "", nil
	})
	if err != nil {
		return conn.explain(err)
	}
	fmt.Printf("    after %s (source_lsn %s):\n%s\n", time.Since(start).Round(time.Millisecond), after[0].SourceLSN, indent(after[0].Text))

	step("stopping cdc-indexer with SIGTERM")
	if err := conn.stop(); err != nil {
		return conn.explain(err)
	}
	fmt.Println("    cdc-indexer exited 0")
	return nil
}

func step(msg string) { fmt.Printf("\n==> %s\n", msg) }

// repoRoot finds the module root, so the demo works from any directory
// inside the repository.
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
			return "", errors.New("run the demo inside the cdc-indexer repository (no go.mod found)")
		}
		dir = parent
	}
}

func buildConnector(ctx context.Context, root, binary string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-o", binary, "./cmd/cdc-indexer")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/cdc-indexer: %w", err)
	}
	return nil
}

func demoConfig(dsn, weaviateURL, weaviateGRPC string, obsPort int) string {
	return fmt.Sprintf(`# Written by scripts/demo for one run.
postgres:
  dsn: %q
  slot: cdc_indexer_demo
  publication: cdc_indexer_demo
  state_schema: cdc_indexer

weaviate:
  url: %q
  grpc: %q

embedding:
  provider: hash
  dimensions: 384

chunking:
  max_tokens: 512
  overlap: 0

tables:
  - table: public.articles
    collection: %s
    template: "{{.title}}\n\n{{.body}}"
    metadata: [author, category]

observability:
  listen: "127.0.0.1:%d"

log:
  level: info
  format: console
`, dsn, weaviateURL, weaviateGRPC, collection, obsPort)
}

func execSQL(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", dsn, err)
	}
	defer conn.Close(ctx)
	// The simple protocol runs several ;-separated statements in one go.
	if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("run SQL: %w", err)
	}
	return nil
}

func execSQLFile(ctx context.Context, dsn, path string) error {
	sql, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := execSQL(ctx, dsn, string(sql)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// waitFor polls check until it reports done, the connector dies, or
// arrivalTimeout passes; the last progress note goes into the error.
func waitFor(ctx context.Context, conn *connector, check func() (done bool, progress string, err error)) error {
	deadline := time.Now().Add(arrivalTimeout)
	var last string
	for {
		done, progress, err := check()
		switch {
		case done:
			return nil
		case err != nil:
			last = err.Error()
		default:
			last = progress
		}
		if conn.exited() {
			return fmt.Errorf("cdc-indexer exited early (last state: %s)", last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing arrived within %s (last state: %s)", arrivalTimeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func indent(s string) string {
	return "      | " + strings.ReplaceAll(s, "\n", "\n      | ")
}

// connector is the cdc-indexer child process.
type connector struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

func startConnector(binary, configPath, logPath string) (*connector, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(binary, "run", "--config", configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	c := &connector{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *connector) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitReady waits for /readyz to answer 200. A connector without the
// endpoint yet (404, or nothing listening for a while) gets a fixed grace
// period instead, so the demo still runs.
func (c *connector) waitReady(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	start := time.Now()
	deadline := start.Add(arrivalTimeout)
	fallback := func(why string) error {
		fmt.Printf("    %s; giving the connector 3 s to start streaming\n", why)
		time.Sleep(3 * time.Second)
		if c.exited() {
			return errors.New("cdc-indexer exited during start-up")
		}
		return nil
	}
	for {
		if c.exited() {
			return errors.New("cdc-indexer exited during start-up")
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				fmt.Printf("    ready after %s\n", time.Since(start).Round(time.Millisecond))
				return nil
			case http.StatusNotFound:
				return fallback("/readyz not served")
			}
		} else if time.Since(start) > 15*time.Second {
			return fallback("nothing listens on " + url)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %s", url, arrivalTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and requires a clean exit within 30 s, as the
// contract promises.
func (c *connector) stop() error {
	if c.exited() {
		return fmt.Errorf("cdc-indexer had already exited: %v", c.err)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal cdc-indexer: %w", err)
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		return errors.New("cdc-indexer did not exit within 30 s of SIGTERM")
	}
	if c.err != nil {
		return fmt.Errorf("cdc-indexer exited with %v after SIGTERM, want status 0", c.err)
	}
	return nil
}

func (c *connector) kill() {
	if !c.exited() {
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// explain adds the connector's log tail to an error, since that is where
// the reason for a missing change usually is.
func (c *connector) explain(err error) error {
	data, readErr := os.ReadFile(c.logPath)
	if readErr != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return fmt.Errorf("%w\n--- last lines of the cdc-indexer log (%s) ---\n%s", err, c.logPath, strings.Join(lines, "\n"))
}
