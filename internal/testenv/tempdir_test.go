package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// A server directory whose owner file is still being written (empty) belongs
// to a server another goroutine is starting; the sweep of a concurrent start
// must leave it, or that server fails to find its own directory.
func TestSweepKeepsDirectoryBeingCreated(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	young := filepath.Join(os.TempDir(), dirPrefix+"pg-young")
	dead := filepath.Join(os.TempDir(), dirPrefix+"pg-dead")
	for _, d := range []string{young, dead} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(young, ownerFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// No process has pid 2^22+1 (above Linux's pid_max default).
	if err := os.WriteFile(filepath.Join(dead, ownerFile), []byte("4194305"), 0o644); err != nil {
		t.Fatal(err)
	}
	sweepStaleDirs()
	if _, err := os.Stat(young); err != nil {
		t.Errorf("directory being created was swept: %v", err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("directory of a dead owner was kept: %v", err)
	}
}
