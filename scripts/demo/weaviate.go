package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "github.com/weaviate/weaviate/grpc/generated/protocol/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// weaviateClient runs the few reads the demo needs over Weaviate's gRPC
// API. It does not use GraphQL: that is deprecated, off on Weaviate Cloud,
// and testenv starts Weaviate with DISABLE_GRAPHQL=true.
type weaviateClient struct {
	conn   *grpc.ClientConn
	client pb.WeaviateClient
}

type object struct {
	SourceKey  string
	SourceLSN  string
	ChunkIndex int
	Text       string
	Author     string
	Category   string
	Additional struct {
		Score string // BM25 score, empty outside bm25
	}
}

type group struct {
	GroupedBy struct {
		Value string
	}
	Meta struct {
		Count int
	}
}

// callTimeout bounds each call, so a stuck Weaviate fails a poll instead
// of hanging the demo.
const callTimeout = 10 * time.Second

func newWeaviateClient(addr string) (*weaviateClient, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("weaviate grpc %s: %w", addr, err)
	}
	return &weaviateClient{conn: conn, client: pb.NewWeaviateClient(conn)}, nil
}

func (w *weaviateClient) close() { _ = w.conn.Close() }

// count is the number of objects in the collection. Before the connector
// creates the collection it fails, which callers treat as "not yet".
func (w *weaviateClient) count(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	reply, err := w.client.Aggregate(ctx, &pb.AggregateRequest{Collection: collection, ObjectsCount: true})
	if err != nil {
		return 0, fmt.Errorf("weaviate count: %w", err)
	}
	return int(reply.GetSingleResult().GetObjectsCount()), nil
}

var objectProps = []string{"source_key", "source_lsn", "chunk_index", "text", "author", "category"}

// search runs req with the demo's properties and score requested.
func (w *weaviateClient) search(ctx context.Context, req *pb.SearchRequest) ([]object, error) {
	req.Collection = collection
	req.Properties = &pb.PropertiesRequest{NonRefProperties: objectProps}
	req.Metadata = &pb.MetadataRequest{Score: true}
	req.Uses_127Api = true // properties come back as typed values in NonRefProps
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	reply, err := w.client.Search(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("weaviate search: %w", err)
	}
	objs := make([]object, 0, len(reply.GetResults()))
	for _, r := range reply.GetResults() {
		f := r.GetProperties().GetNonRefProps().GetFields()
		o := object{
			SourceKey:  f["source_key"].GetTextValue(),
			SourceLSN:  f["source_lsn"].GetTextValue(),
			ChunkIndex: int(f["chunk_index"].GetIntValue()),
			Text:       f["text"].GetTextValue(),
			Author:     f["author"].GetTextValue(),
			Category:   f["category"].GetTextValue(),
		}
		if md := r.GetMetadata(); md.GetScorePresent() {
			o.Additional.Score = strconv.FormatFloat(float64(md.GetScore()), 'f', -1, 32)
		}
		objs = append(objs, o)
	}
	return objs, nil
}

// byKey returns a row's objects (its chunks) in chunk order.
func (w *weaviateClient) byKey(ctx context.Context, key string) ([]object, error) {
	return w.search(ctx, &pb.SearchRequest{
		Filters: &pb.Filters{
			Operator:  pb.Filters_OPERATOR_EQUAL,
			Target:    &pb.FilterTarget{Target: &pb.FilterTarget_Property{Property: "source_key"}},
			TestValue: &pb.Filters_ValueText{ValueText: key},
		},
		SortBy: []*pb.SortBy{{Path: []string{"chunk_index"}, Ascending: true}},
		Limit:  100,
	})
}

func (w *weaviateClient) bm25(ctx context.Context, query string, limit int) ([]object, error) {
	return w.search(ctx, &pb.SearchRequest{
		Bm25Search: &pb.BM25{Query: query, Properties: []string{"text"}},
		Limit:      uint32(limit),
	})
}

func (w *weaviateClient) countPerKey(ctx context.Context) ([]group, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	reply, err := w.client.Aggregate(ctx, &pb.AggregateRequest{
		Collection:   collection,
		ObjectsCount: true,
		GroupBy:      &pb.AggregateRequest_GroupBy{Collection: collection, Property: "source_key"},
	})
	if err != nil {
		return nil, fmt.Errorf("weaviate count per key: %w", err)
	}
	var groups []group
	for _, g := range reply.GetGroupedResults().GetGroups() {
		var out group
		out.GroupedBy.Value = g.GetGroupedBy().GetText()
		out.Meta.Count = int(g.GetObjectsCount())
		groups = append(groups, out)
	}
	// Keys are bigint text forms: order by length first to sort numerically.
	slices.SortFunc(groups, func(a, b group) int {
		return cmp.Or(cmp.Compare(len(a.GroupedBy.Value), len(b.GroupedBy.Value)), strings.Compare(a.GroupedBy.Value, b.GroupedBy.Value))
	})
	return groups, nil
}
