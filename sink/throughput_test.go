package sink

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weaviate/weaviate/entities/models"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// TestWriteThroughput compares Write with a plain client gRPC batch import
// of the same objects (384-dimensional vectors). It is a measurement, not a
// check of the code, so it only runs with CDC_SINK_BENCH=1.
func TestWriteThroughput(t *testing.T) {
	if os.Getenv("CDC_SINK_BENCH") == "" {
		t.Skip("set CDC_SINK_BENCH=1 to measure")
	}
	const (
		rows   = 2000
		dims   = 384
		rounds = 6
	)
	w := newTestSink(t)
	if p, err := strconv.Atoi(os.Getenv("CDC_SINK_PARALLEL")); err == nil {
		w.parallel = p
	}
	ctx := testCtx(t)
	text := strings.Repeat("lorem ipsum dolor sit amet ", 30)
	makeDocs := func(coll string) []*transform.Document {
		docs := make([]*transform.Document, rows)
		for i := range docs {
			d := testDoc(coll, testTable, fmt.Sprint(i), 1, dims, text)
			d.Metadata = map[string]any{"author": "someone", "views": int64(i)}
			docs[i] = d
		}
		return docs
	}
	spec := func(name string) CollectionSpec {
		return CollectionSpec{Name: name, Metadata: []transform.MetadataField{
			{Name: "author", Kind: transform.KindText}, {Name: "views", Kind: transform.KindInt},
		}}
	}
	var sinkDur, plainDur time.Duration
	var ratios []float64
	for r := 0; r < rounds; r++ {
		cs, cp := testenv.CollectionName(t), testenv.CollectionName(t)
		for _, c := range []string{cs, cp} {
			if _, err := w.EnsureCollection(ctx, spec(c)); err != nil {
				t.Fatal(err)
			}
		}
		// Plain client: objects built beforehand, batches of the same size.
		docs := makeDocs(cp)
		objs := make([]*models.Object, len(docs))
		for i, d := range docs {
			objs[i] = &models.Object{
				Class: cp, ID: ObjectID(cp, d.SourceTable, d.SourceKey, 0), Vector: d.Chunks[0].Vector,
				Properties: map[string]any{
					PropSourceTable: d.SourceTable, PropSourceKey: d.SourceKey, PropChunkIndex: 0,
					PropChunkCount: 1, PropText: d.Chunks[0].Text, PropContentHash: d.ContentHash,
					PropSourceLSN: d.LSN.String(), "author": "someone", "views": int64(i),
				},
			}
		}
		plainStart := time.Now()
		for s := 0; s < len(objs); s += DefaultBatchSize {
			resp, err := w.client.Batch().ObjectsBatcher().WithObjects(objs[s:min(s+DefaultBatchSize, len(objs))]...).Do(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range resp {
				if msg, failed := objectFailure(&resp[i]); failed {
					t.Fatal(msg)
				}
			}
		}
		plain := time.Since(plainStart)

		docs = makeDocs(cs)
		start := time.Now()
		if err := w.Write(ctx, docs); err != nil {
			t.Fatal(err)
		}
		sinkRound := time.Since(start)
		plainDur += plain
		sinkDur += sinkRound
		ratios = append(ratios, plain.Seconds()/sinkRound.Seconds())
	}
	sort.Float64s(ratios)
	n := float64(rows * rounds)
	sinkRate, plainRate := n/sinkDur.Seconds(), n/plainDur.Seconds()
	t.Logf("parallel %d: Write: %.0f objects/s; plain client batch: %.0f objects/s; ratio %.2f (median of rounds %.2f, rounds %.2f)",
		w.parallel, sinkRate, plainRate, sinkRate/plainRate, ratios[len(ratios)/2], ratios)
}
