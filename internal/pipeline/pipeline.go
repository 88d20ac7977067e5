// Package pipeline applies the stream's changes to the index: it routes each
// change to a worker by (table, key), so that one row's changes apply in
// order while different rows run in parallel, and acknowledges each change to
// the checkpoint tracker once Weaviate has it.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// Sink is where documents go: Weaviate in production.
type Sink interface {
	// Replace writes docs' chunks and removes each row's chunks past its
	// new count; previous[i] is how many chunks docs[i]'s row had
	// (transform.UnknownChunkCount: not known, to be looked up).
	Replace(ctx context.Context, docs []*transform.Document, previous []int) error
	// Delete removes the rows' objects from tenant, or from every tenant
	// of the collection when tenant is "" (also a collection without any).
	Delete(ctx context.Context, collection, tenant, sourceTable string, keys []string) error
	// Tenants lists a multi-tenant collection's tenants (nil without).
	Tenants(ctx context.Context, collection string) ([]string, error)
	DeleteTable(ctx context.Context, collection, sourceTable string) error
	// Ready reports whether the sink answers at all: a row is blamed for a
	// failure only while it does (IsolateAttempts).
	Ready(ctx context.Context) error
}

// Config tunes the pipeline.
type Config struct {
	Workers   int // parallel appliers; each owns a share of the keys
	QueueSize int // items buffered per worker before the reader is slowed down
	// MemoryBudget bounds the bytes of row data held in queues and batches
	// (Budget); 0 leaves them unbounded.
	MemoryBudget int64
	MaxBatch     int // most changes one worker applies in one round
	// MaxWait is how long a worker that already has several changes waits
	// for more before applying them; a single change never waits.
	MaxWait    time.Duration
	EmbedBatch int // most texts per embedder call
	// RecoverUntil is the server's WAL end when the connector started
	// after an unclean stop: changes at or below it may already be in
	// Weaviate from a process that was killed before it recorded them in
	// the state, so the recorded state of their rows is not trusted: they
	// are written even when their hash equals the recorded one (Weaviate
	// may hold a newer version the state never saw), and surplus chunks
	// are found by query (transform.UnknownChunkCount). Zero, after a
	// clean stop, trusts the state throughout.
	RecoverUntil pglogrepl.LSN
}

// Pipeline applies changes of the configured tables.
type Pipeline struct {
	cfg Config
	// tables holds every mapping of each source table: a table may be
	// indexed into several collections, each kept in step on its own. It
	// is replaced, never changed, when mappings are added or retired
	// (versions.go), so the dispatcher reads it without a lock.
	tables   atomic.Pointer[tableSet]
	tablesMu sync.Mutex // serializes replacements of tables
	embedder embedding.Embedder
	chunker  *transform.Chunker
	sink     Sink
	state    State
	fetch    RowFetcher
	reread   func(ctx context.Context, t *Table) error
	tracker  *checkpoint.Tracker
	metrics  *metrics.Metrics
	budget   *Budget // bytes of row data held (budget.go); nil: unbounded
	log      zerolog.Logger
	seed     maphash.Seed

	queues         []chan item // live changes, one per worker
	backfillQueues []chan item // snapshot rows, one per worker, taken when live is empty

	stopped chan struct{} // closed when Run returns
	stopMu  sync.Mutex
	runErr  error

	applying    sync.RWMutex // held for reading while a batch applies, for writing by a truncate
	truncMu     sync.Mutex
	truncatedAt map[*Table]pglogrepl.LSN
	rereadAt    map[string]pglogrepl.LSN // last transaction that asked to re-read a table (dispatcher only)

	res resilience // failures: stalled applies, dead letters (deadletter.go)
}

// Deps are the pipeline's collaborators.
type Deps struct {
	Tables   []*Table
	Embedder embedding.Embedder
	Chunker  *transform.Chunker
	Sink     Sink
	State    State
	Fetch    RowFetcher
	Tracker  *checkpoint.Tracker
	Metrics  *metrics.Metrics // optional
	// Reread asks for a mapping's table to be read again and the rows it
	// no longer holds removed (an online backfill), for a change whose old
	// primary key the stream did not carry (connector.Change.KeyLost). It
	// must have recorded the request durably when it returns: the change
	// is acknowledged after it. Nil makes such a change a fatal error.
	Reread func(ctx context.Context, t *Table) error
	Log    zerolog.Logger
}

