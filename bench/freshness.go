package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

type freshResult struct {
	Rate         int     `json:"target_rows_per_second"`
	AchievedRate float64 `json:"achieved_rows_per_second"`
	Seconds      float64 `json:"seconds"`
	Samples      int     `json:"samples"`
	// Commit (PostgreSQL's commit timestamp from the stream) to the
	// pipeline worker's acknowledgement after Weaviate and the state
	// accepted the change, in seconds.
	P50 float64 `json:"p50_seconds"`
	P95 float64 `json:"p95_seconds"`
	P99 float64 `json:"p99_seconds"`
	Max float64 `json:"max_seconds"`
	// Where the time goes, from the connector's own histograms over the
	// same period (absent when it does not export them): mean per batch.
	Stages map[string]stageMean `json:"stages,omitempty"`
	// Commit to the reader handing the change to the pipeline: the part
	// of the freshness spent in PostgreSQL, the walsender and decoding.
	ReceivedP50 float64 `json:"received_p50_seconds"`
	ReceivedP99 float64 `json:"received_p99_seconds"`
	// CPU seconds over the period: the servers, and this process (the
	// writer and the connector).
	CPU       cpuUse  `json:"cpu_seconds"`
	MeanBatch float64 `json:"mean_batch_size,omitempty"`
	// The floor at the same rate in the same run (floor.go): a direct
	// writer's commit-to-acknowledgement percentiles.
	FloorP50 float64 `json:"floor_p50_seconds,omitempty"`
	FloorP95 float64 `json:"floor_p95_seconds,omitempty"`
	FloorP99 float64 `json:"floor_p99_seconds,omitempty"`
}

// Targets: at 100 rows/s p50 <= 10 ms and p99 <= 25 ms; at 1,000 rows/s
// p99 <= 50 ms.
func freshTargets(rate int) (p50, p99 float64) {
	if rate <= 100 {
		return 0.010, 0.025
	}
	return 0, 0.050
}

func (f *freshResult) rows() []row {
	p50t, p99t := freshTargets(f.Rate)
	target := fmt.Sprintf("p99 <= %.0f ms", p99t*1000)
	st := status(f.P99, p99t, false)
	if p50t > 0 {
		target = fmt.Sprintf("p50 <= %.0f ms, ", p50t*1000) + target
		if s := status(f.P50, p50t, false); s != "met" {
			st = s
		}
	}
	rows := []row{{
		Section: "freshness",
		Measure: fmt.Sprintf("commit -> Weaviate ack at %s rows/s (1 row/tx, %.0f s, %s samples, achieved %.0f rows/s)",
			thousands(int64(f.Rate)), f.Seconds, thousands(int64(f.Samples)), f.AchievedRate),
		Value:  fmt.Sprintf("p50 %s, p95 %s, p99 %s, max %s", ms(f.P50), ms(f.P95), ms(f.P99), ms(f.Max)),
		Target: target,
		Status: st,
	}}
	if f.FloorP99 > 0 {
		ratio := f.P99 / f.FloorP99
		fst := status(ratio, 1.25, false)
		rows = append(rows, row{
			Section: "freshness",
			Measure: fmt.Sprintf("vs the floor at %s rows/s (a direct writer: own slot, no state, no embedding; same run)", thousands(int64(f.Rate))),
			Value: fmt.Sprintf("floor p50 %s, p95 %s, p99 %s; pipeline/floor p50 %.2fx, p95 %.2fx, p99 %.2fx",
				ms(f.FloorP50), ms(f.FloorP95), ms(f.FloorP99), f.P50/f.FloorP50, f.P95/f.FloorP95, ratio),
			Target: "p99 <= 1.25x the floor's",
			Status: fst,
		})
	}
	return rows
}

