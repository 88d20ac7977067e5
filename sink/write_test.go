package sink

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

const testTable = "public.articles"

// testVector is a deterministic vector for a key and chunk.
func testVector(dims int, key string, chunk int) []float32 {
	v := make([]float32, dims)
	h := uint32(2166136261)
	for _, b := range []byte(fmt.Sprintf("%s/%d", key, chunk)) {
		h = (h ^ uint32(b)) * 16777619
	}
	for i := range v {
		h = h*1664525 + 1013904223
		v[i] = float32(h%2000)/1000 - 1
	}
	return v
}

func testDoc(coll, table, key string, lsn pglogrepl.LSN, dims int, texts ...string) *transform.Document {
	d := &transform.Document{
		Collection: coll, SourceTable: table, SourceKey: key,
		Text: strings.Join(texts, ""), ContentHash: fmt.Sprintf("%064x", len(key)+len(texts)),
		LSN: lsn,
	}
	for i, s := range texts {
		c := transform.Chunk{Index: i, Text: s}
		if dims > 0 {
			c.Vector = testVector(dims, key, i)
		}
		d.Chunks = append(d.Chunks, c)
	}
	return d
}

func sortObjects(objs []StoredObject) {
	sort.Slice(objs, func(i, j int) bool {
		if objs[i].SourceKey != objs[j].SourceKey {
			return objs[i].SourceKey < objs[j].SourceKey
		}
		return objs[i].ChunkIndex < objs[j].ChunkIndex
	})
}

func TestWriteUpsertsAndShrinks(t *testing.T) {
	w := newTestSink(t)
	ctx := testCtx(t)
	coll := testenv.CollectionName(t)
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll}); err != nil {
		t.Fatal(err)
	}
	lsn1, _ := pglogrepl.ParseLSN("0/16B3748")
	if err := w.Write(ctx, []*transform.Document{
		testDoc(coll, testTable, "1", lsn1, 8, "a", "b", "c"),
		testDoc(coll, testTable, "2", lsn1, 8, "x"),
	}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	objs, err := w.Objects(ctx, coll, testTable)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 4 {
		t.Fatalf("got %d objects, want 4", len(objs))
	}
	sortObjects(objs)
	o := objs[1]
	if o.SourceKey != "1" || o.ChunkIndex != 1 || o.ChunkCount != 3 || o.Text != "b" ||
		o.SourceTable != testTable || o.SourceLSN != "0/16B3748" || o.ContentHash == "" {
		t.Fatalf("object = %+v", o)
	}
	if o.ID != string(ObjectID(coll, testTable, "1", 1)) {
		t.Fatalf("ID = %s, want %s", o.ID, ObjectID(coll, testTable, "1", 1))
	}
	if !reflect.DeepEqual(o.Vector, testVector(8, "1", 1)) {
		t.Fatalf("vector = %v", o.Vector)
	}
	if dims, ok, err := w.CollectionVectorDimensions(ctx, coll); err != nil || !ok || dims != 8 {
		t.Fatalf("CollectionVectorDimensions = %d, %v, %v; want 8", dims, ok, err)
	}
	if _, ok, err := w.CollectionVectorDimensions(ctx, "TNoSuchCollectionX2"); err != nil || ok {
		t.Fatalf("CollectionVectorDimensions of a missing collection = %v, %v", ok, err)
	}

	// Shrink row 1 to one chunk: chunks 1 and 2 go; replaying is harmless.
	lsn2, _ := pglogrepl.ParseLSN("1/A0")
	shrunk := testDoc(coll, testTable, "1", lsn2, 8, "abc")
	for i := 0; i < 2; i++ {
		if err := w.Replace(ctx, []*transform.Document{shrunk}, []int{3}); err != nil {
			t.Fatalf("Write shrunk: %v", err)
		}
	}
	objs, err = w.Objects(ctx, coll, testTable)
	if err != nil {
		t.Fatal(err)
	}
	sortObjects(objs)
	if len(objs) != 2 {
		t.Fatalf("after shrink: %d objects, want 2: %+v", len(objs), objs)
	}
	if o := objs[0]; o.SourceKey != "1" || o.ChunkIndex != 0 || o.ChunkCount != 1 || o.Text != "abc" || o.SourceLSN != "1/A0" {
		t.Fatalf("after shrink: %+v", o)
	}
	if n, err := w.Count(ctx, coll, testTable); err != nil || n != 2 {
		t.Fatalf("Count = %d, %v; want 2", n, err)
	}
}

