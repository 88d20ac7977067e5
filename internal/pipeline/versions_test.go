package pipeline

import (
	"testing"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// A mapping added while the pipeline runs gets every change dispatched
// after AddTables, rendered, chunked and embedded by its own Encoding, with
// object ids over the name its collection is served as; once its
// collection is retired it gets nothing more, and the other mapping goes on.
func TestMappingsAddedAndRetiredWhileRunning(t *testing.T) {
	f := newFixture(t, "{{.title}}")
	r := f.pipeline(t, Config{Workers: 2}, nil)

	r.send(10, f.row(connector.OpInsert, 1, "one", "{}"))
	r.waitConfirmed(10)

	version := testenv.CollectionName(t)
	if _, err := f.sink.EnsureCollection(f.ctx, sink.CollectionSpec{Name: version, Vectorizer: "none"}); err != nil {
		t.Fatal(err)
	}
	f.sink.ServeAs(version, f.coll)
	rend, err := transform.NewRenderer(f.info, version, "v2: {{.title}}", nil, "hash/v1/8")
	if err != nil {
		t.Fatal(err)
	}
	chunker, err := transform.NewChunker(32, 0)
	if err != nil {
		t.Fatal(err)
	}
	added := NewTable(f.info, version, rend)
	added.Encoding = &Encoding{Chunker: chunker, Embedder: embedding.NewHashEmbedder(8)}
	r.p.AddTables([]*Table{added})
	if n := len(r.p.Tables()); n != 2 {
		t.Fatalf("Tables() = %d mappings after AddTables, want 2", n)
	}

	r.send(20, f.row(connector.OpInsert, 2, "two", "{}"), f.row(connector.OpUpdate, 1, "one again", "{}"))
	r.waitConfirmed(20)
	objs, err := f.sink.Objects(f.ctx, version, f.table.SourceTable)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range objs {
		got[o.SourceKey] = o.Text
		if len(o.Vector) != 8 {
			t.Errorf("row %s in the added mapping: vector of %d, want its own embedder's 8", o.SourceKey, len(o.Vector))
		}
		if o.ID != string(sink.ObjectID(f.coll, f.table.SourceTable, o.SourceKey, o.ChunkIndex)) {
			t.Errorf("row %s in the added mapping: id %s is not the one over the served name %s", o.SourceKey, o.ID, f.coll)
		}
	}
	if len(got) != 2 || got["1"] != "v2: one again" || got["2"] != "v2: two" {
		t.Fatalf("added mapping holds %v, want rows 1 and 2 in its template", got)
	}

	r.p.RetireCollection(version)
	if n := len(r.p.Tables()); n != 1 {
		t.Fatalf("Tables() = %d mappings after RetireCollection, want 1", n)
	}
	r.send(30, f.row(connector.OpInsert, 3, "three", "{}"), f.row(connector.OpDelete, 2, "", "{}"))
	r.waitConfirmed(30)
	r.stop()
	if n, err := f.sink.Count(f.ctx, version, f.table.SourceTable); err != nil || n != 2 {
		t.Fatalf("retired mapping's collection holds %d objects (%v), want the 2 it had", n, err)
	}
	if got := f.texts(t); len(got) != 2 || got["1"] != "one again" || got["3"] != "three" {
		t.Fatalf("the original mapping holds %v, want rows 1 and 3", got)
	}
}
