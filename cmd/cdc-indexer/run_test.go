package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
)

func configFile(name string) string {
	return filepath.Join("testdata", "config", name+".yaml")
}

// brokenConfigs each fail before anything connects, naming the key.
var brokenConfigs = []struct {
	file  string
	parts []string
}{
	{"unknown_key", []string{"postgres.dns: unknown key", "did you mean postgres.dsn?"}},
	{"unknown_table_key", []string{"tables[0].colection: unknown key"}},
	{"missing_dsn", []string{"postgres.dsn: required"}},
	{"missing_tables", []string{"tables: required"}},
	{"malformed_dsn", []string{"postgres.dsn: malformed connection string"}},
	{"malformed_weaviate_url", []string{"weaviate.url: malformed URL"}},
	{"bad_template", []string{"tables[1].template: template: public.notes:1: function \"foo\" not defined"}},
	{"bad_template_syntax", []string{"tables[0].template: template: public.articles:1: unclosed action"}},
	{"bad_collection", []string{"tables[0].collection:", "not a valid Weaviate collection name"}},
	{"bad_provider", []string{"embedding.provider: unknown provider \"cohere\""}},
	{"overlap", []string{"chunking.overlap: must be less than chunking.max_tokens (100)"}},
	{"wrong_type", []string{"embedding.dimensions: want a whole number, got \"abc\""}},
	{"syntax_error", []string{"syntax_error.yaml"}},
}

func TestRunRejectsBrokenConfig(t *testing.T) {
	// Nothing may connect: the indexer must not even start.
	runIndexer = func(context.Context, *config.Config, zerolog.Logger) error {
		t.Error("indexer started with a broken config")
		return nil
	}
	t.Cleanup(func() { runIndexer = realRunIndexer })
	for _, c := range brokenConfigs {
		t.Run(c.file, func(t *testing.T) {
			path := configFile(c.file)
			code, stdout, stderr := cli(t, "run", "--config", path)
			assertFailure(t, code, stderr, c.parts...)
			if strings.Contains(stderr+stdout, "s3cret") {
				t.Errorf("output shows the DSN password: %s", stderr)
			}
			if c.file != "syntax_error" && !strings.Contains(stderr, "config "+path+": ") {
				t.Errorf("stderr does not name the file: %s", stderr)
			}
		})
	}
}

// Every command that reads the config rejects a broken one the same way.
func TestEveryCommandValidatesConfig(t *testing.T) {
	for _, cmd := range []string{"run", "snapshot", "check", "status", "verify", "reindex"} {
		code, _, stderr := cli(t, cmd, "--config", configFile("bad_template"))
		assertFailure(t, code, stderr, "tables[1].template")
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	t.Setenv(configEnv, configFile("overlap"))
	code, _, stderr := cli(t, "check")
	assertFailure(t, code, stderr, "chunking.overlap")

	// --config wins over the environment.
	code, _, stderr = cli(t, "check", "--config", configFile("bad_provider"))
	assertFailure(t, code, stderr, "embedding.provider")
}

func TestEnvironmentOverridesConfigKey(t *testing.T) {
	t.Setenv("CDC_INDEXER_EMBEDDING_DIMENSIONS", "-1")
	code, _, stderr := cli(t, "check", "--config", configFile("valid"))
	assertFailure(t, code, stderr, "embedding.dimensions: must be positive")
}

var realRunIndexer = runIndexer

// run exits 0 when a signal stops the indexer, whose context it cancels.
func TestRunExitsZeroOnSignal(t *testing.T) {
	started := make(chan struct{})
	runIndexer = func(ctx context.Context, cfg *config.Config, log zerolog.Logger) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}
	t.Cleanup(func() { runIndexer = realRunIndexer })

	done := make(chan struct{})
	var code int
	var stderr string
	go func() {
		defer close(done)
		code, _, stderr = cli(t, "run", "--config", configFile("valid"))
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("indexer not started")
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
	if code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr: %s", code, stderr)
	}
	if !strings.Contains(stderr, `"message":"stopped"`) {
		t.Errorf("no stop logged: %s", stderr)
	}
	// The startup log shows the config, without its secret.
	if !strings.Contains(stderr, "app:xxxxx@127.0.0.1") || strings.Contains(stderr, "s3cret") {
		t.Errorf("startup log should show the redacted DSN only: %s", stderr)
	}
}

func TestRunFatalError(t *testing.T) {
	runIndexer = func(context.Context, *config.Config, zerolog.Logger) error {
		return errors.New("postgres.dsn: cannot connect")
	}
	t.Cleanup(func() { runIndexer = realRunIndexer })
	code, _, stderr := cli(t, "run", "--config", configFile("valid"))
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr, "cdc-indexer: run: postgres.dsn: cannot connect\n") {
		t.Errorf("stderr = %s", stderr)
	}
}

// run --standby starts the indexer as a standby; plain run does not.
func TestRunStandbyFlag(t *testing.T) {
	var plain, standby int
	runIndexer = func(context.Context, *config.Config, zerolog.Logger) error { plain++; return nil }
	runStandby = func(context.Context, *config.Config, zerolog.Logger) error { standby++; return nil }
	t.Cleanup(func() { runIndexer, runStandby = realRunIndexer, realRunStandby })
	if code, _, stderr := cli(t, "run", "--standby", "--config", configFile("valid")); code != 0 {
		t.Fatalf("run --standby: exit %d: %s", code, stderr)
	}
	if code, _, stderr := cli(t, "run", "--config", configFile("valid")); code != 0 {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	if plain != 1 || standby != 1 {
		t.Errorf("run started %d plain and %d standby indexers; want one of each", plain, standby)
	}
}

var realRunStandby = runStandby
