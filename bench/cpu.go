package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuUse is the CPU time the parts of a measurement used, in seconds.
type cpuUse struct {
	Weaviate float64 `json:"weaviate"`
	Postgres float64 `json:"postgres"` // postmaster and every backend, walsenders included
	Bench    float64 `json:"bench"`    // this process: load generator, plain client, in-process connector
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
		u.Postgres = postgresCPU(m.postmasterPID).Seconds()
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.Bench = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return u
}

func (u cpuUse) minus(v cpuUse) cpuUse {
	return cpuUse{Weaviate: u.Weaviate - v.Weaviate, Postgres: u.Postgres - v.Postgres, Bench: u.Bench - v.Bench}
}

// postgresCPU is the postmaster's CPU time with that of its exited
// children (which it reaped) and its live children.
func postgresCPU(postmaster int) time.Duration {
	total := statTimes(postmaster, true)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == postmaster {
			continue
		}
		if parentOf(pid) == postmaster {
			total += statTimes(pid, false)
		}
	}
	return total
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
