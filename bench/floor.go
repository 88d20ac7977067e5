package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/weaviate/weaviate/entities/models"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// The freshness floor: the least any connector does between a commit and
// Weaviate's acknowledgement on this machine. directWriter reads its own
// slot with pglogrepl, turns each committed insert into the object the
// connector would write (same properties, a vector computed before the run)
// and sends whatever arrived while the previous request was in flight as
// one batch, one request at a time: no state, no embedding, no
// checkpointing, no per-key ordering. The pipeline's percentiles are
// reported as ratios to the floor's, measured in the same run at the same
// rates, so "not reachable on this machine" is a measurement.
type directWriter struct {
	w       *sink.Weaviate
	coll    string
	vectors map[int64][]float32 // by row id, precomputed
	gen     rowGen
	samples sampleSet
	n       atomic.Int64
	// requests and their total time, for the mean batch and latency.
	requests atomic.Int64
	sendNS   atomic.Int64
}

// floor measures the direct writer at rate for the freshness section's
// duration on a fresh database of its own, and returns its samples
// (seconds from commit to acknowledgement).
func (b *bench) floor(ctx context.Context, rate int, nextID *atomic.Int64) ([]float64, error) {
	const db, coll = "bench_floor", "BenchFloor"
	dsn, err := b.database(ctx, db)
	if err != nil {
		return nil, err
	}
	defer b.dropDatabase(db)
	defer b.weav.settle(context.WithoutCancel(ctx), coll)
	if err := execSQL(ctx, dsn, "CREATE PUBLICATION bench_floor FOR TABLE public.docs"); err != nil {
		return nil, err
	}
	w, err := sink.New(ctx, sink.Config{URL: b.wv.URL(), GRPC: b.wv.GRPC()})
	if err != nil {
		return nil, err
	}
	defer w.Close()
	if _, err := w.EnsureCollection(ctx, benchCollectionSpec(coll)); err != nil {
		return nil, err
	}
	gen := rowGen{words: b.o.Words}
	total := int(float64(rate) * b.o.FreshFor.Seconds())
	first := nextID.Load() + 1
	d := &directWriter{w: w, coll: coll, gen: gen, vectors: map[int64][]float32{}}
	emb := embedding.NewHashEmbedder(384)
	for id := first; id < first+int64(total)+50; id++ {
		r := gen.row(id)
		v, err := emb.Embed(ctx, []string{r[1].(string) + "\n\n" + r[2].(string)})
		if err != nil {
			return nil, err
		}
		d.vectors[id] = v[0]
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn+"&replication=database")
	if err != nil {
		return nil, fmt.Errorf("floor: replication connection: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	slot, err := pglogrepl.CreateReplicationSlot(ctx, conn, "bench_floor", "pgoutput", pglogrepl.CreateReplicationSlotOptions{Temporary: true})
	if err != nil {
		return nil, fmt.Errorf("floor: create slot: %w", err)
	}
	start, err := pglogrepl.ParseLSN(slot.ConsistentPoint)
	if err != nil {
		return nil, err
	}
	err = pglogrepl.StartReplication(ctx, conn, "bench_floor", start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'bench_floor'"}})
	if err != nil {
		return nil, fmt.Errorf("floor: start replication: %w", err)
	}
	ready := make(chan floorItem, 1<<16)
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errc <- d.read(rctx, conn, start, ready) }()
	go func() { defer wg.Done(); errc <- d.send(rctx, ready) }()

	// Warm-up, then the measured rate.
	warm, err := writeSteady(ctx, dsn, gen, nextID, 50, 20, nil)
	if err != nil {
		return nil, err
	}
	if err := d.wait(ctx, int64(warm), errc); err != nil {
		return nil, err
	}
	d.samples.record()
	n, err := writeSteady(ctx, dsn, gen, nextID, rate, total, nil)
	if err != nil {
		return nil, err
	}
	if err := d.wait(ctx, int64(warm+n), errc); err != nil {
		return nil, err
	}
	samples := d.samples.stop()
	if r := d.requests.Load(); r > 0 {
		logf("freshness floor at %d rows/s: %d requests, mean batch %.1f, mean request %.1f ms", rate, r,
			float64(d.n.Load())/float64(r), float64(d.sendNS.Load())/float64(r)/1e6)
	}
	cancel()
	wg.Wait()
	return samples, nil
}

// floorItem is one committed row's object and its commit time.
type floorItem struct {
	obj    *models.Object
	commit time.Time
}

// read decodes the stream: inserts are kept until their commit, then
// handed to the sender.
func (d *directWriter) read(ctx context.Context, conn *pgconn.PgConn, pos pglogrepl.LSN, out chan<- floorItem) error {
	var pending []*models.Object
	nextStatus := time.Now()
	for {
		if time.Now().After(nextStatus) {
			if err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: pos}); err != nil {
				return nil
			}
			nextStatus = time.Now().Add(time.Second)
		}
		rctx, cancel := context.WithDeadline(ctx, nextStatus)
		raw, err := conn.ReceiveMessage(rctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("floor: receive: %w", err)
		}
		cd, ok := raw.(*pgproto3.CopyData)
		if !ok || len(cd.Data) == 0 || cd.Data[0] != pglogrepl.XLogDataByteID {
			continue
		}
		xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
		if err != nil {
			return err
		}
		msg, err := pglogrepl.Parse(xld.WALData)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pglogrepl.InsertMessage:
			obj, err := d.object(m.Tuple)
			if err != nil {
				return err
			}
			pending = append(pending, obj)
		case *pglogrepl.CommitMessage:
			for _, o := range pending {
				out <- floorItem{obj: o, commit: m.CommitTime}
			}
			pending = pending[:0]
			pos = m.TransactionEndLSN
		}
	}
}

