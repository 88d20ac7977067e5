package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/weaviate/weaviate-go-client/v5/weaviate/db"
	grpcbatch "github.com/weaviate/weaviate-go-client/v5/weaviate/grpc/batch"
	"github.com/weaviate/weaviate/entities/models"
	pb "github.com/weaviate/weaviate/grpc/generated/protocol/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// minServerVersion is the oldest Weaviate the sink speaks to. It only
// decides the batch encoding (vectors as bytes, Weaviate >= 1.22.6).
const minServerVersion = "1.32.0"

// rpc is the sink's own gRPC connection. Batch writes, searches and counts
// go through it rather than through the go client's, for two reasons: the
// go client's gRPC connection skips certificate verification whenever TLS
// is on, and it has no search or aggregate calls, so the sink would have to
// fall back to GraphQL, which Weaviate Cloud switches off.
type rpc struct {
	conn    *grpc.ClientConn
	client  pb.WeaviateClient
	md      metadata.MD
	encoder grpcbatch.Batch
	timeout time.Duration // per call, as the REST client's
}

func dialRPC(address string, tlsConf *tls.Config, headers map[string]string, timeout time.Duration) (*rpc, error) {
	creds := insecure.NewCredentials()
	if tlsConf != nil {
		creds = credentials.NewTLS(tlsConf)
	}
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("sink: weaviate grpc %s: %w", address, err)
	}
	version := db.NewVersionProvider(func() string { return minServerVersion })
	return &rpc{
		conn:    conn,
		client:  pb.NewWeaviateClient(conn),
		md:      metadata.New(headers),
		encoder: grpcbatch.New(db.NewGRPCVersionSupport(version)),
		timeout: timeout,
	}, nil
}

// call is the context of one call: bounded by the timeout, carrying the
// API key (and any other header).
func (r *rpc) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if len(r.md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, r.md)
	}
	return context.WithTimeout(ctx, r.timeout)
}

func (r *rpc) Close() error { return r.conn.Close() }

// tlsConfig is the client TLS configuration for Weaviate: the system roots,
// plus the certificates of caFile when set.
func tlsConfig(caFile string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("sink: weaviate.ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("sink: weaviate.ca_file %s: no PEM certificate in it", caFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

// consistencyLevel maps the config's ONE/QUORUM/ALL to its gRPC enum; empty
// means QUORUM, what a reader at Weaviate's default sees.
func consistencyLevel(level string) (*pb.ConsistencyLevel, error) {
	switch level {
	case "", "QUORUM":
		return pb.ConsistencyLevel_CONSISTENCY_LEVEL_QUORUM.Enum(), nil
	case "ONE":
		return pb.ConsistencyLevel_CONSISTENCY_LEVEL_ONE.Enum(), nil
	case "ALL":
		return pb.ConsistencyLevel_CONSISTENCY_LEVEL_ALL.Enum(), nil
	default:
		return nil, fmt.Errorf("sink: weaviate.consistency_level %q: want ONE, QUORUM or ALL", level)
	}
}

// batchObjects writes objs in one gRPC batch request at the sink's
// consistency level and returns one result per object, in order.
func (w *Weaviate) batchObjects(ctx context.Context, objs []*models.Object) ([]models.ObjectsGetResponse, error) {
	encoded, err := w.rpc.encoder.GetBatchObjects(objs)
	if err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	ctx, cancel := w.rpc.call(ctx)
	defer cancel()
	reply, err := w.rpc.client.BatchObjects(ctx, &pb.BatchObjectsRequest{
		Objects:          encoded,
		ConsistencyLevel: w.consistency,
	})
	if err != nil {
		return nil, err
	}
	return w.rpc.encoder.ParseReply(reply, objs), nil
}
