// Package sink writes rendered documents to Weaviate: one object per chunk,
// under a deterministic ID, and removes the objects of deleted rows and of
// chunks a document no longer has. Batch writes, searches and counts go
// over gRPC; schema, batch deletes and cursor listings use the REST API.
// Nothing uses GraphQL, which Weaviate deprecated and Weaviate Cloud
// switches off.
package sink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weaviate/weaviate-go-client/v5/weaviate"
	pb "github.com/weaviate/weaviate/grpc/generated/protocol/v1"

	"github.com/cdc-indexer/cdc-indexer/internal/backoff"
)

// Config says where Weaviate is.
type Config struct {
	// URL is the REST endpoint, e.g. http://127.0.0.1:8080.
	URL string
	// GRPC is the gRPC endpoint as host:port, e.g. 127.0.0.1:50051.
	// Required: searches and counts have no other API without GraphQL.
	GRPC string
	// GRPCTLS is "on", "off" or "auto" (empty): auto uses TLS when URL is
	// https and the gRPC host is not a loopback address.
	GRPCTLS string
	// CAFile is a PEM file of certificates to trust besides the system's,
	// for both REST and gRPC.
	CAFile string
	// ConsistencyLevel is ONE, QUORUM or ALL (empty: QUORUM) for every
	// write, delete and read.
	ConsistencyLevel string
	// APIKey is sent as a bearer token when set.
	APIKey string
	// Timeout bounds each request; 0 means 60s.
	Timeout time.Duration
	// BatchSize is the most objects one batch request carries; 0 means
	// DefaultBatchSize.
	BatchSize int
	// ReplicationFactor is the factor of the collections the sink creates
	// and the one it expects of existing collections; 0 checks nothing.
	ReplicationFactor int
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
	rpc       *rpc
	http      *http.Client
	baseURL   string // scheme://host, no trailing slash
	headers   map[string]string
	batchSize int
	// replicationFactor of created collections; 0: Weaviate's default
	replicationFactor int
	parallel          int // batch requests in flight within one Write (1: on a small
	// machine Weaviate is CPU-bound and concurrent batches only contend)
	// probeLimit is how many matching objects Delete reads per query;
	// 0 means defaultProbeLimit.
	probeLimit int
	// queryMax is the largest query limit known to work on this server
	// (its QUERY_MAXIMUM_RESULTS may be below our defaults); 0: not learnt.
	queryMax atomic.Int64

	// consistency is the level of every write, delete and read; the name
	// is its REST form.
	consistency     *pb.ConsistencyLevel
	consistencyName string

	// retry policy; tests shorten it.
	attempts int
	backoff  time.Duration

	mu    sync.RWMutex
	kinds map[string]map[string]kindInfo // collection -> property -> metadata kind
	// tenancy records whether each collection has tenants (tenant.go).
	tenancy map[string]bool
	// names maps a physical collection version to the name it is served
	// as, whose object IDs it holds (alias.go).
	names map[string]string
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

	consistency, err := consistencyLevel(cfg.ConsistencyLevel)
	if err != nil {
		return nil, err
	}
	consistencyName := strings.TrimPrefix(consistency.String(), "CONSISTENCY_LEVEL_")
	grpcHost, grpcTLS, err := grpcAddress(cfg, u)
	if err != nil {
		return nil, err
	}
	tlsConf, err := tlsConfig(cfg.CAFile)
	if err != nil {
		return nil, err
	}

	headers := map[string]string{}
	if cfg.APIKey != "" {
		headers["Authorization"] = "Bearer " + cfg.APIKey
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 16
	transport.TLSClientConfig = tlsConf
	httpClient := &http.Client{Timeout: timeout, Transport: transport}

	// The go client gets no gRPC config: its gRPC connection would not
	// verify certificates. Batches go over the sink's own connection.
	client, err := weaviate.NewClient(weaviate.Config{
		Host:             u.Host,
		Scheme:           u.Scheme,
		ConnectionClient: httpClient,
		Headers:          headers,
		Timeout:          timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("sink: weaviate client for %s: %w", cfg.URL, err)
	}
	var rpcTLS *tls.Config
	if grpcTLS {
		rpcTLS = tlsConf
	}
	conn, err := dialRPC(grpcHost, rpcTLS, headers, timeout)
	if err != nil {
		return nil, err
	}
	return &Weaviate{
		client:            client,
		rpc:               conn,
		http:              httpClient,
		baseURL:           u.Scheme + "://" + u.Host,
		headers:           headers,
		batchSize:         batchSize,
		replicationFactor: cfg.ReplicationFactor,
		parallel:          1,
		consistency:       consistency,
		consistencyName:   consistencyName,
		attempts:          5,
		backoff:           200 * time.Millisecond,
		kinds:             map[string]map[string]kindInfo{},
		tenancy:           map[string]bool{},
	}, nil
}

// grpcAddress is cfg.GRPC as host:port and whether to use TLS on it. A
// scheme prefix (grpcs://, https://, grpc://, http://) is accepted and
// decides TLS under "auto".
func grpcAddress(cfg Config, u *url.URL) (string, bool, error) {
	host := strings.TrimSpace(cfg.GRPC)
	if host == "" {
		return "", false, fmt.Errorf("sink: weaviate.grpc is required (host:port of Weaviate's gRPC endpoint)")
	}
	secured, schemed := false, false
	for _, p := range []string{"https://", "grpcs://"} {
		if strings.HasPrefix(host, p) {
			host, secured, schemed = strings.TrimPrefix(host, p), true, true
		}
	}
	for _, p := range []string{"http://", "grpc://"} {
		if strings.HasPrefix(host, p) {
			host, schemed = strings.TrimPrefix(host, p), true
		}
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		return "", false, fmt.Errorf("sink: weaviate grpc address %q: want host:port: %w", cfg.GRPC, err)
	}
	switch strings.ToLower(strings.TrimSpace(cfg.GRPCTLS)) {
	case "on", "true":
		return host, true, nil
	case "off", "false":
		return host, false, nil
	case "", "auto":
		if !schemed && u.Scheme == "https" && !isLoopback(host) {
			secured = true
		}
		return host, secured, nil
	default:
		return "", false, fmt.Errorf("sink: weaviate.grpc_tls %q: want auto, on or off", cfg.GRPCTLS)
	}
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

// Close releases idle connections and the gRPC connection.
func (w *Weaviate) Close() error {
	w.http.CloseIdleConnections()
	return w.rpc.Close()
}

// Ready checks that Weaviate's REST and gRPC endpoints both answer.
func (w *Weaviate) Ready(ctx context.Context) error {
	if err := w.ReadyREST(ctx); err != nil {
		return err
	}
	return w.ReadyGRPC(ctx)
}

// ReadyREST checks that Weaviate answers /v1/.well-known/ready with 200.
func (w *Weaviate) ReadyREST(ctx context.Context) error {
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
	return nil
}

// ReadyGRPC checks that Weaviate's gRPC endpoint accepts an (empty) batch,
// which also proves TLS and the API key work there.
func (w *Weaviate) ReadyGRPC(ctx context.Context) error {
	callCtx, cancel := w.rpc.call(ctx)
	defer cancel()
	if _, err := w.rpc.client.BatchObjects(callCtx, &pb.BatchObjectsRequest{}); err != nil {
		return fmt.Errorf("sink: weaviate gRPC endpoint %s is unreachable: %w", w.rpc.conn.Target(), err)
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
func sleep(ctx context.Context, d time.Duration) error { return backoff.Sleep(ctx, d) }

// backoffFor is the wait before retry number n (1-based), jittered so that
// the workers that failed together do not retry together.
func (w *Weaviate) backoffFor(n int) time.Duration {
	return backoff.Policy{Initial: w.backoff, Max: 5 * time.Second, Jitter: 0.5}.Delay(n)
}

var errNoCollection = errors.New("collection does not exist")
