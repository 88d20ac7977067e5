package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

// scalePoint is one measurement of how the connector's cost grows with its
// work: `cdc-indexer run` (a child process) indexing a committed load with
// one knob changed from the defaults.
type scalePoint struct {
	Dimension string `json:"dimension"` // workers, row size, state rows
	Value     string `json:"value"`
	Rows      int    `json:"rows"`
	Objects   int    `json:"objects"`
	// Seconds from the load's commit to the last row recorded as indexed.
	Seconds          float64 `json:"seconds"`
	RowsPerSecond    float64 `json:"rows_per_second"`
	ObjectsPerSecond float64 `json:"objects_per_second"`
	// SteadyP99 is commit -> acknowledged p99 at scaleSteadyRate (workers
	// only), interpolated in the connector's freshness histogram.
	SteadyP99 float64 `json:"steady_p99_seconds,omitempty"`
	// LookupMS is the mean time per batch of the state lookup.
	LookupMS  float64 `json:"lookup_ms_per_batch"`
	MeanBatch float64 `json:"mean_batch"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
}

const (
	scaleRows       = 10_000
	scaleSteadyRate = 200
	scaleSteadyFor  = 10 * time.Second
)

func scalingRows(points []*scalePoint) []row {
	var out []row
	for _, p := range points {
		v := fmt.Sprintf("%s, %s; lookup %.2f ms/batch (mean batch %.0f); peak RSS %.0f MiB",
			rate(p.RowsPerSecond, "rows/s"), rate(p.ObjectsPerSecond, "obj/s"), p.LookupMS, p.MeanBatch, p.PeakRSSMB)
		if p.SteadyP99 > 0 {
			v += fmt.Sprintf("; p99 at %d rows/s %s", scaleSteadyRate, ms(p.SteadyP99))
		}
		out = append(out, row{
			Section: "scaling",
			Measure: fmt.Sprintf("%s = %s (%s rows, %s objects)", p.Dimension, p.Value, thousands(int64(p.Rows)), thousands(int64(p.Objects))),
			Value:   v,
			Status:  "measured",
		})
	}
	return out
}

// scaling measures throughput, state lookup time and peak RSS against the
// number of workers, the row size and the size of the state table, and
// commit -> acknowledged p99 against the number of workers.
func (b *bench) scaling(ctx context.Context) error {
	type knobs struct {
		dim, value           string
		workers, words, rows int
		stateRows            int
		steady               bool
	}
	var runs []knobs
	for _, w := range []int{1, 2, 4, 8} {
		runs = append(runs, knobs{dim: "workers", value: strconv.Itoa(w), workers: w, words: 100, rows: scaleRows, steady: true})
	}
	// About 7 bytes a word.
	for _, kb := range []struct{ kb, rows int }{{1, scaleRows}, {10, 2_000}, {100, 200}} {
		runs = append(runs, knobs{dim: "row size", value: fmt.Sprintf("%d KB", kb.kb), words: kb.kb * 1024 / 7, rows: kb.rows})
	}
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		runs = append(runs, knobs{dim: "state rows", value: thousands(int64(n)), words: 100, rows: scaleRows, stateRows: n})
	}
	for i, k := range runs {
		if b.o.ScalingDims != "" && !slices.Contains(strings.Split(b.o.ScalingDims, ","), k.dim) {
			continue
		}
		p, err := b.scaleRun(ctx, i, k.workers, rowGen{words: k.words}, k.rows, k.stateRows, k.steady)
		if err != nil {
			return fmt.Errorf("%s = %s: %w", k.dim, k.value, err)
		}
		p.Dimension, p.Value = k.dim, k.value
		b.res.Scaling = append(b.res.Scaling, p)
		logf("scaling: %s = %s: %s rows/s, %s obj/s, lookup %.2f ms/batch, batch %.0f, peak RSS %.0f MiB, steady p99 %s",
			k.dim, k.value, thousands(int64(p.RowsPerSecond)), thousands(int64(p.ObjectsPerSecond)), p.LookupMS, p.MeanBatch, p.PeakRSSMB, ms(p.SteadyP99))
	}
	return nil
}

// scaleRun indexes n committed rows with a fresh `cdc-indexer run`, after
// filling the state table with stateRows records of other keys.
func (b *bench) scaleRun(ctx context.Context, i, workers int, gen rowGen, n, stateRows int, steady bool) (*scalePoint, error) {
	db := fmt.Sprintf("bench_scale_%d", i)
	coll := fmt.Sprintf("BenchScale%d", i)
	p := &scalePoint{Rows: n}
	dsn, err := b.database(ctx, db)
	if err != nil {
		return nil, err
	}
	defer b.dropDatabase(db)
	defer b.weav.settle(context.WithoutCancel(ctx), coll)
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	cfgPath, err := b.writeConfig(db, scenario{DSN: dsn, Slot: db, Publication: db, Collection: coll, ObsPort: port, Workers: workers})
	if err != nil {
		return nil, err
	}
	c, err := b.startChild(db, "run", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	if err := c.waitReady(ctx, port); err != nil {
		return nil, err
	}
	if stateRows > 0 {
		// Records of other keys of the same mapping, as a large table's
		// index leaves them; every lookup of the run probes among them.
		if err := execSQL(ctx, dsn, fmt.Sprintf(`INSERT INTO cdc_indexer.documents (collection, source_table, source_key, content_hash, chunk_count, source_lsn)
SELECT v.physical, 'public.docs', 'x' || g, md5(g::text), 1, '0/1'
FROM generate_series(1, %d) g, cdc_indexer.collection_versions v WHERE v.collection = '%s' AND v.phase = 'serving'`, stateRows, coll)); err != nil {
			return nil, fmt.Errorf("fill the state table: %w", err)
		}
		if err := execSQL(ctx, dsn, "VACUUM ANALYZE cdc_indexer.documents"); err != nil {
			return nil, err
		}
		// The filling wrote WAL the stream must read past (and skip):
		// measuring starts once it has.
		if err := waitSentPast(ctx, dsn); err != nil {
			return nil, err
		}
	}
	done, err := fillRows(ctx, dsn, gen, 1, n)
	if err != nil {
		return nil, err
	}
	end, err := waitIndexed(ctx, dsn, coll, n, c)
	if err != nil {
		return nil, err
	}
	p.Seconds = end.Sub(done.At).Seconds()
	p.RowsPerSecond = float64(n) / p.Seconds
	if p.Objects, err = b.weav.count(ctx, coll); err != nil {
		return nil, err
	}
	p.ObjectsPerSecond = float64(p.Objects) / p.Seconds
	stages, batch := scrapeStages(ctx, port)
	p.LookupMS, p.MeanBatch = stages["lookup"].MeanMS, batch
	if steady {
		before, err := scrapeHistogram(ctx, port, "cdc_indexer_freshness_seconds")
		if err != nil {
			return nil, err
		}
		var next atomic.Int64
		next.Store(int64(n))
		total := int(scaleSteadyRate * scaleSteadyFor.Seconds())
		if _, err := writeSteady(ctx, dsn, gen, &next, scaleSteadyRate, total, nil); err != nil {
			return nil, err
		}
		if _, err := waitIndexed(ctx, dsn, coll, n+total, c); err != nil {
			return nil, err
		}
		after, err := scrapeHistogram(ctx, port, "cdc_indexer_freshness_seconds")
		if err != nil {
			return nil, err
		}
		p.SteadyP99 = histogramQuantile(0.99, after.minus(before))
	}
	if st, err := procStatus(c.pid()); err == nil {
		p.PeakRSSMB = st.hwmMB
	}
	return p, nil
}

// waitSentPast waits until the walsender has sent everything written so
// far.
func waitSentPast(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var lsn string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var past bool
		err := conn.QueryRow(ctx, `SELECT coalesce(bool_and(sent_lsn >= $1::pg_lsn), false) FROM pg_stat_replication WHERE application_name LIKE 'cdc-indexer%'`, lsn).Scan(&past)
		if err != nil {
			return err
		}
		if past {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the walsender did not pass %s within 10 minutes", lsn)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitIndexed waits until the state records n rows of the table as
// indexed (each recorded after Weaviate acknowledged it) and returns when.
// The count reads the primary key's range of the run's keys only (digits
// sort before the filling's 'x' keys): a scan of a million-row state table
// every poll would cost a core and be measured as the connector's.
func waitIndexed(ctx context.Context, dsn, coll string, n int, c *child) (time.Time, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var physical string
	if err := conn.QueryRow(ctx, `SELECT physical FROM cdc_indexer.collection_versions WHERE collection = $1 AND phase = 'serving'`, coll).Scan(&physical); err != nil {
		return time.Time{}, fmt.Errorf("serving version of %s: %w", coll, err)
	}
	deadline := time.Now().Add(30 * time.Minute)
	for {
		var got int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM cdc_indexer.documents WHERE collection = $1 AND source_table = 'public.docs' AND source_key < 'x' AND content_hash <> ''`, physical).Scan(&got)
		if err != nil {
			return time.Time{}, err
		}
		if got >= n {
			return time.Now(), nil
		}
		if c.exited() {
			return time.Time{}, fmt.Errorf("cdc-indexer exited (%v):\n%s", c.err, c.logTail())
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%d of %d rows indexed after 30 minutes", got, n)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// buckets are a Prometheus histogram's cumulative bucket counts by upper
// bound.
type buckets map[float64]float64

func (h buckets) minus(o buckets) buckets {
	out := buckets{}
	for le, n := range h {
		out[le] = n - o[le]
	}
	return out
}

// histogramQuantile interpolates the q-quantile linearly within its bucket,
// as PromQL's histogram_quantile does.
func histogramQuantile(q float64, h buckets) float64 {
	bounds := make([]float64, 0, len(h))
	for le := range h {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 || h[bounds[len(bounds)-1]] == 0 {
		return 0
	}
	total := h[bounds[len(bounds)-1]]
	rank := q * total
	lower, below := 0.0, 0.0
	for _, le := range bounds {
		if h[le] >= rank {
			if math.IsInf(le, 1) {
				return lower
			}
			return lower + (le-lower)*(rank-below)/math.Max(h[le]-below, 1e-12)
		}
		lower, below = le, h[le]
	}
	return lower
}

// scrapeHistogram reads one histogram's buckets (without labels) from /metrics.
func scrapeHistogram(ctx context.Context, port int, name string) (buckets, error) {
	data, err := scrapeMetrics(ctx, port)
	if err != nil {
		return nil, err
	}
	h := buckets{}
	for _, line := range strings.Split(string(data), "\n") {
		metric, value, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(metric, name+"_bucket{") {
			continue
		}
		le := labelValue(metric, "le")
		bound := math.Inf(1)
		if le != "+Inf" {
			if bound, err = strconv.ParseFloat(le, 64); err != nil {
				continue
			}
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		h[bound] = n
	}
	if len(h) == 0 {
		return nil, fmt.Errorf("/metrics has no %s", name)
	}
	return h, nil
}
