package pipeline

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

// A row that makes its whole request fail without a rejection of its own
// (here a document whose objects exceed the Weaviate's gRPC message limit,
// which refuses the request as a whole; a proxy's 413 looks alike) is found by
// applying the batch in halves, and dead-lettered once it fails alone while
// the other rows are applied.
func TestRowFailingItsBatchIsIsolated(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := testenv.StartWeaviate(ctx, testenv.WeaviateOptions{Env: []string{"GRPC_MAX_MESSAGE_SIZE=16384"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	f := newFixtureOn(t, "{{.title}}", w.URL(), w.GRPC())
	run := f.pipeline(t, Config{MaxBatch: 64}, nil)
	var changes []*connector.Change
	for id := 1; id <= 4; id++ {
		title := fmt.Sprintf("row %d", id)
		if id == 3 {
			title = strings.Repeat("a long document of many chunks ", 1000)
		}
		changes = append(changes, f.row(connector.OpInsert, id, title, "{}"))
	}
	run.send(100, changes...)
	run.waitConfirmed(100)
	run.stop()
	texts := f.texts(t)
	if _, ok := texts["3"]; ok {
		t.Error("row 3 is indexed")
	}
	if len(texts) != 3 {
		t.Errorf("%d rows indexed; want the 3 others", len(texts))
	}
	letters, err := f.state.DeadLetters(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 || letters[0].SourceKey != "3" {
		t.Errorf("dead letters %+v; want row 3's", letters)
	}
}
