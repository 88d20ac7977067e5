package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// withFileLock runs fn while holding an exclusive lock on a file in the temp
// directory. Test binaries of different packages run in parallel
// (go test -p), and two of them must not both run apt-get or build Weaviate.
func withFileLock(name string, fn func() error) error {
	path := filepath.Join(os.TempDir(), dirPrefix+name+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return fmt.Errorf("testenv: open lock %s: %w", path, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("testenv: lock %s: %w", path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}
