package sink

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

func keysOf(objs []StoredObject) []string {
	seen := map[string]bool{}
	var out []string
	for _, o := range objs {
		if !seen[o.SourceKey] {
			seen[o.SourceKey] = true
			out = append(out, o.SourceKey)
		}
	}
	sort.Strings(out)
	return out
}

func TestDeleteMatchesKeysExactly(t *testing.T) {
	w := newTestSink(t)
	ctx := testCtx(t)
	coll := testenv.CollectionName(t)
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll}); err != nil {
		t.Fatal(err)
	}
	keys := []string{"1", "11", `["a","1"]`, `["1","a"]`, "1 1", "a1", "1.0", "A"}
	var docs []*transform.Document
	for _, k := range keys {
		docs = append(docs, testDoc(coll, testTable, k, 1, 4, "x", "y"))
	}
	// The same key in another table of the same collection.
	docs = append(docs, testDoc(coll, "public.other", "1", 1, 4, "z"))
	if err := w.Write(ctx, docs); err != nil {
		t.Fatal(err)
	}

	if err := w.Delete(ctx, coll, "", testTable, []string{"1", "a"}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	objs, err := w.Objects(ctx, coll, testTable)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(keysOf(objs))
	want := fmt.Sprint([]string{"1 1", "1.0", "11", "A", `["1","a"]`, `["a","1"]`, "a1"})
	if got != want {
		t.Fatalf("after deleting 1: keys %s, want %s", got, want)
	}
	if n, err := w.Count(ctx, coll, "public.other"); err != nil || n != 1 {
		t.Fatalf("other table: Count = %d, %v; want 1", n, err)
	}

	if err := w.Delete(ctx, coll, "", testTable, []string{`["a","1"]`, "1 1", "A"}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	objs, err = w.Objects(ctx, coll, testTable)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(keysOf(objs)), fmt.Sprint([]string{"1.0", "11", `["1","a"]`, "a1"}); got != want {
		t.Fatalf("keys %s, want %s", got, want)
	}

	// Deleting what is not there, or from a collection that does not exist,
	// is not an error.
	if err := w.Delete(ctx, coll, "", testTable, []string{"nope"}); err != nil {
		t.Fatalf("Delete missing key: %v", err)
	}
	if err := w.Delete(ctx, "TNoSuchCollectionX1", "", testTable, []string{"1"}); err != nil {
		t.Fatalf("Delete from a missing collection: %v", err)
	}
	if err := w.DeleteTable(ctx, "TNoSuchCollectionX1", testTable); err != nil {
		t.Fatalf("DeleteTable of a missing collection: %v", err)
	}
	if n, err := w.Count(ctx, "TNoSuchCollectionX1", testTable); err != nil || n != 0 {
		t.Fatalf("Count of a missing collection = %d, %v", n, err)
	}
	if objs, err := w.Objects(ctx, "TNoSuchCollectionX1", testTable); err != nil || len(objs) != 0 {
		t.Fatalf("Objects of a missing collection = %d, %v", len(objs), err)
	}
}

// TestDeleteLoopsPastQueryMaximum runs against a private Weaviate whose
// QUERY_MAXIMUM_RESULTS is small, so every batch delete is capped and the
// sink must repeat it; it also pages Objects over several cursor pages.
func TestDeleteLoopsPastQueryMaximum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private Weaviate")
	}
	ctx := testCtx(t)
	srv, err := testenv.StartWeaviate(ctx, testenv.WeaviateOptions{Env: []string{"QUERY_MAXIMUM_RESULTS=300"}})
	if err != nil {
		t.Fatalf("start Weaviate: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	w := newTestSinkAt(t, srv.URL(), srv.GRPC())
	coll := "TDeleteLoop"
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll}); err != nil {
		t.Fatal(err)
	}

	// 2,500 objects in table a (500 rows of 5 chunks), 400 in table b.
	var docs []*transform.Document
	for i := 0; i < 500; i++ {
		docs = append(docs, testDoc(coll, "public.a", fmt.Sprint(i), 1, 4, "1", "2", "3", "4", "5"))
	}
	for i := 0; i < 400; i++ {
		docs = append(docs, testDoc(coll, "public.b", fmt.Sprint(i), 1, 4, "only"))
	}
	// One row of table a with more chunks than one delete call removes.
	big := make([]string, 700)
	for i := range big {
		big[i] = fmt.Sprint(i)
	}
	docs = append(docs, testDoc(coll, "public.a", "big", 1, 4, big...))
	start := time.Now()
	if err := w.Write(ctx, docs); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote 3600 objects in %s", time.Since(start))

	objs, err := w.Objects(ctx, coll, "public.a")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3200 {
		t.Fatalf("Objects(a) = %d, want 3200 (paging past one page and QUERY_MAXIMUM_RESULTS)", len(objs))
	}
	ids := map[string]bool{}
	for _, o := range objs {
		if ids[o.ID] {
			t.Fatalf("Objects returned %s twice", o.ID)
		}
		ids[o.ID] = true
	}
	if n, err := w.Count(ctx, coll, "public.a"); err != nil || n != 3200 {
		t.Fatalf("Count(a) = %d, %v", n, err)
	}

	// Shrinking the big row deletes 699 surplus chunks: more than one call.
	shrunk := testDoc(coll, "public.a", "big", 2, 4, "small")
	if err := w.Replace(ctx, []*transform.Document{shrunk}, []int{700}); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Count(ctx, coll, "public.a"); err != nil || n != 2501 {
		t.Fatalf("after shrink Count(a) = %d, %v; want 2501", n, err)
	}

	// Deleting 100 rows of 5 chunks (500 objects) needs two capped calls.
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	if err := w.Delete(ctx, coll, "", "public.a", keys); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Count(ctx, coll, "public.a"); err != nil || n != 2001 {
		t.Fatalf("after Delete Count(a) = %d, %v; want 2001", n, err)
	}
	if n, err := w.Count(ctx, coll, "public.b"); err != nil || n != 400 {
		t.Fatalf("after Delete Count(b) = %d, %v; want 400", n, err)
	}

	if err := w.DeleteTable(ctx, coll, "public.a"); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Count(ctx, coll, "public.a"); err != nil || n != 0 {
		t.Fatalf("after DeleteTable Count(a) = %d, %v; want 0", n, err)
	}
	objs, err = w.Objects(ctx, coll, "public.b")
	if err != nil || len(objs) != 400 {
		t.Fatalf("after DeleteTable Objects(b) = %d, %v; want 400", len(objs), err)
	}
}