func TestWriteDuplicateRowsInOneCall(t *testing.T) {
	w := newTestSink(t)
	ctx := testCtx(t)
	coll := testenv.CollectionName(t)
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, []*transform.Document{testDoc(coll, testTable, "k", 1, 4, "a", "b", "c")}); err != nil {
		t.Fatal(err)
	}
	// Two updates of one row in one call: 3 -> 1 -> 2 chunks. The second
	// only knows of one previous chunk, yet chunk 2 must go.
	u1 := testDoc(coll, testTable, "k", 2, 4, "x")
	u2 := testDoc(coll, testTable, "k", 3, 4, "y", "z")
	if err := w.Replace(ctx, []*transform.Document{u1, u2}, []int{3, 1}); err != nil {
		t.Fatal(err)
	}
	objs, err := w.Objects(ctx, coll, testTable)
	if err != nil {
		t.Fatal(err)
	}
	sortObjects(objs)
	if len(objs) != 2 || objs[0].Text != "y" || objs[1].Text != "z" || objs[1].ChunkCount != 2 {
		t.Fatalf("objects = %+v", objs)
	}
}

func TestWriteMetadataOfEveryKind(t *testing.T) {
	w := newTestSink(t)
	ctx := testCtx(t)
	coll := testenv.CollectionName(t)
	fields := []transform.MetadataField{
		{Name: "m_text", Kind: transform.KindText},
		{Name: "m_int", Kind: transform.KindInt},
		{Name: "m_number", Kind: transform.KindNumber},
		{Name: "m_bool", Kind: transform.KindBool},
		{Name: "m_date", Kind: transform.KindDate},
		{Name: "m_texts", Kind: transform.KindTextArray},
		{Name: "m_ints", Kind: transform.KindIntArray},
		{Name: "m_numbers", Kind: transform.KindNumberArray},
		{Name: "m_bools", Kind: transform.KindBoolArray},
		{Name: "m_dates", Kind: transform.KindDateArray},
		{Name: "Upper", Kind: transform.KindText},
		{Name: "m_null", Kind: transform.KindText},
	}
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll, Metadata: fields}); err != nil {
		t.Fatal(err)
	}
	d := testDoc(coll, testTable, "7", 100, 4, "one", "two")
	d.Metadata = map[string]any{
		"m_text":    "Grüße, \"world\"",
		"m_int":     int64(-42),
		"m_number":  3.25,
		"m_bool":    true,
		"m_date":    "2024-02-29T13:14:15.123456Z",
		"m_texts":   []string{"a", "b c"},
		"m_ints":    []int64{1, -2, 3},
		"m_numbers": []float64{0.5, -1.25},
		"m_bools":   []bool{true, false},
		"m_dates":   []string{"2020-01-01T00:00:00Z", "2021-06-30T12:00:00+02:00"},
		"Upper":     "up",
		"m_null":    nil,
	}
	if err := w.Write(ctx, []*transform.Document{d}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	objs, err := w.Objects(ctx, coll, testTable)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 {
		t.Fatalf("%d objects", len(objs))
	}
	want := map[string]any{
		"m_text":    "Grüße, \"world\"",
		"m_int":     int64(-42),
		"m_number":  3.25,
		"m_bool":    true,
		"m_date":    "2024-02-29T13:14:15.123456Z",
		"m_texts":   []string{"a", "b c"},
		"m_ints":    []int64{1, -2, 3},
		"m_numbers": []float64{0.5, -1.25},
		"m_bools":   []bool{true, false},
		"m_dates":   []string{"2020-01-01T00:00:00Z", "2021-06-30T12:00:00+02:00"},
		"upper":     "up",
	}
	for _, o := range objs {
		for k, v := range want {
			got := o.Metadata[k]
			if k == "m_dates" || k == "m_date" {
				// Weaviate may normalise the time zone; compare instants.
				if !sameInstants(t, got, v) {
					t.Errorf("chunk %d %s = %#v, want %#v", o.ChunkIndex, k, got, v)
				}
				continue
			}
			if !reflect.DeepEqual(got, v) {
				t.Errorf("chunk %d %s = %#v, want %#v", o.ChunkIndex, k, got, v)
			}
		}
		if _, ok := o.Metadata["m_null"]; ok {
			t.Errorf("m_null present: %#v", o.Metadata["m_null"])
		}
	}

	// The gRPC read by key (verify) types every kind as the REST read does.
	byKey, err := w.KeyObjects(ctx, coll, "", testTable, []string{"7", "8"}, true)
	if err != nil {
		t.Fatal(err)
	}
	sortObjects(objs)
	sortObjects(byKey)
	if !reflect.DeepEqual(byKey, objs) {
		t.Errorf("KeyObjects:\n%#v\nObjects:\n%#v", byKey, objs)
	}
	var paged []StoredObject
	if err := w.EachObjectPage(ctx, coll, func(page []StoredObject) error {
		paged = append(paged, page...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sortObjects(paged)
	for i := range objs {
		objs[i].Vector = nil
	}
	if !reflect.DeepEqual(paged, objs) {
		t.Errorf("EachObjectPage:\n%#v\nwant:\n%#v", paged, objs)
	}
}

func TestWriteLooseMetadataValues(t *testing.T) {
	// Values not in their kind's Go form still land in the property's type.
	w := newTestSink(t)
	ctx := testCtx(t)
	coll := testenv.CollectionName(t)
	fields := []transform.MetadataField{
		{Name: "i", Kind: transform.KindInt},
		{Name: "f", Kind: transform.KindNumber},
		{Name: "s", Kind: transform.KindText},
		{Name: "ii", Kind: transform.KindIntArray},
		{Name: "ss", Kind: transform.KindTextArray},
		{Name: "nan", Kind: transform.KindNumber},
	}
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll, Metadata: fields}); err != nil {
		t.Fatal(err)
	}
	d := testDoc(coll, testTable, "1", 1, 4, "t")
	d.Metadata = map[string]any{
		"i": int16(7), "f": float32(1.5), "s": 12, "ii": []any{int32(1), int64(2)},
		"ss": []any{"a", 3}, "nan": math.NaN(),
	}
	if err := w.Write(ctx, []*transform.Document{d}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	objs, err := w.Objects(ctx, coll, testTable)
	if err != nil || len(objs) != 1 {
		t.Fatalf("Objects = %v, %v", objs, err)
	}
	want := map[string]any{"i": int64(7), "f": 1.5, "s": "12", "ii": []int64{1, 2}, "ss": []string{"a", "3"}, "nan": 0.0}
	if !reflect.DeepEqual(objs[0].Metadata, want) {
		t.Fatalf("metadata = %#v, want %#v", objs[0].Metadata, want)
	}
}

func sameInstants(t *testing.T, got, want any) bool {
	t.Helper()
	norm := func(v any) []string {
		var in []string
		switch x := v.(type) {
		case string:
			in = []string{x}
		case []string:
			in = x
		default:
			return nil
		}
		out := make([]string, len(in))
		for i, s := range in {
			tm, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				t.Errorf("bad date %q: %v", s, err)
				return nil
			}
			out[i] = tm.UTC().String()
		}
		return out
	}
	g, w := norm(got), norm(want)
	return g != nil && reflect.DeepEqual(g, w)
}

func TestWriteSurfacesPerObjectErrors(t *testing.T) {
	w := newTestSink(t)
	ctx := testCtx(t)
	coll := testenv.CollectionName(t)
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, []*transform.Document{testDoc(coll, testTable, "ok0", 1, 4, "a")}); err != nil {
		t.Fatal(err)
	}
	bad := testDoc(coll, testTable, "bad", 2, 6, "wrong", "dims")
	good := testDoc(coll, testTable, "ok1", 2, 4, "fine")
	err := w.Write(ctx, []*transform.Document{good, bad})
	var we *WriteError
	if !errors.As(err, &we) {
		t.Fatalf("Write = %v, want a *WriteError", err)
	}
	if len(we.Objects) != 2 {
		t.Fatalf("WriteError has %d objects, want 2: %v", len(we.Objects), we)
	}
	for i, o := range we.Objects {
		if o.Collection != coll || o.SourceTable != testTable || o.SourceKey != "bad" || o.Chunk != i || o.Message == "" || o.Transient {
			t.Errorf("object error %d = %+v", i, o)
		}
	}
	if !we.Permanent() || len(we.Rows()) != 1 {
		t.Errorf("Permanent = %v, Rows = %v", we.Permanent(), we.Rows())
	}
	var rows []string
	we.EachRejectedRow(func(collection, sourceTable, sourceKey string, reason error) {
		if collection != coll || sourceTable != testTable || reason == nil {
			t.Errorf("rejected row %s/%s/%s: %v", collection, sourceTable, sourceKey, reason)
		}
		rows = append(rows, sourceKey)
	})
	if len(rows) != 1 || rows[0] != "bad" {
		t.Errorf("EachRejectedRow = %v, want the one row bad", rows)
	}
	var oe *ObjectError
	if !errors.As(err, &oe) || oe.SourceKey != "bad" {
		t.Errorf("errors.As ObjectError = %v", oe)
	}
	t.Logf("rejection: %v", err)
	objs, err := w.Objects(ctx, coll, testTable)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 {
		t.Fatalf("%d objects stored, want the 2 good ones: %+v", len(objs), objs)
	}
}

