package main

import (
	"testing"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
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

func TestNotYetImplemented(t *testing.T) {
	for _, cmd := range []string{"snapshot", "check", "status"} {
		code, _, stderr := cli(t, cmd, "--config", configFile("valid"))
		assertFailure(t, code, stderr, cmd+": not implemented yet")
	}
}
