package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// WeaviateModule is the Weaviate release the tests run against.
const WeaviateModule = "github.com/weaviate/weaviate/cmd/weaviate-server@v1.35.2"

// weaviateBinary returns the weaviate-server executable: $CDC_TEST_WEAVIATE_BIN
// if set, else $(go env GOPATH)/bin/weaviate-server, which is built with
// go install when missing. The first build takes several minutes; its
// output goes to stderr so CI logs show progress.
func weaviateBinary(ctx context.Context) (string, error) {
	if bin := os.Getenv("CDC_TEST_WEAVIATE_BIN"); bin != "" {
		if !isFile(bin) {
			return "", fmt.Errorf("testenv: CDC_TEST_WEAVIATE_BIN=%s does not exist", bin)
		}
		return bin, nil
	}
	goBin, err := goTool()
	if err != nil {
		return "", err
	}
	gopath, err := goEnv(ctx, goBin, "GOPATH")
	if err != nil {
		return "", err
	}
	// GOPATH may be a list; go install writes to the first entry.
	gopath = filepath.SplitList(gopath)[0]
	binDir := filepath.Join(gopath, "bin")
	if gobin, _ := goEnv(ctx, goBin, "GOBIN"); gobin != "" {
		binDir = gobin
	}
	bin := filepath.Join(binDir, "weaviate-server")
	if isFile(bin) {
		return bin, nil
	}
	err = withFileLock("weaviate-build", func() error {
		if isFile(bin) {
			return nil // another test binary built it while we waited
		}
		fmt.Fprintf(os.Stderr, "testenv: %s not found; building it with `go install %s` (takes minutes the first time)\n", bin, WeaviateModule)
		cmd := exec.CommandContext(ctx, goBin, "install", "-v", WeaviateModule)
		cmd.Stdout = os.Stderr
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("testenv: go install %s failed: %w", WeaviateModule, err)
		}
		if !isFile(bin) {
			return fmt.Errorf("testenv: go install %s succeeded but %s is missing", WeaviateModule, bin)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return bin, nil
}

// goTool finds the go command: on PATH, or at the standard install location
// (test binaries may run with a PATH that lacks it).
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if isFile("/usr/local/go/bin/go") {
		return "/usr/local/go/bin/go", nil
	}
	return "", errors.New("testenv: the go command is needed to locate or build weaviate-server but is neither on PATH nor at /usr/local/go/bin/go")
}

func goEnv(ctx context.Context, goBin, key string) (string, error) {
	out, err := exec.CommandContext(ctx, goBin, "env", key).Output()
	if err != nil {
		return "", fmt.Errorf("testenv: go env %s: %w", key, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
