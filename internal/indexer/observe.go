package indexer

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
)

// How often the collector polls PostgreSQL and Weaviate, how long one check
// may take, and how often the summary line is logged.
var (
	pollInterval    = 5 * time.Second
	checkTimeout    = 3 * time.Second
	summaryInterval = time.Minute
)

// watched is what the collector observes while the indexer streams.
type watched struct {
	tracker *checkpoint.Tracker
	stream  *connector.Stream
	pipe    *pipeline.Pipeline
	msgs    chan connector.Message // between stream and pipeline
}

// watch exposes the queues and the applied position, and starts the
// collector in group: every pollInterval it checks PostgreSQL (on a
// connection of its own) and Weaviate for /readyz and sets the lag and
// retained WAL gauges; every summaryInterval it logs a summary. It ends
// with ctx.
func (o *observability) watch(ctx context.Context, group *sync.WaitGroup, cfg *config.Config, env *Env, w watched) {
	o.m.SetQueueDepth("stream", func() int { return len(w.msgs) })
	o.m.SetQueueDepth("live", func() int { l, _ := w.pipe.QueueDepths(); return l })
	o.m.SetQueueDepth("backfill", func() int { _, b := w.pipe.QueueDepths(); return b })
	o.m.SetQueueDepth("in_flight", w.tracker.InFlight)
	o.m.Lag.SetConfirmed(w.tracker.Confirmed)
	p := &progress{tracker: w.tracker, stream: w.stream}
	o.progress.Store(p)
	indexed := env.vectorQueuesEmpty(func() []string { // searchable.go
		var out []string
		for _, t := range w.pipe.Tables() {
			if !slices.Contains(out, t.Collection) {
				out = append(out, t.Collection)
			}
		}
		return out
	})
	o.vectorIndexed.Store(&indexed)

	group.Go(func() {
		c := &collector{o: o, cfg: cfg, env: env, progress: p, sum: newSummary(o.m)}
		defer c.close()
		tick := time.NewTicker(pollInterval)
		defer tick.Stop()
		next := time.Now().Add(summaryInterval)
		for {
			c.poll(ctx)
			if now := time.Now(); !now.Before(next) {
				c.sum.log(o.log, now, o.m)
				next = now.Add(summaryInterval)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
}

type collector struct {
	o        *observability
	cfg      *config.Config
	env      *Env
	progress *progress
	conn     *pgx.Conn
	sum      *summary
}

func (c *collector) close() {
	if c.conn != nil {
		c.conn.Close(context.Background())
		c.conn = nil
	}
}

func (c *collector) poll(ctx context.Context) {
	c.o.setDependency(depPostgres, c.pollPostgres(ctx))
	if ctx.Err() != nil {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, checkTimeout)
	err := c.env.Sink.Ready(wctx)
	cancel()
	if ctx.Err() == nil {
		c.o.setDependency(depWeaviate, err)
	}
	if ctx.Err() == nil && c.env.embeddingCircuit() != nil {
		c.o.setDependency(depEmbedding, c.env.EmbeddingProviderErr()) // embedding.go
	}
}

// pollPostgres reads the server's WAL position and the slot's restart_lsn
// and sets the lag and retained WAL gauges.
func (c *collector) pollPostgres(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if c.conn == nil {
		pc, err := pgx.ParseConfig(c.cfg.Postgres.DSN)
		if err != nil {
			return err
		}
		pc.RuntimeParams["application_name"] = "cdc-indexer monitor"
		if c.conn, err = pgx.ConnectConfig(ctx, pc); err != nil {
			c.conn = nil
			return err
		}
	}
	var current, restart string
	err := c.conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, COALESCE(
	(SELECT restart_lsn::text FROM pg_catalog.pg_replication_slots WHERE slot_name = $1), '')`,
		c.cfg.Postgres.Slot).Scan(&current, &restart)
	if err != nil {
		c.close()
		return err
	}
	cur, err := pglogrepl.ParseLSN(current)
	if err != nil {
		return err
	}
	now := time.Now()
	applied := c.progress.Applied()
	c.o.m.LagBytes.Set(float64(lsnDiff(cur, applied)))
	c.o.m.LagSeconds.Set(c.o.m.Lag.Lag(applied, now).Seconds())
	if rl, err := pglogrepl.ParseLSN(restart); err == nil && restart != "" {
		c.o.m.RetainedWAL.Set(float64(lsnDiff(cur, rl)))
	}
	c.sum.lagBytes = lsnDiff(cur, applied)
	return nil
}

func lsnDiff(a, b pglogrepl.LSN) uint64 {
	if a <= b {
		return 0
	}
	return uint64(a - b)
}

// summary is what the per-minute log line compares against.
type summary struct {
	at                         time.Time
	received, applied, skipped float64
	dead                       float64
	freshCount                 uint64
	freshBuckets               []float64 // cumulative counts
	freshBounds                []float64
	lagBytes                   uint64
	lastReceived, lastApplied  float64
	lastSkipped, lastDead      float64
	lastFreshCount             uint64
	lastFreshBuckets           []float64
}

func newSummary(m *metrics.Metrics) *summary {
	s := &summary{at: time.Now()}
	s.read(m)
	s.roll()
	return s
}

func (s *summary) read(m *metrics.Metrics) {
	s.received = sumCounters(m.Received, "", "")
	s.applied = sumCounters(m.Changes, "outcome", metrics.OutcomeApplied)
	s.skipped = sumCounters(m.Changes, "outcome", metrics.OutcomeSkipped)
	s.dead = sumCounters(m.Changes, "outcome", metrics.OutcomeDeadLettered)
	var d dto.Metric
	if err := m.Freshness.Write(&d); err == nil && d.Histogram != nil {
		s.freshCount = d.Histogram.GetSampleCount()
		s.freshBounds = s.freshBounds[:0]
		s.freshBuckets = s.freshBuckets[:0]
		for _, b := range d.Histogram.Bucket {
			s.freshBounds = append(s.freshBounds, b.GetUpperBound())
			s.freshBuckets = append(s.freshBuckets, float64(b.GetCumulativeCount()))
		}
	}
}

func (s *summary) roll() {
	s.lastReceived, s.lastApplied, s.lastSkipped, s.lastDead = s.received, s.applied, s.skipped, s.dead
	s.lastFreshCount = s.freshCount
	s.lastFreshBuckets = append(s.lastFreshBuckets[:0], s.freshBuckets...)
}

// log writes the summary of the interval since the last one.
func (s *summary) log(log zerolog.Logger, now time.Time, m *metrics.Metrics) {
	s.read(m)
	secs := now.Sub(s.at).Seconds()
	if secs <= 0 {
		secs = 1
	}
	delta := make([]float64, len(s.freshBuckets))
	for i := range s.freshBuckets {
		delta[i] = s.freshBuckets[i]
		if i < len(s.lastFreshBuckets) {
			delta[i] -= s.lastFreshBuckets[i]
		}
	}
	n := float64(s.freshCount - s.lastFreshCount)
	ev := log.Info().
		Float64("received_per_second", round((s.received-s.lastReceived)/secs)).
		Float64("applied_per_second", round((s.applied-s.lastApplied)/secs)).
		Float64("skipped", s.skipped-s.lastSkipped).
		Float64("dead_lettered", s.dead-s.lastDead).
		Uint64("lag_bytes", s.lagBytes).
		Float64("lag_seconds", round(gaugeValue(m.LagSeconds)))
	if n > 0 {
		ev = ev.Float64("freshness_p50_seconds", quantile(0.5, n, s.freshBounds, delta)).
			Float64("freshness_p99_seconds", quantile(0.99, n, s.freshBounds, delta))
	}
	ev.Dur("interval", now.Sub(s.at)).Msg("summary")
	s.at = now
	s.roll()
}

func round(f float64) float64 { return math.Round(f*1000) / 1000 }

// quantile estimates the q-quantile of n observations from cumulative
// bucket counts, interpolating linearly inside the bucket as Prometheus'
// histogram_quantile does; past the last bound it answers the last bound.
func quantile(q, n float64, bounds, cumulative []float64) float64 {
	rank := q * n
	lower, below := 0.0, 0.0
	for i, b := range bounds {
		if cumulative[i] >= rank {
			in := cumulative[i] - below
			if in <= 0 {
				return round(b)
			}
			return round(lower + (b-lower)*(rank-below)/in)
		}
		lower, below = b, cumulative[i]
	}
	if len(bounds) == 0 {
		return 0
	}
	return bounds[len(bounds)-1]
}

// sumCounters adds the counters of a vector, only those whose label has
// value when label is set.
func sumCounters(c prometheus.Collector, label, value string) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	total := 0.0
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil || d.Counter == nil {
			continue
		}
		if label != "" && !hasLabel(&d, label, value) {
			continue
		}
		total += d.Counter.GetValue()
	}
	return total
}

func hasLabel(d *dto.Metric, name, value string) bool {
	for _, l := range d.Label {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}

func gaugeValue(g prometheus.Gauge) float64 {
	var d dto.Metric
	if g.Write(&d) != nil || d.Gauge == nil {
		return 0
	}
	return d.Gauge.GetValue()
}
