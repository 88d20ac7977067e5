package pipeline

import (
	"context"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// A change whose old key the stream did not carry asks for its table to be
// read again, once per transaction, before the transaction is confirmed;
// an update still writes its new key.
func TestKeyLostChangesAskToRereadTheTable(t *testing.T) {
	f := newFixture(t, "{{.title}}")
	chunker, err := transform.NewChunker(64, 0)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []string
	tracker := checkpoint.NewTracker(0)
	p := New(Config{Workers: 2}, Deps{
		Tables: []*Table{f.table}, Embedder: embedding.NewHashEmbedder(16), Chunker: chunker,
		Sink: f.sink, State: f.state, Tracker: tracker, Log: zerolog.Nop(),
		Fetch: func(ctx context.Context, info connector.TableInfo, keys []connector.Key) (map[string]connector.Row, error) {
			return connector.FetchRows(ctx, f.pool, info, keys)
		},
		Reread: func(_ context.Context, tb *Table) error {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, tb.Collection)
			return nil
		},
	})
	r := &running{t: t, f: f, p: p, tracker: tracker, in: make(chan connector.Message, 16), done: make(chan error, 1)}
	go func() { r.done <- p.Run(f.ctx, r.in) }()

	r.send(10, f.row(connector.OpInsert, 1, "one", "{}"))
	lost := func() *connector.Change {
		return &connector.Change{Op: connector.OpDelete, Table: f.info.Name, KeyLost: true}
	}
	up := f.row(connector.OpUpdate, 2, "two", "{}")
	up.KeyLost = true
	r.send(20, lost(), lost(), up)
	r.waitConfirmed(20)
	r.send(30, lost())
	r.waitConfirmed(30)
	r.stop()

	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 || asked[0] != f.coll {
		t.Fatalf("re-reads asked: %v; want one per transaction with lost keys (2) for %s", asked, f.coll)
	}
	if got := f.texts(t); got["1"] != "one" || got["2"] != "two" || len(got) != 2 {
		t.Fatalf("indexed %v; want rows 1 and 2 (the deletes name no row)", got)
	}
}
