package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// WeaviateOptions configure StartWeaviate. The zero value is what the
// integration tests use.
type WeaviateOptions struct {
	// Binary is the weaviate-server executable. Empty means
	// $(go env GOPATH)/bin/weaviate-server, built with go install if absent.
	Binary string
	// AsyncIndexing turns on Weaviate's asynchronous vector indexing
	// (ASYNC_INDEXING=true), as large production deployments run it.
	AsyncIndexing bool
	// Env holds extra KEY=VALUE variables; they override the defaults.
	Env []string
	// StartTimeout bounds how long start-up may take; default 120 s.
	StartTimeout time.Duration
}

// WeaviateServer is a throwaway single-node Weaviate run by this process.
// Stop and Start keep the data directory and ports, which lets
// fault-injection tests take Weaviate away and bring it back; Close stops
// the server and deletes everything.
type WeaviateServer struct {
	binary  string
	dir     string
	ports   weaviatePorts
	env     []string
	timeout time.Duration

	mu   sync.Mutex
	proc *process
}

type weaviatePorts struct {
	http, grpc, gossip, data, raft, raftRPC int
}

// StartWeaviate creates a data directory, picks free ports and starts Weaviate.
func StartWeaviate(ctx context.Context, opts WeaviateOptions) (*WeaviateServer, error) {
	binary, err := binaryOf(ctx, opts)
	if err != nil {
		return nil, err
	}
	return retryPortClash(func() (*WeaviateServer, error) { return startWeaviateOnce(ctx, binary, opts) })
}

// binaryOf is opts.Binary, or weaviateBinary when it is empty.
func binaryOf(ctx context.Context, opts WeaviateOptions) (string, error) {
	if opts.Binary != "" {
		return opts.Binary, nil
	}
	return weaviateBinary(ctx)
}

// retryPortClash runs start up to three times while it fails on a port
// that was taken: free ports are free when chosen, not necessarily when
// Weaviate binds them (other servers start concurrently), and a start that
// lost a port is tried again on others.
func retryPortClash[T any](start func() (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := start()
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return v, err
		}
	}
}

func startWeaviateOnce(ctx context.Context, binary string, opts WeaviateOptions) (*WeaviateServer, error) {
	p, err := FreePorts(6)
	if err != nil {
		return nil, err
	}
	dir, err := makeServerDir("weaviate")
	if err != nil {
		return nil, err
	}
	s := &WeaviateServer{
		binary:  binary,
		dir:     dir,
		ports:   weaviatePorts{http: p[0], grpc: p[1], gossip: p[2], data: p[3], raft: p[4], raftRPC: p[5]},
		timeout: opts.StartTimeout,
	}
	if s.timeout == 0 {
		s.timeout = 120 * time.Second
	}
	s.env = s.environment(opts)
	if err := s.Start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// environment builds the server's environment: a single node on loopback,
// anonymous access, no vectorizer module (the connector brings vectors) and
// no telemetry or profiling listeners.
func (s *WeaviateServer) environment(opts WeaviateOptions) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.dir,
		"DISABLE_TELEMETRY=true",
		"GO_PROFILING_DISABLE=true",
		"LOG_LEVEL=warn",
		"AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED=true",
		"DEFAULT_VECTORIZER_MODULE=none",
		"QUERY_MAXIMUM_RESULTS=10000",
		"PERSISTENCE_DATA_PATH=" + filepath.Join(s.dir, "data"),
		"CLUSTER_HOSTNAME=node1",
		"CLUSTER_BIND_ADDR=127.0.0.1",
		"CLUSTER_ADVERTISE_ADDR=127.0.0.1",
		"CLUSTER_GOSSIP_BIND_PORT=" + strconv.Itoa(s.ports.gossip),
		"CLUSTER_DATA_BIND_PORT=" + strconv.Itoa(s.ports.data),
		"GRPC_PORT=" + strconv.Itoa(s.ports.grpc),
		"RAFT_BOOTSTRAP_EXPECT=1",
		"RAFT_PORT=" + strconv.Itoa(s.ports.raft),
		"RAFT_INTERNAL_RPC_PORT=" + strconv.Itoa(s.ports.raftRPC),
		"ASYNC_INDEXING=" + strconv.FormatBool(opts.AsyncIndexing),
		// GraphQL is deprecated and off on new Weaviate Cloud clusters:
		// no code path may come to depend on it.
		"DISABLE_GRAPHQL=true",
	}
	// Later entries win in exec.Cmd's environment, so extras override.
	return append(env, opts.Env...)
}

// URL is the HTTP base URL, e.g. http://127.0.0.1:PORT.
func (s *WeaviateServer) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.ports.http) }

// GRPC is the gRPC address, e.g. 127.0.0.1:PORT.
func (s *WeaviateServer) GRPC() string { return fmt.Sprintf("127.0.0.1:%d", s.ports.grpc) }

// Dir is the server's directory: data/ and weaviate.log.
func (s *WeaviateServer) Dir() string { return s.dir }

// LogPath is the file the server's stdout and stderr go to.
func (s *WeaviateServer) LogPath() string { return filepath.Join(s.dir, "weaviate.log") }

// Start starts the server on its data directory and ports and waits until
// it reports ready. It does nothing if the server is running.
func (s *WeaviateServer) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.exited() {
		return nil
	}
	logFile, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testenv: open weaviate log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(s.binary, "--host", "127.0.0.1", "--port", strconv.Itoa(s.ports.http), "--scheme", "http")
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	proc, err := startProcess(cmd, nil, syscall.SIGKILL)
	if err != nil {
		return fmt.Errorf("testenv: start %s: %w", s.binary, err)
	}
	s.proc = proc
	if err := s.waitReady(ctx); err != nil {
		proc.stop(stopStep{syscall.SIGTERM, 5 * time.Second})
		return fmt.Errorf("testenv: weaviate on %s did not become ready: %w\n%s", s.URL(), err, logTail(s.LogPath(), 40))
	}
	return nil
}

func (s *WeaviateServer) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	readyURL := s.URL() + "/v1/.well-known/ready"
	var lastErr error
	for {
		if s.proc.exited() {
			return fmt.Errorf("weaviate exited: %v", s.proc.err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, readyURL, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", readyURL, resp.Status)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), lastErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop shuts the server down: SIGTERM, a second SIGTERM after a few seconds
// (Weaviate treats it as "hurry up"), and SIGKILL after about 20 s. The
// data directory is kept.
func (s *WeaviateServer) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	err := s.proc.stop(
		stopStep{syscall.SIGTERM, 5 * time.Second},
		stopStep{syscall.SIGTERM, 15 * time.Second},
	)
	s.proc = nil
	if err != nil {
		return fmt.Errorf("testenv: stop weaviate on %s: %w", s.URL(), err)
	}
	return nil
}

// Restart stops the server and starts it again on the same data and ports.
func (s *WeaviateServer) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start(ctx)
}

// Close stops the server and deletes its directory.
// Kill ends the server with SIGKILL, as a crash or the loss of its machine
// would; Start brings it back on its data and ports.
func (s *WeaviateServer) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	err := s.proc.stop(stopStep{syscall.SIGKILL, 15 * time.Second})
	s.proc = nil
	if err != nil {
		return fmt.Errorf("testenv: kill weaviate on %s: %w", s.URL(), err)
	}
	return nil
}

func (s *WeaviateServer) Close() error {
	err := s.Stop()
	if rmErr := os.RemoveAll(s.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("testenv: remove %s: %w", s.dir, rmErr))
	}
	return err
}
