package sink

import (
	"slices"
	"testing"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// A multi-tenant collection: writes create their tenants, and every read
// and delete reaches the tenant it names, or every tenant for "".
func TestTenantsScopeWritesReadsAndDeletes(t *testing.T) {
	w := newTestSink(t)
	ctx := testCtx(t)
	coll := testenv.CollectionName(t)
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll, MultiTenant: true}); err != nil {
		t.Fatal(err)
	}
	inA := testDoc(coll, testTable, "1", 1, 4, "a0", "a1")
	inA.Tenant = "acme"
	inB := testDoc(coll, testTable, "1", 1, 4, "b0")
	inB.Tenant = "beta"
	other := testDoc(coll, testTable, "2", 1, 4, "x")
	other.Tenant = "beta"
	if err := w.Write(ctx, []*transform.Document{inA}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, []*transform.Document{inB, other}); err != nil {
		t.Fatal(err)
	}
	tenants, err := w.Tenants(ctx, coll)
	if err != nil || !slices.Equal(tenants, []string{"acme", "beta"}) {
		t.Fatalf("Tenants = %v, %v; want both, created by the writes", tenants, err)
	}
	where := func() map[string][]string {
		objs, err := w.Objects(ctx, coll, testTable)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for _, o := range objs {
			out[o.Tenant] = append(out[o.Tenant], o.SourceKey)
		}
		return out
	}
	if got := where(); len(got["acme"]) != 2 || len(got["beta"]) != 2 {
		t.Fatalf("objects by tenant %v; want 2 chunks of row 1 in acme, rows 1 and 2 in beta", got)
	}
	if n, err := w.Count(ctx, coll, testTable); err != nil || n != 4 {
		t.Fatalf("Count = %d, %v; want 4 over both tenants", n, err)
	}

	// Shrinking row 1 in acme prunes only acme's surplus chunk.
	shrunk := testDoc(coll, testTable, "1", 2, 4, "a0")
	shrunk.Tenant = "acme"
	if err := w.Replace(ctx, []*transform.Document{shrunk}, []int{2}); err != nil {
		t.Fatal(err)
	}
	if got := where(); len(got["acme"]) != 1 || len(got["beta"]) != 2 {
		t.Fatalf("after shrinking in acme: %v", got)
	}
	// A delete in one tenant leaves the same key in another.
	if err := w.Delete(ctx, coll, "acme", testTable, []string{"1"}); err != nil {
		t.Fatal(err)
	}
	if got := where(); len(got["acme"]) != 0 || len(got["beta"]) != 2 {
		t.Fatalf("after deleting row 1 from acme: %v", got)
	}
	// "" reaches every tenant.
	if err := w.Delete(ctx, coll, "", testTable, []string{"1"}); err != nil {
		t.Fatal(err)
	}
	if got := where(); len(got["beta"]) != 1 || got["beta"][0] != "2" {
		t.Fatalf("after deleting row 1 everywhere: %v", got)
	}
	if err := w.DeleteTable(ctx, coll, testTable); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Count(ctx, coll, ""); err != nil || n != 0 {
		t.Fatalf("Count after DeleteTable = %d, %v", n, err)
	}

	// The collection's tenancy is checked against the mapping's.
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll}); err == nil {
		t.Fatal("a multi-tenant collection accepted for a mapping without a tenant column")
	}
}
