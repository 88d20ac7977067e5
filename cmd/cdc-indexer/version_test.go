package main

import (
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	code, stdout, stderr := cli(t, "version")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"cdc-indexer dev\n", "commit: ", "go: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(stdout, want) {
			t.Errorf("version output %q lacks %q", stdout, want)
		}
	}
}

// The values -ldflags "-X main.version=... -X main.commit=..." set are shown.
func TestVersionFromLinker(t *testing.T) {
	oldVersion, oldCommit := version, commit
	t.Cleanup(func() { version, commit = oldVersion, oldCommit })
	version, commit = "v1.2.3", "0123abcd"
	_, stdout, _ := cli(t, "version")
	if stdout != "cdc-indexer v1.2.3\ncommit: 0123abcd\ngo: "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n" {
		t.Errorf("version output = %q", stdout)
	}
}

func TestVersionNeedsNoConfig(t *testing.T) {
	t.Setenv(configEnv, "/nonexistent.yaml")
	if code, _, stderr := cli(t, "version"); code != 0 {
		t.Errorf("exit %d: %s", code, stderr)
	}
}
