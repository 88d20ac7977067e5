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
// SIGKILL and later restarted; the connector goes on through the other two
// and the index it serves is exact. Every node then holds an exact copy,
// read from each node at consistency ALL: the restarted node too, once
// Weaviate's asynchronous replication (which the connector turns on for the
// collections it creates replicated) has brought it back in step: without
// it, that node keeps the rows deleted while it was down and lacks those
// written meanwhile, for good (see docs/weaviate.md).
func TestWeaviateClusterLosesANode(t *testing.T) {
	ctx := context.Background()
	// Server settings that make the repair run every second and propagate
	// what is 5 s old (Weaviate's defaults: 30 s and 30 s), to keep the
	// test short.
	nodes, err := testenv.StartWeaviateCluster(ctx, 3, testenv.WeaviateOptions{Env: []string{
		"ASYNC_REPLICATION_FREQUENCY=1s",
		"ASYNC_REPLICATION_ALIVE_NODES_CHECKING_FREQUENCY=1s",
		"ASYNC_REPLICATION_PROPAGATION_DELAY=5s",
	}})
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

	// The restarted node missed the writes and deletes of its absence;
	// asynchronous replication (on for the collections the connector
	// creates replicated) brings it back in step. Wait for that, bounded.
	s3, err := sink.New(ctx, sink.Config{URL: nodes[2].URL(), GRPC: nodes[2].GRPC(), ConsistencyLevel: "ALL", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h.weaviate = s3
	began := time.Now()
	for d := len(h.diff(h.maps[0])); d > 0 && time.Since(began) < 2*time.Minute; d = len(h.diff(h.maps[0])) {
		t.Logf("node3 differs from the table in %d rows after %s", d, time.Since(began).Round(time.Second))
		time.Sleep(2 * time.Second)
	}
	t.Logf("node3 in step %s after the workload ended", time.Since(began).Round(time.Second))
	s3.Close()

	// Every node's own copy, read from that node at ALL.
	for i, n := range nodes {
		s, err := sink.New(ctx, sink.Config{URL: n.URL(), GRPC: n.GRPC(), ConsistencyLevel: "ALL", Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		h.weaviate = s
		h.requireEqual(fmt.Sprintf("node%d's copy", i+1))
		s.Close()
	}
}
