package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
)

// Report is what verify found, per mapping; its JSON form is the
// contract's (section 6).
type Report struct {
	Mappings []MappingReport `json:"mappings"`
}

// MappingReport is one mapping's counts and a few examples of each kind.
type MappingReport struct {
	Table      string `json:"table"`
	Collection string `json:"collection"`
	// Version is the Weaviate collection compared: the version the
	// configured collection (an alias) serves from.
	Version   string `json:"version,omitempty"`
	Rows      int64  `json:"rows"`    // rows of the table
	Objects   int64  `json:"objects"` // objects of the table in the collection
	Missing   int64  `json:"missing"`
	Stale     int64  `json:"stale"`
	Extra     int64  `json:"extra"`
	Duplicate int64  `json:"duplicate"`
	// StateMismatch counts rows whose record in the state schema disagrees
	// with what Weaviate holds (verify compares the state too).
	StateMismatch int64     `json:"state_mismatch"`
	Examples      []Finding `json:"examples"`
	// RepairRows and RepairTokens are what --repair would re-index: rows,
	// and the embedding tokens of their documents (an upper bound: the
	// embedding cache keeps unchanged chunk texts free). RepairDeletes is
	// the objects it would delete.
	RepairRows    int64 `json:"repair_rows"`
	RepairTokens  int64 `json:"repair_tokens"`
	RepairDeletes int64 `json:"repair_deletes"`
	// Unconfirmed: more rows differed than a recheck takes; the counts are
	// the first pass's, and may include changes that were on their way.
	Unconfirmed bool `json:"unconfirmed,omitempty"`
	// Findings are every difference (for a repair); not printed.
	Findings []Finding `json:"-"`
}

// InSync reports whether no mapping differs.
func (r *Report) InSync() bool {
	for _, m := range r.Mappings {
		if m.Drift() > 0 {
			return false
		}
	}
	return true
}

// Drift is the mapping's number of differences.
func (m MappingReport) Drift() int64 {
	return m.Missing + m.Stale + m.Extra + m.Duplicate + m.StateMismatch
}

func (m *MappingReport) add(findings []Finding) {
	sort.Slice(findings, func(i, j int) bool {
		a, b := findings[i], findings[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Chunk < b.Chunk
	})
	m.Findings = findings
	shown := map[string]int{}
	m.Examples = []Finding{}
	reindex := map[string]bool{}
	for _, f := range findings {
		switch f.Kind {
		case Missing:
			m.Missing++
		case Stale:
			m.Stale++
		case Extra:
			m.Extra++
		case Duplicate:
			m.Duplicate++
		case StateMismatch:
			m.StateMismatch++
		}
		switch f.Kind {
		case Extra, Duplicate:
			m.RepairDeletes++
		default:
			if !reindex[f.Key] {
				reindex[f.Key] = true
				m.RepairRows++
				m.RepairTokens += int64(f.tokens)
			}
		}
		if shown[f.Kind] < examplesPerKind {
			shown[f.Kind]++
			m.Examples = append(m.Examples, f)
		}
	}
}

// Print writes the report as a table with examples.
func (r *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tCOLLECTION\tROWS\tOBJECTS\tMISSING\tSTALE\tEXTRA\tDUPLICATE\tSTATE")
	for _, m := range r.Mappings {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", m.Table, m.Collection, m.Rows, m.Objects, m.Missing, m.Stale, m.Extra, m.Duplicate, m.StateMismatch)
	}
	tw.Flush()
	for _, m := range r.Mappings {
		if m.Unconfirmed {
			fmt.Fprintf(w, "note: %s -> %s: too many differences to recheck; the counts may include changes that were on their way\n", m.Table, m.Collection)
		}
		for _, f := range m.Examples {
			where := ""
			if f.Chunk >= 0 {
				where = fmt.Sprintf(" chunk %d", f.Chunk)
			}
			if f.Tenant != "" {
				where += " tenant " + f.Tenant
			}
			fmt.Fprintf(w, "%s %s -> %s: key %s%s: %s\n", f.Kind, m.Table, m.Collection, f.Key, where, f.Detail)
		}
	}
	if r.InSync() {
		fmt.Fprintln(w, "in sync")
	}
}

// PrintJSON writes the report as JSON.
func (r *Report) PrintJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// PrintPlan writes what a repair would do, and what it would cost to embed
// at price (per million tokens; 0: unknown).
func (r *Report) PrintPlan(w io.Writer, price float64) {
	for _, m := range r.Mappings {
		if m.Drift() == 0 {
			continue
		}
		fmt.Fprintf(w, "repair %s -> %s: delete %d objects, re-index %d rows (at most %d embedding tokens",
			m.Table, m.Collection, m.RepairDeletes, m.RepairRows, m.RepairTokens)
		if price > 0 {
			fmt.Fprintf(w, ", about %.4f at embedding.price_per_million_tokens %g", float64(m.RepairTokens)*price/1e6, price)
		}
		fmt.Fprintln(w, "; unchanged chunk texts come from the embedding cache)")
	}
}

// version is the Weaviate collection the mapping was compared in.
func (m MappingReport) version() string {
	if m.Version != "" {
		return m.Version
	}
	return m.Collection
}
