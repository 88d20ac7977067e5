package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

const memoryTargetMB = 150

type memoryResult struct {
	Rows  int `json:"rows"`
	Words int `json:"words_per_row"`
	// PeakRSSMB is VmHWM of the cdc-indexer process at the end: the most
	// resident memory it ever had, start-up included.
	PeakRSSMB     float64 `json:"peak_rss_mb"`
	ReadyRSSMB    float64 `json:"rss_when_ready_mb"`
	EndRSSMB      float64 `json:"rss_at_end_mb"`
	CopySeconds   float64 `json:"copy_seconds"`
	DrainSeconds  float64 `json:"commit_to_all_objects_seconds"`
	RowsPerSecond float64 `json:"rows_per_second"`
	// Timeline is (seconds since the COPY started, VmRSS MB) every few seconds.
	Timeline [][2]float64 `json:"rss_timeline"`
}

func (m *memoryResult) rows() []row {
	return []row{{
		Section: "memory", Measure: fmt.Sprintf("peak RSS (VmHWM) of cdc-indexer run through a %s-row transaction (%d-word rows)", thousands(int64(m.Rows)), m.Words),
		Value:    fmt.Sprintf("%.0f MB", m.PeakRSSMB),
		Baseline: fmt.Sprintf("%.0f MB when ready", m.ReadyRSSMB),
		Target:   fmt.Sprintf("<= %d MB", memoryTargetMB),
		Status:   status(m.PeakRSSMB, memoryTargetMB, false) + fmt.Sprintf(" (%s rows/s, %.0f s)", thousands(int64(m.RowsPerSecond)), m.DrainSeconds),
	}}
}

// memory streams one large transaction through the real binary and reads
// the child's peak resident set from /proc.
func (b *bench) memory(ctx context.Context) error {
	const db, coll = "bench_memory", "BenchMemory"
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
	cfgPath, err := b.writeConfig("memory", scenario{DSN: dsn, Slot: "bench_memory", Publication: "bench_memory", Collection: coll, ObsPort: port})
	if err != nil {
		return err
	}
	c, err := b.startChild("memory", "run", "--config", cfgPath)
	if err != nil {
		return err
	}
	defer c.stop()
	if err := c.waitReady(ctx, port); err != nil {
		return err
	}
	res := &memoryResult{Rows: b.o.MemoryRows, Words: b.o.MemoryWords}
	st, err := procStatus(c.pid())
	if err != nil {
		return err
	}
	res.ReadyRSSMB = st.rssMB

	// Sample the resident set while the transaction is written, decoded and
	// applied; VmHWM at the end is the peak, the samples show the shape.
	start := time.Now()
	var mu sync.Mutex
	stopSampling := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var lastLogged time.Time
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			st, err := procStatus(c.pid())
			if err != nil {
				return
			}
			mu.Lock()
			res.Timeline = append(res.Timeline, [2]float64{math.Round(time.Since(start).Seconds()), math.Round(st.rssMB)})
			mu.Unlock()
			if time.Since(lastLogged) > 30*time.Second {
				lastLogged = time.Now()
				n, _ := b.weav.count(ctx, coll)
				logf("memory: %s objects, RSS %.0f MB, peak %.0f MB", thousands(int64(n)), st.rssMB, st.hwmMB)
			}
		}
	}()
	defer func() {
		select {
		case <-stopSampling:
		default:
			close(stopSampling)
		}
		wg.Wait()
	}()

	logf("memory: COPY of %s rows in one transaction", thousands(int64(res.Rows)))
	done, err := fillRows(ctx, dsn, rowGen{words: b.o.MemoryWords}, 1, res.Rows)
	if err != nil {
		return err
	}
	res.CopySeconds = done.At.Sub(start).Seconds()
	logf("memory: committed after %.1f s; waiting for %s objects", res.CopySeconds, thousands(int64(res.Rows)))
	alive := func() error {
		if c.exited() {
			return fmt.Errorf("cdc-indexer exited (%v):\n%s", c.err, c.logTail())
		}
		return nil
	}
	end, err := b.weav.waitCount(ctx, coll, res.Rows, time.Second, 45*time.Minute, alive)
	if err != nil {
		return err
	}
	st, err = procStatus(c.pid())
	if err != nil {
		return err
	}
	close(stopSampling)
	wg.Wait()
	res.PeakRSSMB, res.EndRSSMB = st.hwmMB, st.rssMB
	res.DrainSeconds = end.Sub(done.At).Seconds()
	res.RowsPerSecond = float64(res.Rows) / res.DrainSeconds
	b.res.Memory = res
	logf("memory: peak RSS %.1f MB (ready %.1f MB, end %.1f MB), %s rows in %.0f s after commit",
		res.PeakRSSMB, res.ReadyRSSMB, res.EndRSSMB, thousands(int64(res.Rows)), res.DrainSeconds)
	if err := c.stop(); err != nil {
		logf("memory: cdc-indexer stop: %v", err)
	}
	return nil
}

type statusFigures struct{ rssMB, hwmMB float64 }

// procStatus reads VmRSS and VmHWM of a process from /proc/PID/status.
func procStatus(pid int) (statusFigures, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return statusFigures{}, err
	}
	defer f.Close()
	var st statusFigures
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		kb, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			st.rssMB = kb / 1024
		case "VmHWM":
			st.hwmMB = kb / 1024
		}
	}
	return st, sc.Err()
}

// procCPU is the user plus system CPU time a process has used so far.
func procCPU(pid int) (time.Duration, error) {
	if statFields(pid) == nil {
		return 0, fmt.Errorf("no process %d", pid)
	}
	return statTimes(pid, false), nil
}
