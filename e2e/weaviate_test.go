package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/cdc-indexer/cdc-indexer/internal/preflight"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

// TestWeaviateBehindTLS: Weaviate behind TLS terminators (as behind an
// ingress), for REST and gRPC, with a private CA given in weaviate.ca_file.
// check passes and the stream keeps the collection exact; with another CA,
// check fails on both endpoints and says the certificate is not trusted.
func TestWeaviateBehindTLS(t *testing.T) {
	url, grpc := testenv.Weaviate(t)
	ca, err := testenv.NewTestCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rest, err := ca.StartTLSProxy(strings.TrimPrefix(url, "http://"), "http/1.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rest.Close() })
	rpc, err := ca.StartTLSProxy(grpc, "h2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rpc.Close() })

	h := newHarness(t, articlesSchema, articles())
	h.setSection("weaviate", map[string]any{
		"url": "https://" + rest.Addr(), "grpc": rpc.Addr(), "grpc_tls": "on", "ca_file": ca.CAFile,
	})
	ctx := context.Background()
	for _, r := range []preflight.Result{preflight.WeaviateREST(ctx, h.cfg.Weaviate), preflight.WeaviateGRPC(ctx, h.cfg.Weaviate)} {
		if r.Status != preflight.Pass {
			t.Fatalf("%s over TLS with ca_file: %s %s (fix: %s)", r.Check, r.Status, r.Detail, r.Fix)
		}
	}

	h.start()
	h.exec(`INSERT INTO articles VALUES (1, 'over', 'tls', 'ann', 1, NULL), (2, 'two', 'b', 'bob', 2, NULL)`)
	h.requireInSync("inserts through TLS")
	h.exec(`UPDATE articles SET body = 'edited' WHERE id = 1`)
	h.exec(`DELETE FROM articles WHERE id = 2`)
	h.requireInSync("update and delete through TLS")

	other, err := testenv.NewTestCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wrong := h.cfg.Weaviate
	wrong.CAFile = other.CAFile
	for _, r := range []preflight.Result{preflight.WeaviateREST(ctx, wrong), preflight.WeaviateGRPC(ctx, wrong)} {
		if r.Status != preflight.Fail || !strings.Contains(r.Detail, "certificate") {
			t.Fatalf("%s with a CA that did not sign the server's certificate: %s %q; want a failure about the certificate", r.Check, r.Status, r.Detail)
		}
		t.Logf("%s with the wrong CA: %s", r.Check, r.Detail)
	}
}
