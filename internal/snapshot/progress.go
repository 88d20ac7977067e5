package snapshot

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
)

// Metrics are the snapshot's Prometheus metrics, by table.
type Metrics struct {
	Rows     *prometheus.CounterVec // rows read and indexed
	Done     *prometheus.GaugeVec   // rows indexed so far, earlier runs included
	Estimate *prometheus.GaugeVec   // rows the table is estimated to hold
}

// NewMetrics registers the snapshot metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdc_indexer_snapshot_rows_total",
			Help: "Rows a snapshot or backfill read and passed to the index, by table.",
		}, []string{"table"}),
		Done: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdc_indexer_snapshot_rows_done",
			Help: "Rows of the current snapshot or backfill indexed so far (earlier, interrupted runs included), by table.",
		}, []string{"table"}),
		Estimate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cdc_indexer_snapshot_rows_estimate",
			Help: "Estimated rows of the table being snapshotted (count or pg_class.reltuples), by table.",
		}, []string{"table"}),
	}
	reg.MustRegister(m.Rows, m.Done, m.Estimate)
	return m
}

// Progress shows how far each table's snapshot is: a progress bar per table
// on a terminal, a log line every few seconds otherwise, and metrics.
type Progress struct {
	// Bars, when set, is the terminal the bars are drawn on; periodic log
	// lines are left out then, as they would break the bars.
	Bars io.Writer
	// Every is how often a table's progress is logged without bars.
	Every   time.Duration
	Log     zerolog.Logger
	Metrics *Metrics // optional
	// OnUpdate, when set, is called with a table's progress after each
	// chunk (a backfill request reports it to the waiting command).
	OnUpdate func(table string, done, total int64)

	mu     sync.Mutex
	tables map[string]*tableProgress
}

type tableProgress struct {
	total, done, before int64
	start, logged       time.Time
	bar                 *progressbar.ProgressBar
}

// Start begins showing a table with an estimated total of rows, of which
// before were indexed by an earlier run.
func (p *Progress) Start(table string, total, before int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tables == nil {
		p.tables = map[string]*tableProgress{}
	}
	total = max(total, before)
	tp := &tableProgress{total: total, done: before, before: before, start: time.Now()}
	tp.logged = tp.start
	p.tables[table] = tp
	if p.Bars != nil {
		tp.bar = progressbar.NewOptions64(max(total, 1),
			progressbar.OptionSetWriter(p.Bars),
			progressbar.OptionSetDescription(table),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.Bars) }),
		)
		if before >= total {
			tp.bar.ChangeMax64(before + 1)
		}
		_ = tp.bar.Set64(before)
	}
	if p.Metrics != nil {
		p.Metrics.Estimate.WithLabelValues(table).Set(float64(total))
		p.Metrics.Done.WithLabelValues(table).Set(float64(before))
	}
	if p.OnUpdate != nil {
		p.OnUpdate(table, before, total)
	}
}

// SetTotal corrects a table's estimated total.
func (p *Progress) SetTotal(table string, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	tp := p.tables[table]
	if tp == nil || total == tp.total {
		return
	}
	tp.total = max(total, tp.done)
	if tp.bar != nil {
		tp.bar.ChangeMax64(max(tp.total, tp.done+1))
	}
	if p.Metrics != nil {
		p.Metrics.Estimate.WithLabelValues(table).Set(float64(tp.total))
	}
}

// Add counts n more rows of a table as indexed.
func (p *Progress) Add(table string, n int) {
	p.Set(table, -1, int64(n))
}

// Set records a table's rows done as a whole (done >= 0) or adds delta.
func (p *Progress) Set(table string, done, delta int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	tp := p.tables[table]
	if tp == nil {
		p.mu.Unlock()
		return
	}
	if done < 0 {
		done = tp.done + delta
	}
	delta = done - tp.done
	tp.done = done
	if tp.done > tp.total {
		tp.total = tp.done
	}
	if tp.bar != nil {
		// The estimate may be short: the bar completes only in Finish.
		if tp.done >= tp.bar.GetMax64() {
			tp.bar.ChangeMax64(tp.done + 1)
		}
		_ = tp.bar.Set64(tp.done)
	}
	if p.Metrics != nil {
		if delta > 0 {
			p.Metrics.Rows.WithLabelValues(table).Add(float64(delta))
		}
		p.Metrics.Done.WithLabelValues(table).Set(float64(tp.done))
	}
	now := time.Now()
	every := p.Every
	if every <= 0 {
		every = 5 * time.Second
	}
	logNow := tp.bar == nil && now.Sub(tp.logged) >= every
	if logNow {
		tp.logged = now
	}
	total, before, start := tp.total, tp.before, tp.start
	p.mu.Unlock()

	if logNow {
		rate := rowsPerSecond(done-before, now.Sub(start))
		ev := p.Log.Info().Str("table", table).Int64("rows_done", done).Int64("rows_estimate", total).
			Float64("rows_per_second", rate)
		if rate > 0 && total > done {
			ev = ev.Dur("eta", time.Duration(float64(total-done)/rate*float64(time.Second)).Round(time.Second))
		}
		ev.Msg("snapshot progress")
	}
	if p.OnUpdate != nil {
		p.OnUpdate(table, done, total)
	}
}

// Finish ends a table's bar.
func (p *Progress) Finish(table string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	tp := p.tables[table]
	if tp == nil || tp.bar == nil {
		return
	}
	tp.bar.ChangeMax64(max(tp.done, 1))
	_ = tp.bar.Set64(max(tp.done, 1))
	_ = tp.bar.Finish()
	tp.bar = nil
}

func rowsPerSecond(rows int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(rows) / d.Seconds()
}
