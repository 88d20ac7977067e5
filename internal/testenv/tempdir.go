package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dirPrefix names every directory testenv creates under os.TempDir(), so a
// later run can find the ones a crashed process left behind.
const dirPrefix = "cdc-testenv-"

// ownerFile records the pid of the process that owns a server directory.
const ownerFile = "owner.pid"

// makeServerDir creates a fresh temporary directory for one server and
// records this process as its owner.
func makeServerDir(kind string) (string, error) {
	sweepStaleDirs()
	dir, err := os.MkdirTemp("", dirPrefix+kind+"-")
	if err != nil {
		return "", fmt.Errorf("testenv: create %s directory: %w", kind, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("testenv: record owner of %s: %w", dir, err)
	}
	return dir, nil
}

// sweepStaleDirs removes server directories whose owning process is gone.
// A test binary killed by a timeout or SIGKILL has no chance to clean up;
// its servers die with it (parent-death signal) but their data would pile up.
func sweepStaleDirs() {
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), dirPrefix) {
			continue
		}
		dir := filepath.Join(os.TempDir(), e.Name())
		if ownerAlive(dir) {
			continue
		}
		os.RemoveAll(dir)
	}
}

// ownerAlive reports whether the directory's owner may still be using it.
// A directory without a readable owner pid is young (being created: another
// server of the same run may be between creating the file and writing it)
// or foreign; it is kept unless it is old.
func ownerAlive(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, ownerFile))
	pid := 0
	if err == nil {
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
	}
	if err != nil || pid <= 0 {
		info, statErr := os.Stat(dir)
		return statErr != nil || time.Since(info.ModTime()) < time.Hour
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
