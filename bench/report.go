package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// results is everything one run measured; it is what results.json holds.
type results struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Duration string    `json:"duration"`
	Machine  machine   `json:"machine"`
	Options  options   `json:"options"`
	Sections []string  `json:"sections"`
	// Table is the printed table, row by row.
	Table []row `json:"table"`

	Decode     *decodeResult     `json:"decode,omitempty"`
	Sink       *sinkResult       `json:"sink,omitempty"`
	Freshness  []*freshResult    `json:"freshness,omitempty"`
	Searchable *searchableResult `json:"searchable,omitempty"`
	Snapshot   *snapshotResult   `json:"snapshot,omitempty"`
	Verify     *verifyResult     `json:"verify,omitempty"`
	Cost       *costResult       `json:"cost,omitempty"`
	Memory     *memoryResult     `json:"memory,omitempty"`
	Scaling    []*scalePoint     `json:"scaling,omitempty"`
	Errors     map[string]string `json:"errors,omitempty"`
	Notes      map[string]string `json:"notes,omitempty"`
}

type row struct {
	Section  string `json:"section"`
	Measure  string `json:"measure"`
	Value    string `json:"value"`
	Baseline string `json:"baseline"`
	Ratio    string `json:"ratio"`
	Target   string `json:"target"`
	Status   string `json:"status"`
}

func newResults(o options, sections []string) *results {
	return &results{Started: time.Now(), Options: o, Sections: sections, Errors: map[string]string{}, Notes: map[string]string{}}
}

func (r *results) fail(section string, err error) { r.Errors[section] = err.Error() }
func (r *results) note(section, msg string)       { r.Notes[section] = msg }

// rows builds the table from the section results, in section order.
func (r *results) rows() []row {
	var out []row
	for _, s := range r.Sections {
		var rs []row
		switch s {
		case "decode":
			if r.Decode != nil {
				rs = r.Decode.rows()
			}
		case "sink":
			if r.Sink != nil {
				rs = r.Sink.rows()
			}
		case "freshness":
			for _, f := range r.Freshness {
				rs = append(rs, f.rows()...)
			}
			if r.Searchable != nil {
				rs = append(rs, r.Searchable.rows()...)
			}
		case "snapshot":
			if r.Snapshot != nil {
				rs = r.Snapshot.rows()
			}
			if r.Verify != nil {
				rs = append(rs, r.Verify.rows()...)
			}
		case "cost":
			if r.Cost != nil {
				rs = r.Cost.rows()
			}
		case "memory":
			if r.Memory != nil {
				rs = r.Memory.rows()
			}
		case "scaling":
			rs = scalingRows(r.Scaling)
		}
		if err, ok := r.Errors[s]; ok {
			rs = append(rs, row{Section: s, Measure: "section failed", Status: "error: " + oneLine(err, 160)})
		} else if n, ok := r.Notes[s]; ok && len(rs) == 0 {
			rs = append(rs, row{Section: s, Measure: "-", Status: n})
		}
		out = append(out, rs...)
	}
	return out
}

func (r *results) print(w io.Writer) {
	r.Table = r.rows()
	m := r.Machine
	fmt.Fprintf(w, "\ncdc-indexer bench, %s (%s)\n", r.Started.Format(time.RFC3339), r.Duration)
	fmt.Fprintf(w, "machine: %s, %d cores, %d MB, load average %s at start, %s at end\n", m.CPU, m.Cores, m.MemoryMB, m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "servers: PostgreSQL %s (synchronous_commit=on, fsync=off); Weaviate %s with ASYNC_INDEXING=%t; %s\n\n", m.Postgres, orDash(m.Weaviate), m.AsyncIndexing, m.GoVersion)
	header := row{"section", "measure", "value", "baseline", "ratio", "target", "status"}
	all := append([]row{header}, r.Table...)
	widths := make([]int, 7)
	for _, x := range all {
		for i, c := range x.cells() {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	line := func(cells []string) {
		var sb strings.Builder
		sb.WriteString("|")
		for i, c := range cells {
			sb.WriteString(" " + c + strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)) + " |")
		}
		fmt.Fprintln(w, sb.String())
	}
	line(header.cells())
	sep := make([]string, 7)
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
	}
	line(sep)
	for _, x := range r.Table {
		line(x.cells())
	}
}

func (x row) cells() []string {
	return []string{x.Section, x.Measure, orDash(x.Value), orDash(x.Baseline), orDash(x.Ratio), orDash(x.Target), orDash(x.Status)}
}

func (r *results) write(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string, maxLen int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return s
}

// status compares a value with a target: at least (higher is better) or
// at most.
func status(value, target float64, atLeast bool) string {
	if math.IsNaN(value) {
		return "n/a"
	}
	if (atLeast && value >= target) || (!atLeast && value <= target) {
		return "met"
	}
	return "MISSED"
}

func ratioStr(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2fx", r)
}

// rate formats a throughput with a thousands separator.
func rate(v float64, unit string) string {
	return thousands(int64(math.Round(v))) + " " + unit
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func ms(d float64) string { return fmt.Sprintf("%.1f ms", d*1000) }

// percentile of sorted samples (nearest rank).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func sortedCopy(v []float64) []float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s
}

func seconds(d time.Duration) float64 { return d.Seconds() }
