package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/migrations"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// fixture is a table t (id int, title text, tags text[]) in a fresh
// database, its state, and a fresh collection in the test Weaviate.
type fixture struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	state *state.Store
	info  connector.TableInfo
	coll  string
	table *Table
	sink  *sink.Weaviate
}

func newFixture(t *testing.T, template string) *fixture {
	t.Helper()
	url, grpc := testenv.Weaviate(t)
	return newFixtureOn(t, template, url, grpc)
}

// newFixtureOn is newFixture against the given Weaviate.
func newFixtureOn(t *testing.T, template, url, grpc string) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	pool, err := pgxpool.New(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, title text, tags text[])`); err != nil {
		t.Fatal(err)
	}
	if err := migrations.Apply(ctx, pool, "cdc_indexer"); err != nil {
		t.Fatal(err)
	}
	infos, err := connector.DescribeTables(ctx, pool, []connector.TableName{{Schema: "public", Name: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	coll := testenv.CollectionName(t)
	r, err := transform.NewRenderer(infos[0], coll, template, nil, "hash")
	if err != nil {
		t.Fatal(err)
	}
	w, err := sink.New(ctx, sink.Config{URL: url, GRPC: grpc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if _, err := w.EnsureCollection(ctx, sink.CollectionSpec{Name: coll, Vectorizer: "none"}); err != nil {
		t.Fatal(err)
	}
	return &fixture{ctx: ctx, pool: pool, state: state.NewStore(pool, "cdc_indexer"), info: infos[0],
		coll: coll, table: NewTable(infos[0], coll, r), sink: w}
}

// pipeline starts a pipeline over the fixture's table with st as its state
// (the fixture's store when nil); send feeds it transactions, and stop
// ends it.
func (f *fixture) pipeline(t *testing.T, cfg Config, st State) *running {
	t.Helper()
	if st == nil {
		st = f.state
	}
	chunker, err := transform.NewChunker(64, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{t: t, f: f, tracker: checkpoint.NewTracker(0), in: make(chan connector.Message, 256), done: make(chan error, 1)}
	r.p = New(cfg, Deps{
		Tables: []*Table{f.table}, Embedder: embedding.NewHashEmbedder(16), Chunker: chunker,
		Sink: f.sink, State: st, Tracker: r.tracker, Log: zerolog.Nop(),
		Fetch: func(ctx context.Context, info connector.TableInfo, keys []connector.Key) (map[string]connector.Row, error) {
			return connector.FetchRows(ctx, f.pool, info, keys)
		},
	})
	go func() { r.done <- r.p.Run(f.ctx, r.in) }()
	return r
}

type running struct {
	t       *testing.T
	f       *fixture
	p       *Pipeline
	tracker *checkpoint.Tracker
	in      chan connector.Message
	done    chan error
}

// row is a change of t's row id as the stream decodes it.
func (f *fixture) row(op connector.Op, id int, title, tags string) *connector.Change {
	tm := connector.NewTypeMap([]connector.TableInfo{f.info})
	return &connector.Change{Op: op, Table: f.info.Name, Key: connector.Key{fmt.Sprint(id)},
		Row: connector.Row{
			"id":    tm.Decode(23, []byte(fmt.Sprint(id))),
			"title": tm.Decode(25, []byte(title)),
			"tags":  tm.Decode(1009, []byte(tags)),
		}}
}

// send delivers one transaction committed at lsn.
func (r *running) send(lsn pglogrepl.LSN, changes ...*connector.Change) {
	for _, c := range changes {
		c.CommitLSN = lsn
		r.in <- c
	}
	r.in <- &connector.Commit{CommitLSN: lsn}
}

// waitConfirmed fails the test unless everything up to lsn is applied.
func (r *running) waitConfirmed(lsn pglogrepl.LSN) {
	r.t.Helper()
	if err := r.tracker.WaitConfirmed(r.f.ctx, lsn); err != nil {
		r.t.Fatalf("transaction %s not confirmed: %v", lsn, err)
	}
}

func (r *running) stop() {
	r.t.Helper()
	close(r.in)
	if err := <-r.done; err != nil {
		r.t.Fatalf("pipeline: %v", err)
	}
}

// texts returns the text of every chunk in Weaviate, by source key.
func (f *fixture) texts(t *testing.T) map[string]string {
	t.Helper()
	objs, err := f.sink.Objects(f.ctx, f.coll, f.table.SourceTable)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range objs {
		out[o.SourceKey] += o.Text
	}
	return out
}