// New builds a pipeline.
func New(cfg Config, d Deps) *Pipeline {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 500
	}
	if cfg.EmbedBatch <= 0 {
		cfg.EmbedBatch = 128
	}
	p := &Pipeline{
		cfg:      cfg,
		embedder: d.Embedder, chunker: d.Chunker, sink: d.Sink, state: d.State,
		fetch: d.Fetch, reread: d.Reread, tracker: d.Tracker, metrics: d.Metrics, budget: NewBudget(cfg.MemoryBudget), log: d.Log, seed: maphash.MakeSeed(),
	}
	if p.metrics == nil {
		p.metrics = metrics.New()
	}
	observeEmbedder(p.embedder, p.metrics) // embed.go
	p.metrics.MemoryBudget.Set(float64(cfg.MemoryBudget))
	p.budget.Observe(func(held int64) { p.metrics.MemoryHeld.Set(float64(held)) })
	p.tables.Store(newTableSet(nil, d.Tables, nil))
	p.queues = make([]chan item, cfg.Workers)
	p.backfillQueues = make([]chan item, cfg.Workers)
	for i := range p.queues {
		p.queues[i] = make(chan item, max(1, cfg.QueueSize/cfg.Workers))
		p.backfillQueues[i] = make(chan item, max(1, cfg.MaxBatch))
	}
	p.stopped = make(chan struct{})
	p.truncatedAt = map[*Table]pglogrepl.LSN{}
	return p
}

// Budget is the pipeline's memory budget, for snapshot readers to share
// (snapshot.Config.Budget): rows they read ahead count like queued changes.
func (p *Pipeline) Budget() *Budget { return p.budget }

// item is one unit of work for a worker: make the row at key match row, or
// remove it when remove is set.
type item struct {
	table     *Table
	op        connector.Op
	key       connector.Key
	remove    bool
	row       connector.Row
	unchanged []string
	lsn       Position
	tx        *checkpoint.Txn // live changes: acknowledged to the tracker
	backfill  *sync.WaitGroup // snapshot rows: released when applied
	// unrecorded: Weaviate may hold a version of the row the state does not
	// record (BackfillRow.Unrecorded)
	unrecorded bool
	held       int64 // bytes of the budget this item holds until it is applied
}

