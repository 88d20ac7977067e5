package snapshot

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
)

// Applier indexes the rows of one chunk read at `at` and returns once every
// row is applied (or dropped as older than what the index holds).
// *pipeline.Pipeline is the one that indexes.
type Applier interface {
	Backfill(ctx context.Context, t *pipeline.Table, rows []pipeline.BackfillRow, at pglogrepl.LSN) error
}

// Defaults of Config.
const (
	DefaultReaders   = 3
	MaxReaders       = 16
	DefaultChunkRows = 2000
)

// countBelow is the size under which a table's rows are counted exactly
// rather than estimated from pg_class.reltuples.
const countBelow = 1_000_000

// Config says how to read and where the rows go.
type Config struct {
	DSN       string
	Readers   int // parallel readers, each a connection of its own
	ChunkRows int // rows per chunk (keyset page)
	// Store records the progress of each key range; nil reads without
	// recording anything (a dry run).
	Store    *Store
	Apply    Applier
	Progress *Progress // optional
	Log      zerolog.Logger
	// Budget is the pipeline's memory budget: a reader takes each row's
	// bytes as it reads it and hands them over with the row
	// (pipeline.BackfillRow.Held), so rows read ahead count like queued
	// changes. A chunk ends early when the budget is spent. Optional.
	Budget *pipeline.Budget
	// Remove, when set (with Store), takes rows out of the index: once a
	// table is read to its end, the rows the state holds that the snapshot
	// does not are removed (they were deleted while no stream delivered
	// it, e.g. before the slot was recreated, or left the table without a
	// row change, e.g. in a detached partition). While a stream applies
	// changes, Remove must not remove a row a change after the snapshot
	// wrote: the running connector passes them to the pipeline's backfill
	// lane (pipeline.BackfillRow.Gone), which checks that.
	Remove func(ctx context.Context, t *pipeline.Table, keys []string) error
	// Keys, when set, limits the backfill to the rows with these source
	// keys in every table of the run (runKeys): one reader, no recorded
	// progress, no Remove pass.
	Keys []string
}

// Result is what the backfill of one table did.
type Result struct {
	Table      *pipeline.Table
	RowsRead   int64 // rows read (and passed to the index) by this run
	RowsBefore int64 // rows an earlier, interrupted run had indexed
	Resumed    bool
	Removed    int64 // indexed rows removed because the table no longer holds them
	Elapsed    time.Duration
	At         pglogrepl.LSN // snapshot point of this run's reads
}

// RowsPerSecond is the table's read-and-index rate of this run.
func (r Result) RowsPerSecond() float64 { return rowsPerSecond(r.RowsRead, r.Elapsed) }

// Run backfills tables one after another, each split into key ranges that
// Readers connections read in parallel, all in the snapshot x. A nil x
// reads in a snapshot of its own that is not tied to any slot: only for a
// dry run. Run returns the results of the tables it finished.
func Run(ctx context.Context, cfg Config, x *Export, tables []*pipeline.Table) ([]Result, error) {
	if cfg.Readers <= 0 {
		cfg.Readers = DefaultReaders
	}
	cfg.Readers = min(cfg.Readers, MaxReaders)
	if cfg.Keys != nil {
		cfg.Readers = 1
	}
	if cfg.ChunkRows <= 0 {
		cfg.ChunkRows = DefaultChunkRows
	}
	for _, t := range tables {
		if len(t.Info.Key) == 0 {
			return nil, fmt.Errorf("table %s has %w: a snapshot pages through a table by its primary key", t.SourceTable, connector.ErrNoPrimaryKey)
		}
	}
	var at pglogrepl.LSN
	if x != nil {
		at = x.At
	}
	readers, err := openReaders(ctx, cfg.DSN, cfg.Readers, x)
	if err != nil {
		return nil, err
	}
	defer closeReaders(ctx, readers)
	// Every reader imported the snapshot: a temporary slot can go.
	x.Release(ctx)

	var results []Result
	for _, t := range tables {
		var r Result
		var err error
		if cfg.Keys != nil {
			r, err = runKeys(ctx, cfg, readers[0], t, at, cfg.Keys)
		} else {
			r, err = runTable(ctx, cfg, readers, t, at)
		}
		if err != nil {
			return results, fmt.Errorf("snapshot of %s: %w", t.SourceTable, err)
		}
		results = append(results, r)
	}
	return results, nil
}

