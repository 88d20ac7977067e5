package main

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// verifyTarget: verify should compare rows at least at half the rate at
// which the snapshot of the same run indexed them.
const verifyTarget = 0.5

// verifyResult is `cdc-indexer verify` over the table the snapshot section
// just indexed: every row rendered, chunked and compared with its objects,
// every object checked for a row.
type verifyResult struct {
	Rows          int     `json:"rows"`
	Seconds       float64 `json:"seconds"`
	RowsPerSecond float64 `json:"rows_per_second"`
	// PeakRSSMB is the process's maximum resident set (getrusage).
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// SnapshotRowsPerSecond is the same run's snapshot of the same table.
	SnapshotRowsPerSecond float64 `json:"snapshot_rows_per_second"`
	Ratio                 float64 `json:"ratio"`
}

func (v *verifyResult) rows() []row {
	return []row{{
		Section:  "verify",
		Measure:  fmt.Sprintf("cdc-indexer verify rows/s on the %s rows the snapshot indexed (exit 0: no drift); peak RSS", thousands(int64(v.Rows))),
		Value:    fmt.Sprintf("%s, %.0f MiB", rate(v.RowsPerSecond, "rows/s"), v.PeakRSSMB),
		Baseline: rate(v.SnapshotRowsPerSecond, "rows/s snapshot, same table"),
		Ratio:    ratioStr(v.Ratio),
		Target:   fmt.Sprintf(">= %.2fx, bounded memory", verifyTarget),
		Status:   status(v.Ratio, verifyTarget, true),
	}}
}

// verify runs `cdc-indexer verify --config cfgPath` and requires exit 0.
func (b *bench) verify(ctx context.Context, cfgPath string, rows int, snapshotRate float64) error {
	res := &verifyResult{Rows: rows, SnapshotRowsPerSecond: snapshotRate}
	start := time.Now()
	c, err := b.startChild("verify", "verify", "--config", cfgPath)
	if err != nil {
		return err
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		c.stop()
		return ctx.Err()
	case <-time.After(30 * time.Minute):
		c.stop()
		return fmt.Errorf("cdc-indexer verify did not finish within 30 minutes")
	}
	if c.err != nil {
		return fmt.Errorf("cdc-indexer verify (want exit 0: the snapshot left no drift): %v:\n%s", c.err, c.logTail())
	}
	res.Seconds = time.Since(start).Seconds()
	res.RowsPerSecond = float64(rows) / res.Seconds
	res.Ratio = res.RowsPerSecond / snapshotRate
	if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.PeakRSSMB = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	b.res.Verify = res
	logf("verify: %s rows in %.1f s = %s rows/s (%.2fx the snapshot's %s), peak RSS %.0f MiB",
		thousands(int64(rows)), res.Seconds, thousands(int64(res.RowsPerSecond)), res.Ratio, thousands(int64(snapshotRate)), res.PeakRSSMB)
	return nil
}
