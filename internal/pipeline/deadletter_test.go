package pipeline

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func docs(keys ...string) ([]*transform.Document, []int) {
	var out []*transform.Document
	var at []int
	for i, k := range keys {
		out = append(out, &transform.Document{Collection: "C", SourceTable: "public.t", SourceKey: k,
			Chunks: []transform.Chunk{{Index: 0, Vector: []float32{1}}, {Index: 1, Vector: []float32{1}}}})
		at = append(at, 10+i)
	}
	return out, at
}

func TestRejectedWritesIsolatesRows(t *testing.T) {
	writes, at := docs("1", "2", "3")
	we := &sink.WriteError{Objects: []*sink.ObjectError{
		{Collection: "C", SourceTable: "public.t", SourceKey: "2", Chunk: 0, Message: "invalid"},
		{Collection: "C", SourceTable: "public.t", SourceKey: "2", Chunk: 1, Message: "invalid"},
	}}
	failed := rowFailures{}
	keep, keepAt, err := rejectedWrites(fmt.Errorf("write: %w", we), writes, at, failed)
	if err != nil {
		t.Fatal(err)
	}
	if len(keep) != 2 || keep[0].SourceKey != "1" || keep[1].SourceKey != "3" || keepAt[0] != 10 || keepAt[1] != 12 {
		t.Fatalf("kept %v %v", keep, keepAt)
	}
	if len(failed) != 1 || failed[11] == nil || !isPermanent(failed[11]) {
		t.Fatalf("failed = %v", failed)
	}

	// A rejection that looks transient while Weaviate stored the other
	// rows is isolated too: Weaviate answers, and a row it keeps refusing
	// alone must not hold up the rest.
	we.Objects[0].Transient = true
	failed = rowFailures{}
	keep, _, err = rejectedWrites(we, writes, at, failed)
	if err != nil || len(keep) != 2 || len(failed) != 1 || failed[11] == nil {
		t.Fatalf("transient rejection beside stored rows: err %v, kept %d, failed %v", err, len(keep), failed)
	}
	// When every row was refused for a reason that may pass, the whole
	// write is retried and nothing is marked failed.
	all := &sink.WriteError{}
	for _, k := range []string{"1", "2", "3"} {
		all.Objects = append(all.Objects, &sink.ObjectError{Collection: "C", SourceTable: "public.t", SourceKey: k, Message: "store is read-only", Transient: true})
	}
	failed = rowFailures{}
	if _, _, err := rejectedWrites(all, writes, at, failed); err == nil || len(failed) != 0 {
		t.Fatalf("transient rejection of every row: err %v, failed %v", err, failed)
	}
	// Any other error is passed on.
	if _, _, err := rejectedWrites(errors.New("connection refused"), writes, at, failed); err == nil {
		t.Fatal("transport error swallowed")
	}
}

func TestDocsOfRejectedChunks(t *testing.T) {
	writes, _ := docs("1", "2", "3") // chunks 0-1, 2-3, 4-5
	writes[1].Chunks[0].Vector, writes[1].Chunks[1].Vector = nil, nil
	err := fmt.Errorf("embed: %w", embedding.InputErrors{{Index: 3, Err: errors.New("refused")}})
	bad, ok := docsOfRejectedChunks(writes, err, true)
	if !ok || len(bad) != 1 || bad[1] == nil {
		t.Fatalf("bad = %v, ok %v", bad, ok)
	}
	// Out of range, or another document without vectors: bisect instead.
	if _, ok := docsOfRejectedChunks(writes, embedding.InputErrors{{Index: 6, Err: errors.New("x")}}, true); ok {
		t.Error("index past the chunks accepted")
	}
	writes[2].Chunks[0].Vector = nil
	if _, ok := docsOfRejectedChunks(writes, err, true); ok {
		t.Error("a document without vectors was taken as embedded")
	}
	if _, ok := docsOfRejectedChunks(writes, errors.New("boom"), true); ok {
		t.Error("a plain error mapped to documents")
	}
}

func TestParseSourceKey(t *testing.T) {
	one := connector.TableInfo{Key: []string{"id"}}
	two := connector.TableInfo{Key: []string{"a", "b"}}
	if k, err := ParseSourceKey(one, `["x"]`); err != nil || len(k) != 1 || k[0] != `["x"]` {
		t.Errorf("one-column key: %v %v", k, err)
	}
	if k, err := ParseSourceKey(two, `["acme","7"]`); err != nil || !k.Equal(connector.Key{"acme", "7"}) {
		t.Errorf("two-column key: %v %v", k, err)
	}
	for _, bad := range []string{`acme`, `["a"]`, `["a","b","c"]`} {
		if _, err := ParseSourceKey(two, bad); err == nil {
			t.Errorf("ParseSourceKey(%q) accepted", bad)
		}
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	var b retries
	prev := time.Duration(0)
	for i := 0; i < 20; i++ {
		d := b.next()
		if d < minBackoff || d > maxBackoff*3/2 {
			t.Fatalf("wait %d = %s", i, d)
		}
		if i < 3 && d < prev/2 {
			t.Fatalf("wait %d = %s shrank from %s", i, d, prev)
		}
		prev = d
	}
}

// TestPoisonRowDeadLettered runs a pipeline against real PostgreSQL and
// Weaviate: a row the template cannot render, in one transaction with good
// rows, is dead-lettered (recorded, its old objects removed), the good rows
// are indexed, and the transaction is confirmed.
func TestPoisonRowDeadLettered(t *testing.T) {
	f := newFixture(t, "{{.title}} {{index .tags 0}}")
	run := f.pipeline(t, Config{Workers: 2, MaxBatch: 64}, nil)
	row := func(id int, title, tags string) *connector.Change { return f.row(connector.OpInsert, id, title, tags) }
	// Row 5 is first indexed, then updated to a version that cannot render:
	// its old objects must not stay behind.
	run.send(100, row(5, "five", "{a}"))
	var good []*connector.Change
	for i := 1; i <= 40; i++ {
		if i != 5 {
			good = append(good, row(i, fmt.Sprintf("row %d", i), "{x}"))
		}
	}
	run.send(200, append(good, row(5, "five", "{}"))...)
	run.waitConfirmed(200)
	run.stop()

	letters, err := f.state.DeadLetters(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 || letters[0].SourceKey != "5" || letters[0].LSN != 200 || letters[0].Attempts != DeadLetterAttempts ||
		!strings.Contains(letters[0].Error, "index out of range") {
		t.Fatalf("dead letters = %+v", letters)
	}
	objs, err := f.sink.Objects(f.ctx, f.coll, "public.t")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, o := range objs {
		keys[o.SourceKey] = true
	}
	if len(keys) != 39 || keys["5"] {
		t.Fatalf("indexed %d rows (row 5: %v); want the 39 good ones", len(keys), keys["5"])
	}
}

// The sink reports rejections in the pipeline's terms.
var _ RowRejections = (*sink.WriteError)(nil)