// object is the connector's object for an inserted docs row (id, title,
// body, author, category, updated_at).
func (d *directWriter) object(t *pglogrepl.TupleData) (*models.Object, error) {
	if t == nil || len(t.Columns) < 5 {
		return nil, errors.New("floor: insert without the docs columns")
	}
	col := func(i int) string { return string(t.Columns[i].Data) }
	id, err := strconv.ParseInt(col(0), 10, 64)
	if err != nil {
		return nil, err
	}
	text := col(1) + "\n\n" + col(2)
	meta := map[string]any{"author": col(3), "category": col(4)}
	key := col(0)
	return &models.Object{
		Class: d.coll, ID: sink.ObjectID(d.coll, "public.docs", key, 0), Vector: d.vectors[id],
		Properties: map[string]any{
			sink.PropSourceTable: "public.docs", sink.PropSourceKey: key,
			sink.PropChunkIndex: int64(0), sink.PropChunkCount: int64(1), sink.PropText: text,
			sink.PropContentHash: transform.ContentHash(text, meta, "hash/v1/384"),
			sink.PropSourceLSN:   "0/0", "author": col(3), "category": col(4),
		},
	}, nil
}

// send writes whatever is ready as one batch, one request in flight.
func (d *directWriter) send(ctx context.Context, in <-chan floorItem) error {
	client := d.w.Client()
	for {
		var batch []floorItem
		select {
		case <-ctx.Done():
			return nil
		case it := <-in:
			batch = append(batch, it)
		}
	drain:
		for {
			select {
			case it := <-in:
				batch = append(batch, it)
			default:
				break drain
			}
		}
		objs := make([]*models.Object, len(batch))
		for i, it := range batch {
			objs[i] = it.obj
		}
		sent := time.Now()
		resp, err := client.Batch().ObjectsBatcher().WithObjects(objs...).Do(ctx)
		d.requests.Add(1)
		d.sendNS.Add(int64(time.Since(sent)))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("floor: batch of %d: %w", len(objs), err)
		}
		for i := range resp {
			if r := resp[i].Result; r != nil && r.Errors != nil && len(r.Errors.Error) > 0 {
				return fmt.Errorf("floor: object rejected: %s", r.Errors.Error[0].Message)
			}
		}
		now := time.Now()
		for _, it := range batch {
			d.samples.observe(now.Sub(it.commit).Seconds())
		}
		d.n.Add(int64(len(batch)))
	}
}

// wait returns once n rows were acknowledged.
func (d *directWriter) wait(ctx context.Context, n int64, errc <-chan error) error {
	deadline := time.Now().Add(2 * time.Minute)
	for d.n.Load() < n {
		select {
		case err := <-errc:
			if err != nil {
				return err
			}
			return errors.New("floor: stopped")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("floor: %d of %d rows acknowledged after 2m", d.n.Load(), n)
		}
	}
	return nil
}
