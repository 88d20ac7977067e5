package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuUse is the CPU time the parts of a measurement used, in seconds.
type cpuUse struct {
	Weaviate float64 `json:"weaviate"`
	Postgres float64 `json:"postgres"` // postmaster and every backend, walsenders included
	// PostgresBy splits Postgres by kind of process: "walsender" (logical
	// decoding), "backend" (client sessions: the load, the connector's
	// state and snapshot queries), "background" (checkpointer, WAL writer,
	// autovacuum launcher...) and "exited" (reaped children: autovacuum
	// workers, closed sessions).
	PostgresBy map[string]float64 `json:"postgres_by_kind,omitempty"`
	Bench      float64            `json:"bench"` // this process: load generator, plain client, in-process connector
}

// cpuMeter reads the CPU time used so far by the Weaviate and PostgreSQL
// servers of the run and by this process.
type cpuMeter struct {
	weaviatePID, postmasterPID int
}

func (b *bench) newCPUMeter() *cpuMeter {
	m := &cpuMeter{}
	if b.wv != nil {
		m.weaviatePID = findProcess(func(cmd []string) bool {
			return len(cmd) > 0 && strings.HasSuffix(cmd[0], "weaviate-server") && hasArgs(cmd, "--port", portOf(b.wv.URL()))
		})
	}
	if b.pg != nil {
		dataDir := filepath.Join(b.pg.Dir(), "data")
		m.postmasterPID = findProcess(func(cmd []string) bool {
			return len(cmd) > 0 && strings.HasSuffix(cmd[0], "postgres") && hasArgs(cmd, "-D", dataDir)
		})
	}
	return m
}

func (m *cpuMeter) now() cpuUse {
	var u cpuUse
	if m.weaviatePID > 0 {
		d, _ := procCPU(m.weaviatePID)
		u.Weaviate = d.Seconds()
	}
	if m.postmasterPID > 0 {
		u.PostgresBy = postgresCPU(m.postmasterPID)
		for _, v := range u.PostgresBy {
			u.Postgres += v
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.Bench = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return u
}

func (u cpuUse) minus(v cpuUse) cpuUse {
	d := cpuUse{Weaviate: u.Weaviate - v.Weaviate, Postgres: u.Postgres - v.Postgres, Bench: u.Bench - v.Bench}
	if len(u.PostgresBy) > 0 {
		d.PostgresBy = map[string]float64{}
		for k, x := range u.PostgresBy {
			// A session that exits moves its time from its kind to
			// "exited": differences per kind can then be negative, and
			// are clamped (the total stays exact).
			d.PostgresBy[k] = max(0, x-v.PostgresBy[k])
		}
	}
	return d
}

// postgresCPU is the CPU time, in seconds by kind of process, of the
// postmaster, its live children and its exited (reaped) children.
func postgresCPU(postmaster int) map[string]float64 {
	by := map[string]float64{
		"background": (statTimes(postmaster, false)).Seconds(),
		"exited":     (statTimes(postmaster, true) - statTimes(postmaster, false)).Seconds(),
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == postmaster {
			continue
		}
		if parentOf(pid) == postmaster {
			by[postgresKind(pid)] += statTimes(pid, false).Seconds()
		}
	}
	return by
}

// postgresKind classifies a PostgreSQL child by the title it sets:
// "postgres: walsender ...", "postgres: checkpointer", and for a client
// session "postgres: USER DB HOST(PORT) STATE".
func postgresKind(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return "exited"
	}
	title := strings.TrimPrefix(strings.TrimRight(string(data), "\x00"), "postgres: ")
	switch {
	case strings.HasPrefix(title, "walsender"):
		return "walsender"
	case strings.Contains(title, "("): // HOST(PORT) of a client session
		return "backend"
	default:
		return "background"
	}
}

// statFields are the fields of /proc/PID/stat after the command name.
func statFields(pid int) []string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(data[i+1:]))
}

func parentOf(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// statTimes is utime+stime (and, with children, cutime+cstime).
func statTimes(pid int, children bool) time.Duration {
	f := statFields(pid)
	if len(f) < 15 {
		return 0
	}
	idx := []int{11, 12}
	if children {
		idx = append(idx, 13, 14)
	}
	var ticks int64
	for _, i := range idx {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

func findProcess(match func(cmd []string) bool) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(data) == 0 {
			continue
		}
		if match(strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")) {
			return pid
		}
	}
	return 0
}

func hasArgs(cmd []string, flag, value string) bool {
	for i := 0; i+1 < len(cmd); i++ {
		if cmd[i] == flag && cmd[i+1] == value {
			return true
		}
	}
	return false
}

func portOf(url string) string {
	i := strings.LastIndexByte(url, ':')
	if i < 0 {
		return ""
	}
	return url[i+1:]
}

// postgresKinds formats PostgresBy for a log line, largest first.
func (u cpuUse) postgresKinds() string {
	kinds := make([]string, 0, len(u.PostgresBy))
	for k := range u.PostgresBy {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return u.PostgresBy[kinds[i]] > u.PostgresBy[kinds[j]] })
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %.1f", k, u.PostgresBy[k])
	}
	return strings.Join(parts, ", ")
}