func TestWriteWithoutVectors(t *testing.T) {
	// provider none: the chunk has no vector; the object is stored without.
	w := newTestSink(t)
	ctx := testCtx(t)
	coll := testenv.CollectionName(t)
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, []*transform.Document{testDoc(coll, testTable, "1", 1, 0, "a", "b")}); err != nil {
		t.Fatal(err)
	}
	objs, err := w.Objects(ctx, coll, testTable)
	if err != nil || len(objs) != 2 {
		t.Fatalf("Objects = %+v, %v", objs, err)
	}
	if len(objs[0].Vector) != 0 {
		t.Fatalf("vector = %v, want none", objs[0].Vector)
	}
}

func TestWriteSplitsIntoSubBatches(t *testing.T) {
	url, grpc := testenv.Weaviate(t)
	w := newTestSinkAt(t, url, grpc)
	w.batchSize = 7
	ctx := testCtx(t)
	coll := testenv.CollectionName(t)
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll}); err != nil {
		t.Fatal(err)
	}
	var docs []*transform.Document
	for i := 0; i < 20; i++ {
		docs = append(docs, testDoc(coll, testTable, fmt.Sprint(i), 1, 4, "a", "b", "c"))
	}
	if err := w.Write(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Count(ctx, coll, testTable); err != nil || n != 60 {
		t.Fatalf("Count = %d, %v; want 60", n, err)
	}
}