// Run consumes messages until in is closed or ctx ends, and returns after
// every worker has finished the work it was given. A worker's fatal error
// stops the whole pipeline and is returned.
func (p *Pipeline) Run(ctx context.Context, in <-chan connector.Message) (err error) {
	defer func() {
		p.stopMu.Lock()
		p.runErr = err
		p.stopMu.Unlock()
		close(p.stopped)
	}()
	g, gctx := errgroup.WithContext(ctx)
	for i := range p.queues {
		w := &worker{p: p, queue: p.queues[i], backfill: p.backfillQueues[i], id: i}
		g.Go(func() error { return w.run(gctx) })
	}
	g.Go(func() error {
		defer func() {
			for _, q := range p.queues {
				close(q)
			}
		}()
		return p.dispatch(gctx, in)
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// route picks the worker that owns a row.
func (p *Pipeline) route(t *Table, key connector.Key) int {
	var h maphash.Hash
	h.SetSeed(p.seed)
	h.WriteString(t.SourceTable)
	for _, k := range key {
		h.WriteString(k)
		h.WriteByte(0)
	}
	return int(h.Sum64() % uint64(len(p.queues)))
}

func (p *Pipeline) dispatch(ctx context.Context, in <-chan connector.Message) error {
	send := func(it item) error {
		select {
		case p.queues[p.route(it.table, it.key)] <- it:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		var msg connector.Message
		select {
		case m, ok := <-in:
			if !ok {
				return nil
			}
			msg = m
		case <-ctx.Done():
			return ctx.Err()
		}
		switch m := msg.(type) {
		case *connector.Commit:
			p.tracker.Commit(m.CommitLSN)
		case *connector.Change:
			if m.Op == connector.OpTruncate {
				if err := p.truncate(ctx, m); err != nil {
					return err
				}
				continue
			}
			mappings := p.mappings(m.Table)
			if len(mappings) == 0 {
				continue // not configured: the publication may hold more tables than we index
			}
			p.metrics.CountReceived(mappings[0].SourceTable, m.Op.String())
			p.metrics.Lag.Received(m.CommitLSN, m.CommitTime)
			if m.KeyLost {
				if err := p.rereadTables(ctx, mappings, m); err != nil {
					return err
				}
			}
			var items []item
			for _, t := range mappings {
				items = append(items, p.itemsFor(t, m)...)
			}
			if len(items) == 0 {
				continue
			}
			// The reader waits here while the budget is spent: backpressure,
			// never a drop. The items share the change's bytes (one row,
			// however many mappings); the first holds the rest of the split.
			held, err := p.budget.Acquire(ctx, m.Row.Size()+itemOverhead*int64(len(items)))
			if err != nil {
				return err
			}
			share := held / int64(len(items))
			items[0].held = held - share*int64(len(items)-1)
			for i := 1; i < len(items); i++ {
				items[i].held = share
			}
			tx := p.tracker.Add(m.CommitLSN, len(items))
			for _, it := range items {
				it.tx = tx
				if err := send(it); err != nil {
					return err
				}
			}
		}
	}
}

// rereadTables asks for the mappings of a change whose old key the stream
// did not carry to be read again, once per table and transaction: a
// DELETE of many rows is one request.
func (p *Pipeline) rereadTables(ctx context.Context, mappings []*Table, c *connector.Change) error {
	t0 := mappings[0]
	if p.reread == nil {
		return fmt.Errorf("table %s at %s: the stream did not carry the old primary key (replica identity without it), and nothing here can read the table again; set REPLICA IDENTITY DEFAULT or FULL", t0.SourceTable, c.CommitLSN)
	}
	if p.rereadAt[t0.SourceTable] == c.CommitLSN {
		return nil
	}
	for _, t := range mappings {
		err := retry(ctx, p.log, "ask to re-read "+t.SourceTable+" for "+t.Collection, func() error { return p.reread(ctx, t) })
		if err != nil {
			return fmt.Errorf("table %s at %s: asking to re-read it: %w", t.SourceTable, c.CommitLSN, err)
		}
	}
	if p.rereadAt == nil {
		p.rereadAt = map[string]pglogrepl.LSN{}
	}
	p.rereadAt[t0.SourceTable] = c.CommitLSN
	p.log.Warn().Str("table", t0.SourceTable).Stringer("lsn", c.CommitLSN).Str("op", c.Op.String()).
		Msg("the stream did not carry the old primary key of a change (replica identity without it): the table is read again to find the rows it removed; set REPLICA IDENTITY DEFAULT or FULL")
	return nil
}

// itemOverhead is what an item costs beyond its row: the item, the key, and
// the document, chunks and request it turns into while it applies.
const itemOverhead = 512

// itemsFor splits a change into per-key work. A primary-key change becomes a
// removal of the old key and a write of the new one: each goes to the worker
// that owns its key, so a later change of either key cannot overtake it.
func (p *Pipeline) itemsFor(t *Table, c *connector.Change) []item {
	lsn := Position{LSN: c.CommitLSN, Time: c.CommitTime}
	switch c.Op {
	case connector.OpDelete:
		if c.KeyLost {
			return nil // which row is unknown: the table is read again (rereadTables)
		}
		return []item{{table: t, op: c.Op, key: c.Key, remove: true, lsn: lsn}}
	case connector.OpUpdate:
		if len(c.OldKey) > 0 && !c.OldKey.Equal(c.Key) {
			return []item{
				{table: t, op: c.Op, key: c.OldKey, remove: true, lsn: lsn},
				{table: t, op: c.Op, key: c.Key, row: c.Row, unchanged: c.Unchanged, lsn: lsn},
			}
		}
	}
	return []item{{table: t, op: c.Op, key: c.Key, row: c.Row, unchanged: c.Unchanged, lsn: lsn}}
}

// truncate empties the index of the truncated tables. It runs alone: it
// waits until every earlier change is applied, so that none of them can
// write a row back after the table was emptied.
func (p *Pipeline) truncate(ctx context.Context, c *connector.Change) error {
	if err := p.tracker.WaitIdle(ctx); err != nil {
		return err
	}
	tx := p.tracker.Add(c.CommitLSN, 1)
	for _, name := range c.Tables {
		mappings := p.mappings(name)
		if len(mappings) == 0 {
			continue
		}
		p.metrics.CountReceived(mappings[0].SourceTable, c.Op.String())
		for _, t := range mappings {
			if err := p.truncateMapping(ctx, t, c.CommitLSN); err != nil {
				return err
			}
		}
		p.metrics.Changes.WithLabelValues(mappings[0].SourceTable, c.Op.String(), metrics.OutcomeApplied).Inc()
	}
	p.tracker.Done(tx, 1)
	return nil
}

// truncateMapping empties one mapping of a table truncated at lsn.
func (p *Pipeline) truncateMapping(ctx context.Context, t *Table, lsn pglogrepl.LSN) error {
	p.truncMu.Lock()
	p.truncatedAt[t] = lsn
	p.truncMu.Unlock()
	p.applying.Lock() // let batches that started before the mark finish
	p.applying.Unlock()
	err := retry(ctx, p.log, "truncate "+t.SourceTable+" in "+t.Collection, func() error {
		if err := p.sink.DeleteTable(ctx, t.Collection, t.SourceTable); err != nil {
			return err
		}
		return p.state.DeleteTable(ctx, t.Collection, t.SourceTable)
	})
	if err != nil {
		return fmt.Errorf("truncate %s in %s: %w", t.SourceTable, t.Collection, err)
	}
	return nil
}