// reader is one connection holding a REPEATABLE READ transaction in the
// shared snapshot.
type reader struct {
	conn *pgx.Conn
	tx   pgx.Tx
	// rowBytes is the mean size of the rows of the last chunk: it sizes the
	// next chunk to a fair share of the budget, so that a table of big rows
	// is not read 2,000 rows at a time only to stop early.
	rowBytes int64
}

func openReaders(ctx context.Context, dsn string, n int, x *Export) (_ []*reader, err error) {
	var readers []*reader
	defer func() {
		if err != nil {
			closeReaders(ctx, readers)
		}
	}()
	name := ""
	if x != nil {
		name = x.Name
	}
	for i := 0; i < n; i++ {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("postgres.dsn: reader connection: %w", err)
		}
		r := &reader{conn: conn}
		readers = append(readers, r)
		// A reader idles in its transaction while the index takes a chunk,
		// which under load may take a while.
		if _, err := conn.Exec(ctx, "SET idle_in_transaction_session_timeout = 0"); err != nil {
			return nil, fmt.Errorf("reader connection: %w", err)
		}
		if r.tx, err = conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}); err != nil {
			return nil, fmt.Errorf("begin snapshot transaction: %w", err)
		}
		if name == "" {
			// A snapshot of its own, shared by the readers.
			if err := r.tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&name); err != nil {
				return nil, fmt.Errorf("export snapshot: %w", err)
			}
			if !snapshotName.MatchString(name) {
				return nil, fmt.Errorf("unexpected exported snapshot name %q", name)
			}
			continue
		}
		if _, err := r.tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+name+"'"); err != nil {
			return nil, fmt.Errorf("import snapshot %s: %w", name, err)
		}
	}
	return readers, nil
}

func closeReaders(ctx context.Context, readers []*reader) {
	cctx, cancel := closeContext(ctx)
	defer cancel()
	for _, r := range readers {
		if r.tx != nil {
			_ = r.tx.Rollback(cctx)
		}
		_ = r.conn.Close(cctx)
	}
}

