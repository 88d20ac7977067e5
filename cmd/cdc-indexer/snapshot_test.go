package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
	"github.com/cdc-indexer/cdc-indexer/internal/snapshot"
)

func TestSnapshotTableFlag(t *testing.T) {
	cfg, err := config.Load(configFile("valid"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := selectTables(cfg, nil)
	if err != nil || len(all) != 2 {
		t.Fatalf("no --table: %v, %v", all, err)
	}
	for _, names := range [][]string{{"articles"}, {"public.articles"}, {`"public"."articles"`}, {"PUBLIC.ARTICLES"}} {
		got, err := selectTables(cfg, names)
		if err != nil || len(got) != 1 || got[0].Collection != "Article" {
			t.Errorf("--table %v: %v, %v", names, got, err)
		}
	}
	got, err := selectTables(cfg, []string{`"Odd Schema"."Mixed Case"`, "public.articles"})
	if err != nil || len(got) != 2 {
		t.Errorf("two --table flags: %v, %v", got, err)
	}

	code, _, stderr := cli(t, "snapshot", "--config", configFile("valid"), "--table", "public.articles", "--table", "public.missing")
	assertFailure(t, code, stderr, "--table public.missing: not a configured table", `public.articles, "Odd Schema"."Mixed Case"`)
	code, _, stderr = cli(t, "snapshot", "--config", configFile("valid"), "--table", `"unterminated`)
	assertFailure(t, code, stderr, "--table:", "unterminated")
}

// --json prints the report the snapshot filled, and nothing else.
func TestSnapshotJSON(t *testing.T) {
	got := fakeSnapshot(t, func(_ context.Context, opts indexer.SnapshotOptions) error {
		if _, err := opts.Out.Write([]byte("text report\n")); err != nil {
			return err
		}
		opts.Report.Rows = 7
		opts.Report.Tables = append(opts.Report.Tables, indexer.SnapshotTable{Table: "public.articles", Collection: "Article", Rows: 7})
		return nil
	})
	code, stdout, stderr := cli(t, "snapshot", "--config", configFile("valid"), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r indexer.SnapshotReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || r.Rows != 7 || len(r.Tables) != 1 || r.Tables[0].Collection != "Article" {
		t.Fatalf("stdout %q is not the report (%v)", stdout, err)
	}
	if got.Report == nil {
		t.Fatal("no report asked for")
	}
}

// fakeSnapshot replaces the indexer for one test and records what it got.
func fakeSnapshot(t *testing.T, fn func(ctx context.Context, opts indexer.SnapshotOptions) error) *indexer.SnapshotOptions {
	t.Helper()
	var got indexer.SnapshotOptions
	real := snapshotIndexer
	snapshotIndexer = func(ctx context.Context, _ *config.Config, opts indexer.SnapshotOptions, _ zerolog.Logger) error {
		got = opts
		return fn(ctx, opts)
	}
	t.Cleanup(func() { snapshotIndexer = real })
	return &got
}

func TestSnapshotPassesFlags(t *testing.T) {
	got := fakeSnapshot(t, func(_ context.Context, opts indexer.SnapshotOptions) error {
		_, err := opts.Out.Write([]byte("report\n"))
		return err
	})
	code, stdout, stderr := cli(t, "snapshot", "--config", configFile("valid"), "--table", "articles",
		"--dry-run", "--readers", "2", "--chunk-rows", "500")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !got.DryRun || got.Readers != 2 || got.ChunkRows != 500 || len(got.Tables) != 1 || got.Tables[0].Collection != "Article" {
		t.Errorf("options = %+v", *got)
	}
	if stdout != "report\n" {
		t.Errorf("stdout = %q, want the report", stdout)
	}
	if got.Bars != nil {
		t.Error("progress bars drawn on a buffer, not a terminal")
	}
	if strings.Contains(stderr, "s3cret") {
		t.Errorf("log shows the DSN password: %s", stderr)
	}
}

func TestSnapshotDefaults(t *testing.T) {
	got := fakeSnapshot(t, func(context.Context, indexer.SnapshotOptions) error { return nil })
	if code, _, stderr := cli(t, "snapshot", "--config", configFile("valid")); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got.DryRun || got.Readers != snapshot.DefaultReaders || got.ChunkRows != snapshot.DefaultChunkRows || len(got.Tables) != 2 {
		t.Errorf("options = %+v", *got)
	}
}

func TestSnapshotBadFlags(t *testing.T) {
	fakeSnapshot(t, func(context.Context, indexer.SnapshotOptions) error {
		t.Error("snapshot started with bad flags")
		return nil
	})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--readers", "0"}, "--readers: want 1 to 16, got 0"},
		{[]string{"--readers", "17"}, "--readers: want 1 to 16"},
		{[]string{"--chunk-rows", "0"}, "--chunk-rows: want 1 to 100000"},
		{[]string{"--readers", "x"}, "invalid argument"},
	} {
		code, _, stderr := cli(t, append([]string{"snapshot", "--config", configFile("valid")}, c.args...)...)
		assertFailure(t, code, stderr, c.want)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", c.args, code)
		}
	}
}

func TestSnapshotFailure(t *testing.T) {
	fakeSnapshot(t, func(context.Context, indexer.SnapshotOptions) error {
		return errors.New("snapshot of public.articles: boom")
	})
	code, _, stderr := cli(t, "snapshot", "--config", configFile("valid"))
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	// The log goes to stderr too; the error is its last line.
	if !strings.HasSuffix(stderr, "\ncdc-indexer: snapshot: snapshot of public.articles: boom\n") {
		t.Errorf("stderr does not end with the error: %q", stderr)
	}
}

// A signal stops the snapshot; it is not complete, so the exit is not 0,
// and the message says how to continue.
func TestSnapshotInterrupted(t *testing.T) {
	started := make(chan struct{})
	fakeSnapshot(t, func(ctx context.Context, _ indexer.SnapshotOptions) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	done := make(chan struct{})
	var code int
	var stderr string
	go func() {
		defer close(done)
		code, _, stderr = cli(t, "snapshot", "--config", configFile("valid"))
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("snapshot not started")
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("snapshot did not return after SIGTERM")
	}
	if code != 1 || !strings.Contains(stderr, "interrupted") || !strings.Contains(stderr, "run it again to continue where it stopped") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
