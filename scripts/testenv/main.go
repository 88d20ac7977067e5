// Command testenv starts one PostgreSQL and one Weaviate, runs a command
// with their addresses in its environment, and stops them afterwards:
//
//	go run ./scripts/testenv -- go test ./...
//
// The command sees CDC_TEST_PG_DSN, CDC_TEST_WEAVIATE_URL and
// CDC_TEST_WEAVIATE_GRPC, which internal/testenv picks up, so all test
// packages share this pair of servers instead of each starting its own.
// The exit status is the command's.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	// go run passes a leading "--" through to the program.
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./scripts/testenv -- COMMAND [ARG...]")
		return 2
	}

	// Signals are caught from the beginning: one that arrives while the
	// servers start cancels the start-up (and the servers are still
	// stopped); later ones are passed to the command, which then ends and
	// lets the servers be stopped in order. A terminal's Ctrl-C reaches the
	// command directly as well; a repeated SIGINT is harmless to go test.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var child atomic.Pointer[os.Process]
	go func() {
		for sig := range signals {
			if p := child.Load(); p != nil {
				_ = p.Signal(sig)
			} else {
				cancel()
			}
		}
	}()

	pg, wv, err := startServers(ctx)
	defer stopServers(pg, wv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "testenv: %s=%s\n", testenv.EnvPostgresDSN, pg.AdminDSN())
	fmt.Fprintf(os.Stderr, "testenv: %s=%s\n", testenv.EnvWeaviateURL, wv.URL())
	fmt.Fprintf(os.Stderr, "testenv: %s=%s\n", testenv.EnvWeaviateGRPC, wv.GRPC())

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		testenv.EnvPostgresDSN+"="+pg.AdminDSN(),
		testenv.EnvWeaviateURL+"="+wv.URL(),
		testenv.EnvWeaviateGRPC+"="+wv.GRPC(),
	)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: start %s: %v\n", args[0], err)
		return 127
	}
	child.Store(cmd.Process)
	if ctx.Err() != nil { // a signal slipped in between Start and Store
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	err = cmd.Wait()
	return exitCode(err)
}

// startServers starts both servers in parallel; PostgreSQL takes a second,
// Weaviate several (minutes when its binary must be built first).
func startServers(ctx context.Context) (*testenv.PostgresServer, *testenv.WeaviateServer, error) {
	var (
		wg           sync.WaitGroup
		pg           *testenv.PostgresServer
		wv           *testenv.WeaviateServer
		pgErr, wvErr error
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		start := time.Now()
		if pg, pgErr = testenv.StartPostgres(ctx, testenv.PostgresOptions{}); pgErr == nil {
			fmt.Fprintf(os.Stderr, "testenv: PostgreSQL ready on port %d in %s\n", pg.Port(), time.Since(start).Round(time.Millisecond))
		}
	}()
	go func() {
		defer wg.Done()
		start := time.Now()
		if wv, wvErr = testenv.StartWeaviate(ctx, testenv.WeaviateOptions{}); wvErr == nil {
			fmt.Fprintf(os.Stderr, "testenv: Weaviate ready at %s in %s\n", wv.URL(), time.Since(start).Round(time.Millisecond))
		}
	}()
	wg.Wait()
	return pg, wv, errors.Join(pgErr, wvErr)
}

func stopServers(pg *testenv.PostgresServer, wv *testenv.WeaviateServer) {
	if pg != nil {
		if err := pg.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		}
	}
	if wv != nil {
		if err := wv.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		}
	}
}

// exitCode maps the command's end to a shell-style status: its own exit
// code, or 128+signal when a signal killed it.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exitErr.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
	return 1
}