// runTable reads one table: it continues the recorded key ranges if an
// earlier run left some unfinished, and otherwise splits the table afresh.
func runTable(ctx context.Context, cfg Config, readers []*reader, t *pipeline.Table, at pglogrepl.LSN) (Result, error) {
	start := time.Now()
	// The table as it is now: columns may have been renamed since the
	// connector described it at its start (the stream follows such
	// renames; a read by the old names would fail). A table renamed since
	// is read by its configured name, and fails with that name.
	info := t.Info
	if now, err := connector.DescribeTables(ctx, readers[0].tx, []connector.TableName{t.Info.Name}); err == nil && len(now[0].Key) > 0 {
		info = now[0]
	}
	q := newTableQuery(t, info)
	res := Result{Table: t, At: at}
	total, err := readers[0].estimate(ctx, t)
	if err != nil {
		return res, err
	}

	var parts []Part
	if cfg.Store != nil {
		if parts, err = cfg.Store.Parts(ctx, t.Collection, t.SourceTable); err != nil {
			return res, err
		}
		// The partitions this read covers: the running connector backfills
		// the table when they change (partitions.go).
		leaves, err := connector.Leaves(ctx, readers[0].tx, t.Info.Name)
		if err != nil {
			return res, err
		}
		if len(leaves) > 0 {
			if err := cfg.Store.RecordPartitionSet(ctx, t.SourceTable, LeafNames(leaves)); err != nil {
				return res, err
			}
		}
	}
	unfinished := 0
	for _, p := range parts {
		if !p.Done {
			unfinished++
		}
		res.RowsBefore += p.RowsDone
	}
	if unfinished > 0 {
		res.Resumed = true
		cfg.Log.Info().Str("table", t.SourceTable).Int64("rows_before", res.RowsBefore).
			Int("parts_left", unfinished).Int("parts", len(parts)).Stringer("snapshot_lsn", at).
			Msg("resuming the snapshot of an earlier run: continuing after its last indexed keys, in a new snapshot")
	} else {
		res.RowsBefore = 0
		if parts, err = readers[0].split(ctx, q, t, total, len(readers), cfg.ChunkRows); err != nil {
			return res, err
		}
		if cfg.Store != nil {
			if err := cfg.Store.StartParts(ctx, parts, at); err != nil {
				return res, err
			}
		}
		cfg.Log.Info().Str("table", t.SourceTable).Str("collection", t.Collection).Int64("rows_estimate", total).
			Int("parts", len(parts)).Stringer("snapshot_lsn", at).Msg("snapshot started")
	}
	name := t.SourceTable
	cfg.Progress.Start(name, total, res.RowsBefore)

	work := make(chan *Part, len(parts))
	for i := range parts {
		if !parts[i].Done {
			work <- &parts[i]
		}
	}
	close(work)
	counts := make([]int64, len(readers))
	g, gctx := errgroup.WithContext(ctx)
	for i, r := range readers {
		g.Go(func() error {
			for p := range work {
				n, err := r.readPart(gctx, cfg, q, p, at, res.Resumed)
				counts[i] += n
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	err = g.Wait()
	for _, n := range counts {
		res.RowsRead += n
	}
	cfg.Progress.Finish(name)
	if err == nil && cfg.Store != nil && cfg.Remove != nil {
		res.Removed, err = readers[0].sweep(ctx, cfg, t, info)
	}
	res.Elapsed = time.Since(start)
	if err != nil {
		return res, err
	}
	cfg.Log.Info().Str("table", t.SourceTable).Int64("rows_read", res.RowsRead).Int64("rows_before", res.RowsBefore).
		Int64("rows_indexed", res.RowsRead+res.RowsBefore).Int64("rows_removed", res.Removed).Dur("elapsed", res.Elapsed.Round(time.Millisecond)).
		Float64("rows_per_second", roundRate(res.RowsPerSecond())).Bool("resumed", res.Resumed).
		Stringer("snapshot_lsn", at).Msg("snapshot of table done")
	return res, nil
}

func roundRate(r float64) float64 { return float64(int64(r*10)) / 10 }

// readPart pages through one key range, chunk by chunk: read, index, record.
//
// In a resumed snapshot, the first chunk of a part is the one an earlier,
// stopped run may have been indexing: Weaviate may hold its rows in
// versions the state never recorded, so they are marked Unrecorded.
func (r *reader) readPart(ctx context.Context, cfg Config, q *tableQuery, p *Part, at pglogrepl.LSN, resumed bool) (int64, error) {
	var read int64
	unrecorded := resumed // the first chunk only
	for !p.Done {
		after := p.Last
		if after == nil {
			after = p.Lower
		}
		limit := r.chunkLimit(cfg)
		rows, last, cut, err := r.chunk(ctx, cfg.Budget, q, after, p.Upper, limit)
		if err != nil {
			return read, err
		}
		done := !cut && len(rows) < limit
		if unrecorded {
			for i := range rows {
				rows[i].Unrecorded = true
			}
			unrecorded = false
		}
		if len(rows) > 0 {
			if err := cfg.Apply.Backfill(ctx, q.t, rows, at); err != nil {
				return read, err
			}
		}
		if cfg.Store != nil {
			// The chunk is indexed: record it even if the snapshot is being
			// stopped, so that a resumed one does not read it again.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			err := cfg.Store.SaveChunk(sctx, p, last, len(rows), done, at)
			cancel()
			if err != nil {
				return read, err
			}
		} else {
			if last != nil {
				p.Last = last
			}
			p.RowsDone += int64(len(rows))
			p.Done = done
		}
		read += int64(len(rows))
		cfg.Progress.Add(q.t.SourceTable, len(rows))
	}
	return read, nil
}

// chunk reads up to limit rows with keys after `after` (nil: from the first)
// and at most upper (nil: to the last), in key order, and returns them with
// the last one's key.
func (r *reader) chunk(ctx context.Context, budget *pipeline.Budget, q *tableQuery, after, upper connector.Key, limit int) (out []pipeline.BackfillRow, last connector.Key, cut bool, err error) {
	args := []any{connector.TextResult}
	for _, k := range after {
		args = append(args, k)
	}
	for _, k := range upper {
		args = append(args, k)
	}
	defer func() {
		if err != nil {
			for _, row := range out {
				budget.Release(row.Held)
			}
			out = nil
		}
	}()
	rows, err := r.tx.Query(ctx, q.chunkSQL(after != nil, upper != nil, limit), args...)
	if err != nil {
		return nil, nil, false, fmt.Errorf("read %s: %w", q.t.SourceTable, err)
	}
	defer rows.Close()
	var bytes int64
	for rows.Next() {
		row, key, err := q.tm.DecodeRow(&q.info, rows.RawValues())
		if err != nil {
			return out, nil, false, err
		}
		size := row.Size()
		held, ok := budget.TryAcquire(size)
		if !ok {
			if len(out) > 0 {
				// The budget is spent: index what was read, read on later.
				cut = true
				break
			}
			// Nothing held by this reader: waiting cannot deadlock, what
			// holds the budget is queued in the pipeline and will be applied.
			if held, err = budget.Acquire(ctx, size); err != nil {
				return out, nil, false, err
			}
		}
		bytes += size
		out = append(out, pipeline.BackfillRow{Key: key, Row: row, Held: held})
	}
	if !cut {
		if err := rows.Err(); err != nil {
			return out, nil, false, fmt.Errorf("read %s: %w", q.t.SourceTable, err)
		}
	}
	if len(out) == 0 {
		return nil, nil, false, nil
	}
	r.rowBytes = bytes / int64(len(out))
	return out, out[len(out)-1].Key, cut, nil
}

// chunkLimit is how many rows the next chunk reads: ChunkRows, or fewer when
// that many rows of the size seen so far would take more than a fair share
// (half the budget split among the readers).
func (r *reader) chunkLimit(cfg Config) int {
	if cfg.Budget.Total() == 0 || r.rowBytes == 0 {
		return cfg.ChunkRows
	}
	share := cfg.Budget.Total() / int64(2*cfg.Readers)
	return int(max(1, min(int64(cfg.ChunkRows), share/r.rowBytes)))
}

// sweep removes from the index the rows the state holds that the
// snapshot does not, and returns how many.
func (r *reader) sweep(ctx context.Context, cfg Config, t *pipeline.Table, info connector.TableInfo) (int64, error) {
	const page = 1000
	var removed int64
	after := (*string)(nil)
	for {
		indexed, err := cfg.Store.IndexedKeys(ctx, t.Collection, t.SourceTable, after, page)
		if err != nil || len(indexed) == 0 {
			return removed, err
		}
		keys := make([]connector.Key, 0, len(indexed))
		for _, s := range indexed {
			if k, err := pipeline.ParseSourceKey(info, s); err == nil {
				keys = append(keys, k)
			}
		}
		present, err := connector.FetchRows(ctx, r.tx, info, keys)
		if err != nil {
			return removed, err
		}
		var gone []string
		for _, s := range indexed {
			if _, ok := present[s]; !ok {
				gone = append(gone, s)
			}
		}
		if len(gone) > 0 {
			if err := cfg.Remove(ctx, t, gone); err != nil {
				return removed, fmt.Errorf("remove %d rows of %s that no longer exist: %w", len(gone), t.SourceTable, err)
			}
			removed += int64(len(gone))
		}
		if len(indexed) < page {
			return removed, nil
		}
		after = &indexed[len(indexed)-1]
	}
}

// estimate is the table's row count: exact for small tables, else
// pg_class.reltuples.
func (r *reader) estimate(ctx context.Context, t *pipeline.Table) (int64, error) {
	var rel float64
	err := r.tx.QueryRow(ctx, "SELECT reltuples::float8 FROM pg_catalog.pg_class WHERE oid = $1::text::regclass", t.Info.Name.String()).Scan(&rel)
	if err != nil {
		return 0, fmt.Errorf("estimate rows of %s: %w", t.SourceTable, err)
	}
	if rel >= countBelow {
		return int64(rel), nil
	}
	var n int64
	if err := r.tx.QueryRow(ctx, "SELECT count(*) FROM "+t.Info.Name.String()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count rows of %s: %w", t.SourceTable, err)
	}
	return n, nil
}

// split cuts a table into up to n key ranges of similar size, sampling the
// primary key in the snapshot; a table of a few chunks stays one range.
func (r *reader) split(ctx context.Context, q *tableQuery, t *pipeline.Table, total int64, n, chunkRows int) ([]Part, error) {
	n = int(min(int64(n), total/int64(chunkRows)))
	var bounds []connector.Key
	if n > 1 {
		var err error
		if bounds, err = r.sampleBounds(ctx, q, total, n); err != nil {
			return nil, err
		}
	}
	parts := make([]Part, len(bounds)+1)
	for i := range parts {
		parts[i] = Part{Collection: t.Collection, SourceTable: t.SourceTable, Index: i}
		if i > 0 {
			parts[i].Lower = bounds[i-1]
		}
		if i < len(bounds) {
			parts[i].Upper = bounds[i]
		}
	}
	return parts, nil
}

// sampleBounds picks n-1 keys that cut a sample of the table's keys into n
// equal runs.
func (r *reader) sampleBounds(ctx context.Context, q *tableQuery, total int64, n int) ([]connector.Key, error) {
	const perPart = 200
	pct := 100 * float64(perPart*n) / float64(max(total, 1))
	pct = min(max(pct, 0.001), 100)
	var sample []connector.Key
	for _, method := range []string{"SYSTEM", "BERNOULLI"} {
		rows, err := r.tx.Query(ctx, "SELECT "+q.order+" FROM "+q.t.Info.Name.String()+
			" TABLESAMPLE "+method+" ($1::float8) ORDER BY "+q.order, connector.TextResult, pct)
		if err != nil {
			return nil, fmt.Errorf("sample keys of %s: %w", q.t.SourceTable, err)
		}
		sample = sample[:0]
		for rows.Next() {
			raw := rows.RawValues()
			k := make(connector.Key, len(raw))
			for i, v := range raw {
				k[i] = string(v)
			}
			sample = append(sample, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sample keys of %s: %w", q.t.SourceTable, err)
		}
		if len(sample) >= 4*n {
			break
		}
	}
	var bounds []connector.Key
	for i := 1; i < n && len(sample) >= n; i++ {
		k := sample[i*len(sample)/n]
		if len(bounds) > 0 && k.Equal(bounds[len(bounds)-1]) {
			continue
		}
		bounds = append(bounds, k)
	}
	return bounds, nil
}

// tableQuery builds a table's keyset-pagination queries.
type tableQuery struct {
	t       *pipeline.Table
	info    connector.TableInfo // the table as it is now (runTable)
	tm      *connector.TypeMap
	cols    string   // every column, as SelectColumns
	keyRow  string   // (k1, k2)
	order   string   // k1, k2
	keyType []string // format_type of each key column
}

func newTableQuery(t *pipeline.Table, info connector.TableInfo) *tableQuery {
	q := &tableQuery{t: t, info: info, tm: connector.NewTypeMap([]connector.TableInfo{info}), cols: connector.SelectColumns(&info)}
	names := make([]string, len(info.Key))
	for i, k := range info.Key {
		names[i] = connector.QuoteIdent(k)
		c, _ := info.Column(k)
		q.keyType = append(q.keyType, c.TypeName)
	}
	q.order = strings.Join(names, ", ")
	q.keyRow = "(" + q.order + ")"
	return q
}

// chunkSQL selects the next page: keys after the lower bound's parameters
// (when lower), up to the upper bound's (when upper). Key values arrive as
// their text forms and are cast to the key columns' types, so that the
// comparison is the primary key index's own order.
func (q *tableQuery) chunkSQL(lower, upper bool, limit int) string {
	var b strings.Builder
	b.WriteString("SELECT " + q.cols + " FROM " + q.t.Info.Name.String())
	n := 1
	params := func() string {
		ps := make([]string, len(q.keyType))
		for i, typ := range q.keyType {
			ps[i] = "$" + strconv.Itoa(n) + "::text::" + typ
			n++
		}
		return "(" + strings.Join(ps, ", ") + ")"
	}
	var conds []string
	if lower {
		conds = append(conds, q.keyRow+" > "+params())
	}
	if upper {
		conds = append(conds, q.keyRow+" <= "+params())
	}
	if len(conds) > 0 {
		b.WriteString(" WHERE " + strings.Join(conds, " AND "))
	}
	b.WriteString(" ORDER BY " + q.order + " LIMIT " + strconv.Itoa(limit))
	return b.String()
}