func TestDeleteTable(t *testing.T) {
	w := newTestSink(t)
	ctx := testCtx(t)
	coll := testenv.CollectionName(t)
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll}); err != nil {
		t.Fatal(err)
	}
	var docs []*transform.Document
	for i := 0; i < 50; i++ {
		docs = append(docs, testDoc(coll, testTable, fmt.Sprint(i), 1, 4, "a", "b"))
		docs = append(docs, testDoc(coll, `"Odd Schema"."Mixed Case"`, fmt.Sprint(i), 1, 4, "c"))
		docs = append(docs, testDoc(coll, "public.articles2", fmt.Sprint(i), 1, 4, "d"))
	}
	if err := w.Write(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteTable(ctx, coll, testTable); err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]int{testTable: 0, `"Odd Schema"."Mixed Case"`: 50, "public.articles2": 50} {
		if n, err := w.Count(ctx, coll, table); err != nil || n != want {
			t.Errorf("Count(%s) = %d, %v; want %d", table, n, err, want)
		}
	}
	if err := w.DeleteTable(ctx, coll, `"Odd Schema"."Mixed Case"`); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Count(ctx, coll, `"Odd Schema"."Mixed Case"`); err != nil || n != 0 {
		t.Errorf("Count(odd) = %d, %v", n, err)
	}
	if n, err := w.Count(ctx, coll, "public.articles2"); err != nil || n != 50 {
		t.Errorf("Count(articles2) = %d, %v", n, err)
	}
}

func TestReadyNamesUnreachableURL(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	w, err := New(context.Background(), Config{URL: url, GRPC: fmt.Sprintf("127.0.0.1:%d", port), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	err = w.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("Ready = %v, want an error naming %s", err, url)
	}
}

// Field tokenization trims surrounding whitespace, so a key filter for "a"
// also matches " a" and "a "; Delete must still remove exactly row "a".
func TestDeleteKeysDifferingInWhitespace(t *testing.T) {
	w := newTestSink(t)
	w.probeLimit = 3 // several rounds, skipping the other keys' objects
	ctx := testCtx(t)
	coll := testenv.CollectionName(t)
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll}); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a", " a", "a ", "\ta\n", "A", "", " ", "b\x01", `"q\u00e9"`}
	var docs []*transform.Document
	for _, k := range keys {
		docs = append(docs, testDoc(coll, testTable, k, 1, 4, "x", "y", "z"))
	}
	if err := w.Write(ctx, docs); err != nil {
		t.Fatal(err)
	}
	remaining := append([]string(nil), keys...)
	for _, del := range [][]string{{"a"}, {" a", "b\x01"}, {""}, {`"q\u00e9"`, "A"}, {"\ta\n", "a ", " "}} {
		if err := w.Delete(ctx, coll, "", testTable, del); err != nil {
			t.Fatalf("Delete(%q): %v", del, err)
		}
		var next []string
		for _, k := range remaining {
			gone := false
			for _, d := range del {
				gone = gone || d == k
			}
			if !gone {
				next = append(next, k)
			}
		}
		remaining = next
		sort.Strings(remaining)
		objs, err := w.Objects(ctx, coll, testTable)
		if err != nil {
			t.Fatal(err)
		}
		if got := keysOf(objs); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", remaining) || len(objs) != 3*len(remaining) {
			t.Fatalf("after deleting %q: keys %q (%d objects), want %q", del, got, len(objs), remaining)
		}
	}
}