// After a crash the recorded chunk count may be behind what Weaviate holds:
// with an unknown previous count the surplus chunks are found by query, and
// a row whose key differs only by whitespace keeps its objects.
func TestWriteShrinksWithUnknownPreviousCount(t *testing.T) {
	w := newTestSink(t)
	ctx := testCtx(t)
	coll := testenv.CollectionName(t)
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: coll}); err != nil {
		t.Fatal(err)
	}
	lsn1, _ := pglogrepl.ParseLSN("0/100")
	if err := w.Write(ctx, []*transform.Document{
		testDoc(coll, testTable, "7", lsn1, 8, "a", "b", "c", "d"),
		testDoc(coll, testTable, " 7", lsn1, 8, "p", "q", "r"),
		testDoc(coll, testTable, "8", lsn1, 8, "x", "y"),
	}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	lsn2, _ := pglogrepl.ParseLSN("0/200")
	a := testDoc(coll, testTable, "7", lsn2, 8, "ab")
	b := testDoc(coll, testTable, "8", lsn2, 8, "xy")
	if err := w.Replace(ctx, []*transform.Document{a, b}, []int{transform.UnknownChunkCount, transform.UnknownChunkCount}); err != nil {
		t.Fatalf("Write with unknown previous count: %v", err)
	}
	objs, err := w.Objects(ctx, coll, testTable)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, o := range objs {
		per[o.SourceKey]++
	}
	if want := map[string]int{"7": 1, " 7": 3, "8": 1}; !reflect.DeepEqual(per, want) {
		t.Fatalf("objects per key = %v, want %v", per, want)
	}
}
