// Package testenv provides the real PostgreSQL and Weaviate servers that
// integration tests, the demo and the benchmarks run against. There are no
// fakes: a test that needs a server gets one or fails loudly.
//
// Tests use the shared servers through Postgres, PostgresAdmin, Weaviate
// and CollectionName, with a TestMain that calls Main. The servers come from
// the environment when set:
//
//	CDC_TEST_PG_DSN         admin DSN of a cluster with wal_level=logical
//	CDC_TEST_WEAVIATE_URL   Weaviate HTTP base URL
//	CDC_TEST_WEAVIATE_GRPC  Weaviate gRPC address
//
// (scripts/testenv sets them, so `make test` shares one pair of servers
// across all packages). Otherwise each test process starts its own servers
// on first use and Main stops them when the tests are done.
//
// Programs and fault-injection tests that stop and restart servers start
// private ones with StartPostgres and StartWeaviate.
package testenv

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables naming existing servers.
const (
	EnvPostgresDSN  = "CDC_TEST_PG_DSN"
	EnvWeaviateURL  = "CDC_TEST_WEAVIATE_URL"
	EnvWeaviateGRPC = "CDC_TEST_WEAVIATE_GRPC"
)

// mainActive is set by Main. Without it, servers this process starts would
// never be stopped and their directories would pile up, so the helpers
// refuse to start anything.
var mainActive atomic.Bool

// shared holds a server every test of this process uses, resolved once.
type shared[T any] struct {
	once     sync.Once
	value    T
	err      error
	resolved atomic.Bool // set once value is usable
	stop     func() error
}

var (
	sharedPG       shared[string] // admin DSN
	sharedWeaviate shared[weaviateAddrs]
)

type weaviateAddrs struct{ url, grpc string }

// Main runs the tests and afterwards stops any server this process started.
// Call it from TestMain: os.Exit(testenv.Main(m)).
func Main(m *testing.M) int {
	mainActive.Store(true)
	code := m.Run()
	for _, s := range []interface{ shutdown() error }{&sharedPG, &sharedWeaviate} {
		if err := s.shutdown(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		}
	}
	return code
}

func (s *shared[T]) get(t testing.TB, what string, resolve func() (T, func() error, error)) T {
	t.Helper()
	if !mainActive.Load() {
		t.Fatalf("testenv: %s needs the package's TestMain to call testenv.Main:\n\n\tfunc TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }\n\nso that servers started for the tests are stopped afterwards", what)
	}
	s.once.Do(func() {
		s.value, s.stop, s.err = resolve()
		if s.err == nil {
			s.resolved.Store(true)
		}
	})
	if s.err != nil {
		t.Fatalf("TEST ENVIRONMENT UNAVAILABLE: %v", s.err)
	}
	return s.value
}

func (s *shared[T]) shutdown() error {
	if s.stop == nil {
		return nil
	}
	return s.stop()
}

// PostgresAdmin returns the admin DSN (database postgres) of the shared
// cluster, starting the cluster if needed.
func PostgresAdmin(t testing.TB) string {
	t.Helper()
	return sharedPG.get(t, "testenv.PostgresAdmin", resolvePostgres)
}

func resolvePostgres() (string, func() error, error) {
	if dsn := os.Getenv(EnvPostgresDSN); dsn != "" {
		if err := checkPostgres(dsn); err != nil {
			return "", nil, fmt.Errorf("%s points at %s: %w", EnvPostgresDSN, redactDSN(dsn), err)
		}
		return dsn, nil, nil
	}
	// Generous: it may include installing PostgreSQL with apt-get.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	srv, err := StartPostgres(ctx, PostgresOptions{})
	if err != nil {
		return "", nil, fmt.Errorf("cannot start PostgreSQL (set %s to use an existing server): %w", EnvPostgresDSN, err)
	}
	fmt.Fprintf(os.Stderr, "testenv: started PostgreSQL on port %d in %s\n", srv.Port(), time.Since(start).Round(time.Millisecond))
	return srv.AdminDSN(), srv.Close, nil
}

// checkPostgres verifies that an externally provided cluster is reachable
// and can do logical replication, so a misconfigured CI fails with one
// clear message instead of in every test.
func checkPostgres(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("cannot connect: %w", err)
	}
	defer conn.Close(context.Background())
	var walLevel string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return fmt.Errorf("SHOW wal_level: %w", err)
	}
	if walLevel != "logical" {
		return fmt.Errorf("wal_level is %q, the tests need logical", walLevel)
	}
	return nil
}

// Weaviate returns the HTTP base URL (http://127.0.0.1:PORT) and the gRPC
// address (127.0.0.1:PORT) of the shared Weaviate, starting it if needed.
func Weaviate(t testing.TB) (url, grpc string) {
	t.Helper()
	a := sharedWeaviate.get(t, "testenv.Weaviate", resolveWeaviate)
	return a.url, a.grpc
}

func resolveWeaviate() (weaviateAddrs, func() error, error) {
	u, g := os.Getenv(EnvWeaviateURL), os.Getenv(EnvWeaviateGRPC)
	if u != "" || g != "" {
		if u == "" || g == "" {
			return weaviateAddrs{}, nil, fmt.Errorf("set both %s and %s, or neither", EnvWeaviateURL, EnvWeaviateGRPC)
		}
		if err := checkWeaviate(u); err != nil {
			return weaviateAddrs{}, nil, fmt.Errorf("%s=%s: %w", EnvWeaviateURL, u, err)
		}
		return weaviateAddrs{u, g}, nil, nil
	}
	// Generous: it may include building weaviate-server from source.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	srv, err := StartWeaviate(ctx, WeaviateOptions{})
	if err != nil {
		return weaviateAddrs{}, nil, fmt.Errorf("cannot start Weaviate (set %s and %s to use an existing server): %w", EnvWeaviateURL, EnvWeaviateGRPC, err)
	}
	fmt.Fprintf(os.Stderr, "testenv: started Weaviate at %s (gRPC %s) in %s\n", srv.URL(), srv.GRPC(), time.Since(start).Round(time.Millisecond))
	return weaviateAddrs{srv.URL(), srv.GRPC()}, srv.Close, nil
}

func checkWeaviate(baseURL string) error {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(baseURL + "/v1/.well-known/ready")
	if err != nil {
		return fmt.Errorf("not reachable: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: GET /v1/.well-known/ready answered %s", resp.Status)
	}
	return nil
}

// redactDSN hides a password in a DSN before it goes into a message.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}
