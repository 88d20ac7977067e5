// Package sink writes rendered documents to Weaviate: one object per chunk,
// under a deterministic ID, and removes the objects of deleted rows and of
// chunks a document no longer has. Batch writes go over gRPC; schema,
// deletes and reads use the REST API.
package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weaviate/weaviate-go-client/v4/weaviate"
	wgrpc "github.com/weaviate/weaviate-go-client/v4/weaviate/grpc"
)

// Config says where Weaviate is.
type Config struct {
	// URL is the REST endpoint, e.g. http://127.0.0.1:8080.
	URL string
	// GRPC is the gRPC endpoint as host:port, e.g. 127.0.0.1:50051. Empty
	// means batch writes go over REST (slower).
	GRPC string
	// APIKey is sent as a bearer token when set.
	APIKey string
	// Timeout bounds each request; 0 means 60s.
	Timeout time.Duration
	// BatchSize is the most objects one batch request carries; 0 means
	// DefaultBatchSize.
	BatchSize int
}

const (
	// DefaultBatchSize is the default number of objects per batch request.
	DefaultBatchSize = 500
	// maxBatchBytes bounds the estimated payload of one batch request.
	maxBatchBytes  = 16 << 20
	defaultTimeout = 60 * time.Second
)

// Weaviate is the sink. It is safe for concurrent use.
type Weaviate struct {
	client    *weaviate.Client
	http      *http.Client
	baseURL   string // scheme://host, no trailing slash
	headers   map[string]string
	grpc      bool
	batchSize int
	parallel  int // batch requests in flight within one Write (1: on a small
	// machine Weaviate is CPU-bound and concurrent batches only contend)
	// probeLimit is how many matching objects Delete reads per query;
	// 0 means defaultProbeLimit.
	probeLimit int
	// queryMax is the largest query limit known to work on this server
	// (its QUERY_MAXIMUM_RESULTS may be below our defaults); 0: not learnt.
	queryMax atomic.Int64

	// retry policy; tests shorten it.
	attempts int
	backoff  time.Duration

	mu    sync.RWMutex
	kinds map[string]map[string]kindInfo // collection -> property -> metadata kind
}

// New builds a client for cfg. It does not wait for Weaviate: use Ready.
func New(ctx context.Context, cfg Config) (*Weaviate, error) {
	_ = ctx
	u, err := url.Parse(strings.TrimSpace(cfg.URL))
	if err != nil {
		return nil, fmt.Errorf("sink: weaviate url %q: %w", cfg.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("sink: weaviate url %q: scheme must be http or https", cfg.URL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("sink: weaviate url %q: missing host", cfg.URL)
	}
	if p := strings.TrimRight(u.Path, "/"); p != "" && p != "/v1" {
		return nil, fmt.Errorf("sink: weaviate url %q: unexpected path %q", cfg.URL, u.Path)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	batchSize := cfg.BatchSize
	if batchSize <= 0 {
		batchSize = DefaultBatchSize
	}

	headers := map[string]string{}
	if cfg.APIKey != "" {
		headers["Authorization"] = "Bearer " + cfg.APIKey
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 16
	httpClient := &http.Client{Timeout: timeout, Transport: transport}

	wcfg := weaviate.Config{
		Host:             u.Host,
		Scheme:           u.Scheme,
		ConnectionClient: httpClient,
		Headers:          headers,
		Timeout:          timeout,
	}
	grpcHost := strings.TrimSpace(cfg.GRPC)
	if grpcHost != "" {
		secured := false
		for _, p := range []string{"https://", "grpcs://"} {
			if strings.HasPrefix(grpcHost, p) {
				grpcHost, secured = strings.TrimPrefix(grpcHost, p), true
			}
		}
		for _, p := range []string{"http://", "grpc://"} {
			grpcHost = strings.TrimPrefix(grpcHost, p)
		}
		if _, _, err := net.SplitHostPort(grpcHost); err != nil {
			return nil, fmt.Errorf("sink: weaviate grpc address %q: want host:port: %w", cfg.GRPC, err)
		}
		if !secured && u.Scheme == "https" && !isLoopback(grpcHost) {
			secured = true
		}
		wcfg.GrpcConfig = &wgrpc.Config{Host: grpcHost, Secured: secured}
	}
	client, err := weaviate.NewClient(wcfg)
	if err != nil {
		return nil, fmt.Errorf("sink: weaviate client for %s: %w", cfg.URL, err)
	}
	return &Weaviate{
		client:    client,
		http:      httpClient,
		baseURL:   u.Scheme + "://" + u.Host,
		headers:   headers,
		grpc:      grpcHost != "",
		batchSize: batchSize,
		parallel:  1,
		attempts:  5,
		backoff:   200 * time.Millisecond,
		kinds:     map[string]map[string]kindInfo{},
	}, nil
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Client is the underlying weaviate-go-client, for callers that need an API
// the sink does not wrap.
func (w *Weaviate) Client() *weaviate.Client { return w.client }

// URL is the REST endpoint the sink talks to.
func (w *Weaviate) URL() string { return w.baseURL }

// Close releases idle connections.
func (w *Weaviate) Close() error {
	w.http.CloseIdleConnections()
	return nil
}

// Ready checks that Weaviate answers /v1/.well-known/ready with 200 and, when
// gRPC is configured, that its gRPC endpoint accepts a (empty) batch.
func (w *Weaviate) Ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.baseURL+"/v1/.well-known/ready", nil)
	if err != nil {
		return fmt.Errorf("sink: weaviate at %s: %w", w.baseURL, err)
	}
	w.setHeaders(req)
	resp, err := w.http.Do(req)
	if err != nil {
		return fmt.Errorf("sink: weaviate at %s is unreachable: %w", w.baseURL, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sink: weaviate at %s is not ready: %s answered %s", w.baseURL, "/v1/.well-known/ready", resp.Status)
	}
	if w.grpc {
		if _, err := w.client.Batch().ObjectsBatcher().Do(ctx); err != nil {
			return fmt.Errorf("sink: weaviate gRPC endpoint (REST %s) is unreachable: %w", w.baseURL, err)
		}
	}
	return nil
}

func (w *Weaviate) setHeaders(req *http.Request) {
	for k, v := range w.headers {
		req.Header.Set(k, v)
	}
}

// capLimit lowers limit to what the server is known to accept.
func (w *Weaviate) capLimit(limit int) int {
	if m := int(w.queryMax.Load()); m > 0 && limit > m {
		return m
	}
	return limit
}

// lowerLimit records that limit was too large and returns a smaller one.
func (w *Weaviate) lowerLimit(limit int) int {
	next := max(1, limit/4)
	for {
		cur := w.queryMax.Load()
		if cur != 0 && cur <= int64(next) {
			return next
		}
		if w.queryMax.CompareAndSwap(cur, int64(next)) {
			return next
		}
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoffFor is the wait before retry number n (1-based).
func (w *Weaviate) backoffFor(n int) time.Duration {
	d := w.backoff << (n - 1)
	if d > 5*time.Second || d <= 0 {
		d = 5 * time.Second
	}
	return d
}

var errNoCollection = errors.New("collection does not exist")
