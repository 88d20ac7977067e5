package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/sink"
)

// TestWeaviateClusterLosesANode (contract section 3): a three-node Weaviate
// cluster, collections with replication factor 3 written and read at
// QUORUM. Under a mixed workload with a truncate, one node is killed with
// SIGKILL and later restarted; the connector goes on through the other two.
// At the end every node's own copy equals the table: no missing, stale or
// duplicate object, read from each node at consistency ALL, once
// asynchronous replication has repaired the restarted node (the connector
// creates replicated collections with it, and with time-based resolution
// of deletes, so that rows deleted while the node was down do not come
// back).
func TestWeaviateClusterLosesANode(t *testing.T) {
	ctx := context.Background()
	// Asynchronous replication compares replicas every 30 s by default;
	// every second keeps the test short.
	nodes, err := testenv.StartWeaviateCluster(ctx, 3, testenv.WeaviateOptions{Env: []string{"ASYNC_REPLICATION_FREQUENCY=1s"}})
	if err != nil {
		t.Fatalf("TEST ENVIRONMENT UNAVAILABLE: %v", err)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Close()
		}
	})
	h := newPrivateHarness(t, nil, nodes[0], articlesSchema, articles())
	h.setSection("weaviate", map[string]any{"replication_factor": 3, "consistency_level": "QUORUM"})
	h.start()
	h.seedArticles(1000)
	w := startWorkload(t, h.dsn, 2000)

	time.Sleep(2 * time.Second)
	if err := nodes[2].Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("node3 killed after %d transactions", w.txs.Load())
	time.Sleep(2 * time.Second)
	h.exec(`TRUNCATE articles`)
	time.Sleep(2 * time.Second)
	if err := nodes[2].Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("node3 back after %d transactions", w.txs.Load())
	time.Sleep(2 * time.Second)
	w.finish()
	h.verifyExact("three-node cluster, one node killed and restarted", int(w.written.Load()), nil)

	// Every node's copy, read from that node at ALL.
	for i, n := range nodes {
		s, err := sink.New(ctx, sink.Config{URL: n.URL(), GRPC: n.GRPC(), ConsistencyLevel: "ALL", Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		h.weaviate = s
		h.requireConverges(fmt.Sprintf("node%d's copy", i+1))
		s.Close()
	}
}
