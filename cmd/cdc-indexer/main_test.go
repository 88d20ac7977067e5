package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// cli runs the command line in-process and returns its exit status and
// output.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = execute(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// assertFailure checks a non-zero exit with one line "cdc-indexer: ..." on
// stderr that contains every part.
func assertFailure(t *testing.T, code int, stderr string, parts ...string) {
	t.Helper()
	if code == 0 {
		t.Errorf("exit 0, want non-zero; stderr: %q", stderr)
	}
	if !strings.HasPrefix(stderr, "cdc-indexer: ") || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("stderr is not one line \"cdc-indexer: <reason>\": %q", stderr)
	}
	for _, p := range parts {
		if !strings.Contains(stderr, p) {
			t.Errorf("stderr %q does not contain %q", stderr, p)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args  []string
		parts []string
	}{
		{[]string{"run", "--no-such-flag"}, []string{"unknown flag: --no-such-flag"}},
		{[]string{"run", "extra"}, []string{"cdc-indexer run takes no arguments"}},
		{[]string{"run"}, []string{"no config file", "CDC_INDEXER_CONFIG"}},
	}
	t.Setenv(configEnv, "")
	for _, c := range cases {
		code, _, stderr := cli(t, c.args...)
		assertFailure(t, code, stderr, c.parts...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 for a usage error", c.args, code)
		}
	}
	code, _, stderr := cli(t, "frobnicate")
	assertFailure(t, code, stderr, `unknown command "frobnicate"`)
}

func TestHelp(t *testing.T) {
	code, stdout, _ := cli(t, "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, sub := range []string{"run", "snapshot", "check", "status", "version", "--config"} {
		if !strings.Contains(stdout, sub) {
			t.Errorf("help lacks %s:\n%s", sub, stdout)
		}
	}
}

func TestOneLine(t *testing.T) {
	got := oneLine("While parsing config: yaml: unmarshal errors:\n  line 1: cannot unmarshal\n")
	if got != "While parsing config: yaml: unmarshal errors: line 1: cannot unmarshal" {
		t.Errorf("oneLine = %q", got)
	}
}
