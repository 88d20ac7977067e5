package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

const snapshotTarget = 0.8

type snapshotResult struct {
	Rows int `json:"rows"`
	// Pending is set when `cdc-indexer snapshot` is not available yet.
	Pending               string  `json:"pending,omitempty"`
	Seconds               float64 `json:"seconds"`
	RowsPerSecond         float64 `json:"rows_per_second"`
	PlainObjectsPerSecond float64 `json:"plain_objects_per_second"`
	Ratio                 float64 `json:"ratio"`
	// From the snapshot process: its CPU time and (scraped from its
	// /metrics while it ran) its pipeline's stage histograms.
	pipelineRun
	PlainCPU cpuUse `json:"plain_cpu_seconds"`
}

func (s *snapshotResult) rows() []row {
	r := row{
		Section: "snapshot",
		Measure: fmt.Sprintf("cdc-indexer snapshot rows/s on %s existing rows (command start to exit 0)", thousands(int64(s.Rows))),
		Target:  fmt.Sprintf(">= %.2fx", snapshotTarget),
	}
	if s.Pending != "" {
		r.Status = "pending: " + s.Pending
		return []row{r}
	}
	r.Value = rate(s.RowsPerSecond, "rows/s")
	r.Baseline = rate(s.PlainObjectsPerSecond, "obj/s plain gRPC batch")
	r.Ratio = ratioStr(s.Ratio)
	r.Status = status(s.Ratio, snapshotTarget, true)
	return []row{r}
}

// snapshot times `cdc-indexer snapshot --config F` over existing rows and
// a plain batch import of the same objects.
func (b *bench) snapshot(ctx context.Context) error {
	const db, coll = "bench_snapshot", "BenchSnapshot"
	res := &snapshotResult{Rows: b.o.SnapshotRows}
	b.res.Snapshot = res
	dsn, err := b.database(ctx, db)
	if err != nil {
		return err
	}
	defer b.dropDatabase(db)
	defer b.weav.settle(context.WithoutCancel(ctx), coll)
	gen := rowGen{words: b.o.Words}
	logf("snapshot: COPY of %s rows", thousands(int64(res.Rows)))
	if _, err := fillRows(ctx, dsn, gen, 1, res.Rows); err != nil {
		return err
	}
	if err := execSQL(ctx, dsn, "VACUUM ANALYZE public.docs"); err != nil {
		return err
	}
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	cfgPath, err := b.writeConfig(db, scenario{DSN: dsn, Slot: db, Publication: db, Collection: coll, ObsPort: port})
	if err != nil {
		return err
	}

	use0 := b.cpu.now()
	start := time.Now()
	c, err := b.startChild("snapshot", "snapshot", "--config", cfgPath)
	if err != nil {
		return err
	}
	deadline := time.After(45 * time.Minute)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-c.done:
			break wait
		case <-tick.C:
			// The last scrape before the process exits holds nearly all
			// of its batches.
			if st, mb := scrapeStages(ctx, port); len(st) > 0 {
				res.Stages, res.MeanBatch = st, mb
			}
		case <-ctx.Done():
			c.stop()
			return ctx.Err()
		case <-deadline:
			c.stop()
			return fmt.Errorf("cdc-indexer snapshot did not finish within 45 minutes")
		}
	}
	elapsed := time.Since(start)
	res.CPU = b.cpu.now().minus(use0)
	if ps := c.cmd.ProcessState; ps != nil {
		res.ConnectorCPUSeconds = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	if c.err != nil {
		out, _ := os.ReadFile(c.logPath)
		if strings.Contains(string(out), "not implemented") || strings.Contains(string(out), "unknown command") {
			res.Pending = "cdc-indexer snapshot is not implemented in this build"
			logf("snapshot: %s (%s)", res.Pending, strings.TrimSpace(string(out)))
			return nil
		}
		return fmt.Errorf("cdc-indexer snapshot: %v:\n%s", c.err, c.logTail())
	}
	got, err := b.weav.count(ctx, coll)
	if err != nil {
		return err
	}
	if got != res.Rows {
		return fmt.Errorf("cdc-indexer snapshot exited 0 but %s holds %d objects, want %d", coll, got, res.Rows)
	}
	res.Seconds = elapsed.Seconds()
	res.RowsPerSecond = float64(res.Rows) / res.Seconds
	b.weav.settle(ctx, coll)
	if err := b.verify(ctx, cfgPath, res.Rows, res.RowsPerSecond); err != nil {
		return err
	}

	inFlight := 1
	if b.res.Sink != nil {
		inFlight = b.res.Sink.PlainInFlight
	}
	d, cpu, err := b.plainImport(ctx, "BenchSnapshotPlain", gen, 1, res.Rows, inFlight)
	if err != nil {
		return err
	}
	res.PlainCPU = cpu
	res.PlainObjectsPerSecond = float64(res.Rows) / d.Seconds()
	res.Ratio = res.RowsPerSecond / res.PlainObjectsPerSecond
	logf("snapshot: %s rows/s vs plain import %s obj/s, ratio %.2f", thousands(int64(res.RowsPerSecond)), thousands(int64(res.PlainObjectsPerSecond)), res.Ratio)
	logf("snapshot: CPU s: plain: Weaviate %.1f, PostgreSQL %.1f, client %.1f; snapshot: Weaviate %.1f, PostgreSQL %.1f (%s), cdc-indexer %.1f; mean batch %.0f, stages %v",
		res.PlainCPU.Weaviate, res.PlainCPU.Postgres, res.PlainCPU.Bench, res.CPU.Weaviate, res.CPU.Postgres, res.CPU.postgresKinds(), res.ConnectorCPUSeconds, res.MeanBatch, res.Stages)
	return nil
}
