package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	pb "github.com/weaviate/weaviate/grpc/generated/protocol/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestWaitSearchableWithAsyncIndexing: against a Weaviate that indexes
// vectors asynchronously (ASYNC_INDEXING=true, Weaviate Cloud's default),
// /v1/wait?searchable=true returns only once the rows just written are
// found by vector search: each sampled row's own vector finds its object
// first.
func TestWaitSearchableWithAsyncIndexing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wv := privateWeaviate(t, "ASYNC_INDEXING=true")
	h := newPrivateHarness(t, nil, wv, articlesSchema, articles())
	h.start()
	seedArticles(h, 5000)
	lsn := h.walLSN()
	code, body := h.waitFor("lsn=" + lsn + "&searchable=true&timeout=120s")
	if code != http.StatusOK || !strings.Contains(body, `"searchable":true`) {
		t.Fatalf("wait searchable: %d %s", code, body)
	}

	conn, err := grpc.NewClient(h.cfg.Weaviate.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewWeaviateClient(conn)
	objs := h.indexed(h.maps[0])
	t.Logf("wait answered %s; %d rows in Weaviate", body, len(objs))
	missed := 0
	for id := 4990; id <= 5000; id++ {
		chunks := objs[fmt.Sprint(id)]
		if len(chunks) == 0 {
			t.Fatalf("row %d is not in Weaviate after the wait", id)
		}
		c := chunks[0]
		reply, err := client.Search(ctx, &pb.SearchRequest{
			Collection: h.maps[0].Collection, Limit: 1, Uses_127Api: true,
			NearVector: &pb.NearVector{VectorBytes: vectorBytes(c.Vector)},
			Metadata:   &pb.MetadataRequest{Uuid: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		if res := reply.GetResults(); len(res) == 0 || res[0].GetMetadata().GetId() != c.ID {
			missed++
		}
	}
	if missed > 0 {
		t.Fatalf("%d of 11 rows written last were not found by their own vector after /v1/wait?searchable=true", missed)
	}
}