// freshness holds steady write rates against the in-process connector and
// collects the commit-to-acknowledgement time of every row.
func (b *bench) freshness(ctx context.Context) error {
	var rates []int
	for _, s := range strings.Split(b.o.FreshRates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || r <= 0 {
			return fmt.Errorf("-fresh-rates: bad rate %q", s)
		}
		rates = append(rates, r)
	}
	const db, coll = "bench_fresh", "BenchFresh"
	dsn, err := b.database(ctx, db)
	if err != nil {
		return err
	}
	defer b.dropDatabase(db)
	defer b.weav.settle(context.WithoutCancel(ctx), coll)
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	cfgPath, err := b.writeConfig(db, scenario{DSN: dsn, Slot: db, Publication: db, Collection: coll, ObsPort: port})
	if err != nil {
		return err
	}
	ip, err := startInproc(ctx, cfgPath, nil)
	if err != nil {
		return err
	}
	defer ip.close()

	gen := rowGen{words: b.o.Words}
	var nextID atomic.Int64
	// Warm-up: connections, the collection's first writes.
	warm, err := writeSteady(ctx, dsn, gen, &nextID, 50, 20, nil)
	if err != nil {
		return err
	}
	if err := waitAcks(ctx, ip, int64(warm), time.Minute); err != nil {
		return err
	}
	for _, rate := range rates {
		before := ip.acks.n.Load()
		stagesBefore := ip.gatherHistogram("cdc_indexer_stage_seconds", "stage")
		batchBefore := ip.gatherHistogram("cdc_indexer_batch_size", "")
		ip.acks.record()
		use0 := b.cpu.now()
		start := time.Now()
		n, err := writeSteady(ctx, dsn, gen, &nextID, rate, int(float64(rate)*b.o.FreshFor.Seconds()), nil)
		if err != nil {
			return err
		}
		elapsed := time.Since(start)
		if err := waitAcks(ctx, ip, before+int64(n), 2*time.Minute); err != nil {
			return err
		}
		use := b.cpu.now().minus(use0)
		samples := sortedCopy(ip.acks.stop())
		received := sortedCopy(ip.received.stop())
		f := &freshResult{Rate: rate, AchievedRate: float64(n) / elapsed.Seconds(), Seconds: elapsed.Seconds(), Samples: len(samples),
			P50: percentile(samples, 50), P95: percentile(samples, 95), P99: percentile(samples, 99), Max: percentile(samples, 100)}
		f.ReceivedP50, f.ReceivedP99 = percentile(received, 50), percentile(received, 99)
		f.CPU = use
		f.Stages = stageMeans(stagesBefore, ip.gatherHistogram("cdc_indexer_stage_seconds", "stage"))
		if bs := stageMeans(batchBefore, ip.gatherHistogram("cdc_indexer_batch_size", ""))[""]; bs.Count > 0 {
			f.MeanBatch = bs.MeanMS / 1000 // the helper scales by 1000
		}
		floor, err := b.floor(ctx, rate, &nextID) // floor.go
		if err != nil {
			return fmt.Errorf("freshness floor at %d rows/s: %w", rate, err)
		}
		floor = sortedCopy(floor)
		f.FloorP50, f.FloorP95, f.FloorP99 = percentile(floor, 50), percentile(floor, 95), percentile(floor, 99)
		logf("freshness floor at %d rows/s: p50 %s p95 %s p99 %s over %d samples", rate, ms(f.FloorP50), ms(f.FloorP95), ms(f.FloorP99), len(floor))
		b.res.Freshness = append(b.res.Freshness, f)
		logf("freshness at %d rows/s (achieved %.0f): p50 %s p95 %s p99 %s max %s over %d samples; commit to reader p50 %s p99 %s; mean batch %.1f, stages %v",
			rate, f.AchievedRate, ms(f.P50), ms(f.P95), ms(f.P99), ms(f.Max), f.Samples, ms(f.ReceivedP50), ms(f.ReceivedP99), f.MeanBatch, f.Stages)
		wall := time.Since(start).Seconds()
		logf("freshness at %d rows/s: CPU s over %.0f s: Weaviate %.1f, PostgreSQL %.1f (%s), writer+connector %.1f", rate, wall, use.Weaviate, use.Postgres, use.postgresKinds(), use.Bench)
	}
	return b.searchable(ctx, ip, dsn, gen, &nextID, coll) // searchable.go
}

func waitAcks(ctx context.Context, ip *inproc, want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for ip.acks.n.Load() < want {
		if err := ip.alive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d changes acknowledged after %s", ip.acks.n.Load(), want, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// writeSteady inserts total rows, one per transaction, at rate rows/s on a
// fixed schedule (row i is due at start + i/rate), from enough connections
// that one slow commit does not hold up the next. It returns the rows
// written.
//
// committed, when set, is told each row's id and the time just before its
// INSERT was sent (an upper bound of its commit-to-anything time).
func writeSteady(ctx context.Context, dsn string, gen rowGen, nextID *atomic.Int64, rate, total int, committed func(id int64, sent time.Time)) (int, error) {
	writers := max(1, min(8, rate/250))
	period := time.Second / time.Duration(rate)
	start := time.Now().Add(50 * time.Millisecond)
	var wg sync.WaitGroup
	var written atomic.Int64
	errs := make([]error, writers)
	for w := 0; w < writers; w++ {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return 0, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close(context.Background())
			for i := w; i < total; i += writers {
				if d := time.Until(start.Add(time.Duration(i) * period)); d > 0 {
					time.Sleep(d)
				}
				id := nextID.Add(1)
				r := gen.row(id)
				sent := time.Now()
				_, err := conn.Exec(ctx, "INSERT INTO public.docs (id, title, body, author, category) VALUES ($1, $2, $3, $4, $5)", r...)
				if err != nil {
					errs[w] = err
					return
				}
				if committed != nil {
					committed(id, sent)
				}
				written.Add(1)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return int(written.Load()), err
		}
	}
	return int(written.Load()), nil
}
