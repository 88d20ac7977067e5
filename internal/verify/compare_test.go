package verify

import (
	"strings"
	"testing"

	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

func TestCompareRow(t *testing.T) {
	const coll, table, key = "Article", "public.articles", "7"
	doc := func() *transform.Document {
		return &transform.Document{Collection: coll, SourceTable: table, SourceKey: key, ContentHash: "h1",
			Metadata: map[string]any{"views": int64(3), "Author": "ann"},
			Chunks:   []transform.Chunk{{Index: 0, Text: "one "}, {Index: 1, Text: "two"}}}
	}
	obj := func(chunk int) sink.StoredObject {
		d := doc()
		return sink.StoredObject{ID: string(sink.ObjectID(coll, table, key, chunk)), SourceTable: table, SourceKey: key,
			ChunkIndex: chunk, ChunkCount: 2, Text: d.Chunks[min(chunk, 1)].Text, ContentHash: "h1",
			Metadata: map[string]any{"views": int64(3), "author": "ann"}, Vector: make([]float32, 4)}
	}
	with := func(o sink.StoredObject, f func(*sink.StoredObject)) sink.StoredObject { f(&o); return o }
	cases := []struct {
		name string
		row  bool
		objs []sink.StoredObject
		want []string // kind:chunk, in order
	}{
		{"in sync", true, []sink.StoredObject{obj(0), obj(1)}, nil},
		{"no objects", true, nil, []string{"missing:-1"}},
		{"a chunk absent", true, []sink.StoredObject{obj(1)}, []string{"missing:-1"}},
		{"text changed", true, []sink.StoredObject{with(obj(0), func(o *sink.StoredObject) { o.Text = "x" }), obj(1)}, []string{"stale:0"}},
		{"chunk_count wrong", true, []sink.StoredObject{obj(0), with(obj(1), func(o *sink.StoredObject) { o.ChunkCount = 3 })}, []string{"stale:1"}},
		{"hash wrong", true, []sink.StoredObject{with(obj(0), func(o *sink.StoredObject) { o.ContentHash = "h0" }), obj(1)}, []string{"stale:0"}},
		{"vector length", true, []sink.StoredObject{with(obj(0), func(o *sink.StoredObject) { o.Vector = nil }), obj(1)}, []string{"stale:0"}},
		{"metadata value", true, []sink.StoredObject{obj(0), with(obj(1), func(o *sink.StoredObject) { o.Metadata = map[string]any{"views": int64(4), "author": "ann"} })}, []string{"stale:1"}},
		{"metadata left over", true, []sink.StoredObject{obj(0), with(obj(1), func(o *sink.StoredObject) { o.Metadata["old"] = "x" })}, []string{"stale:1"}},
		{"surplus chunk", true, []sink.StoredObject{obj(0), obj(1), obj(2)}, []string{"extra:2"}},
		{"copy at a foreign id", true, []sink.StoredObject{obj(0), obj(1), with(obj(0), func(o *sink.StoredObject) { o.ID = "00000000-0000-0000-0000-000000000001" })}, []string{"duplicate:0"}},
		{"another tenant", true, []sink.StoredObject{obj(0), obj(1), with(obj(0), func(o *sink.StoredObject) { o.Tenant = "acme" })}, []string{"extra:0"}},
		{"row gone", false, []sink.StoredObject{obj(0), obj(1)}, []string{"extra:0", "extra:1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var exp *Expected
			if c.row {
				exp = &Expected{Doc: doc(), Dimensions: 4}
			}
			var got []string
			for _, f := range CompareRow(coll, table, key, exp, c.objs) {
				got = append(got, f.Kind+":"+itoa(f.Chunk))
				if f.Detail == "" {
					t.Errorf("finding %+v says nothing", f)
				}
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("CompareRow = %v, want %v", got, c.want)
			}
		})
	}
}

func itoa(i int) string {
	if i < 0 {
		return "-1"
	}
	return string(rune('0' + i))
}

func TestReportCountsAndExamples(t *testing.T) {
	var m MappingReport
	var fs []Finding
	for i := 0; i < 8; i++ {
		fs = append(fs, Finding{Kind: Stale, Key: itoa(i), Detail: "x"})
	}
	fs = append(fs, Finding{Kind: Missing, Key: "9", Chunk: -1, Detail: "y"})
	m.add(fs)
	if m.Stale != 8 || m.Missing != 1 || m.Drift() != 9 || len(m.Examples) != examplesPerKind+1 {
		t.Fatalf("report %+v", m)
	}
	if (&Report{Mappings: []MappingReport{m}}).InSync() || !(&Report{Mappings: []MappingReport{{}}}).InSync() {
		t.Fatal("InSync is wrong")
	}
}

func TestCompareState(t *testing.T) {
	d := &transform.Document{ContentHash: "h1", Tenant: "acme", Chunks: []transform.Chunk{{Index: 0}, {Index: 1}}}
	cases := []struct {
		name string
		rec  *state.DocState
		want int
	}{
		{"matches", &state.DocState{ContentHash: "h1", ChunkCount: 2, Tenant: "acme"}, 0},
		{"no record", nil, 1},
		{"tombstone", &state.DocState{}, 1},
		{"other hash", &state.DocState{ContentHash: "h0", ChunkCount: 2, Tenant: "acme"}, 1},
		{"other chunk count", &state.DocState{ContentHash: "h1", ChunkCount: 9, Tenant: "acme"}, 1},
		{"other tenant", &state.DocState{ContentHash: "h1", ChunkCount: 2, Tenant: "beta"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := CompareState("7", d, c.rec)
			if len(got) != c.want || (c.want == 1 && (got[0].Kind != StateMismatch || got[0].Detail == "")) {
				t.Fatalf("CompareState = %+v, want %d state finding(s)", got, c.want)
			}
		})
	}
}
