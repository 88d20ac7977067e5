package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/weaviate/weaviate/entities/models"

	"github.com/cdc-indexer/cdc-indexer/transform"
)

func TestDedupeKeepsLastAndWidestPrevious(t *testing.T) {
	a1 := testDoc("C", "s.t", "a", 1, 0, "1", "2", "3", "4", "5")
	b := testDoc("C", "s.t", "b", 1, 0, "1")
	a2 := testDoc("C", "s.t", "a", 2, 0, "1")
	a3 := testDoc("C", "s.t", "a", 3, 0, "1", "2")
	other := testDoc("D", "s.t", "a", 3, 0, "1")
	docs, prev := dedupe([]*transform.Document{a1, b, nil, a2, a3, other}, []int{2, 3, 0, 5, 1, 0})
	if len(docs) != 3 || docs[0] != a3 || docs[1] != b || docs[2] != other {
		t.Fatalf("docs = %v", docs)
	}
	// a: a1 wrote 5 chunks before a3's 2, so chunks 2..4 must go.
	if fmt.Sprint(prev) != "[5 3 0]" {
		t.Fatalf("prev = %v", prev)
	}
}

func TestCutRespectsCountAndBytes(t *testing.T) {
	w := &Weaviate{batchSize: 3}
	objs := make([]*models.Object, 10)
	for i := range objs {
		objs[i] = &models.Object{Properties: map[string]any{"text": "x"}}
	}
	if end := w.cut(objs, 0, 10); end != 3 {
		t.Fatalf("cut = %d, want 3", end)
	}
	if end := w.cut(objs, 9, 10); end != 10 {
		t.Fatalf("cut = %d, want 10", end)
	}
	big := strings.Repeat("x", maxBatchBytes/2)
	for i := range objs {
		objs[i] = &models.Object{Properties: map[string]any{"text": big}}
	}
	if end := w.cut(objs, 0, 10); end != 1 {
		t.Fatalf("cut of large objects = %d, want 1", end)
	}
}

func TestBuildObjects(t *testing.T) {
	w := &Weaviate{kinds: map[string]map[string]kindInfo{}}
	w.rememberKinds(CollectionSpec{Name: "C", Metadata: []transform.MetadataField{{Name: "Views", Kind: transform.KindInt}}})
	d := testDoc("C", "public.t", "9", 0x16B3748, 3, "a", "b")
	d.Metadata = map[string]any{"Views": int32(4), "gone": nil}
	var g idGen
	objs, refs := w.build([]*transform.Document{d}, &g)
	if len(objs) != 2 || refs[1] != (objRef{0, 1}) {
		t.Fatalf("objs %d refs %v", len(objs), refs)
	}
	p := objs[1].Properties.(map[string]any)
	want := map[string]any{
		"source_table": "public.t", "source_key": "9", "chunk_index": int64(1), "chunk_count": int64(2),
		"text": "b", "content_hash": d.ContentHash, "source_lsn": "0/16B3748", "views": int64(4),
	}
	if fmt.Sprint(p) != fmt.Sprint(want) {
		t.Fatalf("properties = %v\nwant %v", p, want)
	}
	if objs[1].ID != ObjectID("C", "public.t", "9", 1) || objs[1].Class != "C" || len(objs[1].Vector) != 3 {
		t.Fatalf("object = %+v", objs[1])
	}
}

func BenchmarkBuild(b *testing.B) {
	w := &Weaviate{kinds: map[string]map[string]kindInfo{}}
	w.rememberKinds(CollectionSpec{Name: "C", Metadata: []transform.MetadataField{
		{Name: "author", Kind: transform.KindText}, {Name: "views", Kind: transform.KindInt},
	}})
	text := strings.Repeat("lorem ipsum dolor sit amet ", 30)
	docs := make([]*transform.Document, 500)
	for i := range docs {
		docs[i] = testDoc("C", "public.articles", fmt.Sprint(i), 1, 384, text)
		docs[i].Metadata = map[string]any{"author": "someone", "views": int64(i)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var g idGen
		w.build(docs, &g)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(docs)), "ns/object")
}

func TestForEach(t *testing.T) {
	for _, par := range []int{1, 3} {
		w := &Weaviate{parallel: par}
		var mu sync.Mutex
		seen := map[int]bool{}
		err := w.forEach(context.Background(), 10, func(ctx context.Context, i int) error {
			mu.Lock()
			seen[i] = true
			mu.Unlock()
			return nil
		})
		if err != nil || len(seen) != 10 {
			t.Fatalf("parallel %d: err %v, ran %d", par, err, len(seen))
		}
		boom := errors.New("boom")
		err = w.forEach(context.Background(), 10, func(ctx context.Context, i int) error {
			if i == 2 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) {
			t.Fatalf("parallel %d: err = %v, want boom", par, err)
		}
	}
}
