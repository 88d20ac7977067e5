package reindex

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Spec is everything that shapes the objects of one collection version.
// Its JSON form is recorded in the state schema; it holds no secrets.
type Spec struct {
	Mappings  []Mapping `json:"mappings"` // sorted by Table
	MaxTokens int       `json:"max_tokens"`
	Overlap   int       `json:"overlap"`
	Embedding Embedding `json:"embedding"`
}

// Mapping is one table's part of a Spec.
type Mapping struct {
	Table    string   `json:"table"`
	Template string   `json:"template"`
	Metadata []string `json:"metadata"`
	Tenant   string   `json:"tenant,omitempty"`
}

// Embedding is what decides a version's vectors: who makes them, with which
// model, of which length. Where the provider is reached (base URL, key,
// limits) is not part of it: the same model behind another endpoint makes
// the same vectors.
type Embedding struct {
	Provider         string         `json:"provider"`
	Model            string         `json:"model"`
	Dimensions       int            `json:"dimensions"`
	Vectorizer       string         `json:"vectorizer,omitempty"`
	VectorizerConfig map[string]any `json:"vectorizer_config,omitempty"`
}

// Normalize sorts the mappings, so that a reordered configuration has the
// same fingerprint.
func (s Spec) Normalize() Spec {
	out := s
	out.Mappings = slices.Clone(s.Mappings)
	slices.SortFunc(out.Mappings, func(a, b Mapping) int { return strings.Compare(a.Table, b.Table) })
	for i := range out.Mappings {
		if out.Mappings[i].Metadata == nil {
			out.Mappings[i].Metadata = []string{}
		}
	}
	return out
}

// Fingerprint is a hex SHA-256 over the normalized spec's JSON (Go's
// encoding/json sorts map keys, so equal specs hash equally).
func (s Spec) Fingerprint() string {
	raw, err := json.Marshal(s.Normalize())
	if err != nil {
		// Only VectorizerConfig could hold something JSON cannot encode,
		// and it came from YAML: unreachable, but never hash a partial form.
		raw = []byte(fmt.Sprintf("%#v", s.Normalize()))
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// Mapping returns the spec's mapping of table.
func (s Spec) Mapping(table string) (Mapping, bool) {
	for _, m := range s.Mappings {
		if m.Table == table {
			return m, true
		}
	}
	return Mapping{}, false
}

// Changes names what differs between two specs, for the log line that
// explains why a reindex starts.
func Changes(old, now Spec) []string {
	old, now = old.Normalize(), now.Normalize()
	var out []string
	if old.MaxTokens != now.MaxTokens || old.Overlap != now.Overlap {
		out = append(out, "chunking")
	}
	if mustJSON(old.Embedding) != mustJSON(now.Embedding) {
		out = append(out, "embedding")
	}
	tables := map[string]bool{}
	for _, m := range old.Mappings {
		tables[m.Table] = true
	}
	for _, m := range now.Mappings {
		tables[m.Table] = true
	}
	names := make([]string, 0, len(tables))
	for t := range tables {
		names = append(names, t)
	}
	slices.Sort(names)
	for _, t := range names {
		om, inOld := old.Mapping(t)
		nm, inNow := now.Mapping(t)
		switch {
		case !inOld:
			out = append(out, "mapping of "+t+" added")
		case !inNow:
			out = append(out, "mapping of "+t+" removed")
		default:
			if om.Template != nm.Template {
				out = append(out, "template of "+t)
			}
			if !slices.Equal(om.Metadata, nm.Metadata) {
				out = append(out, "metadata of "+t)
			}
			if om.Tenant != nm.Tenant {
				out = append(out, "tenant of "+t)
			}
		}
	}
	return out
}

func mustJSON(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

// PhysicalName is the Weaviate collection of version n of a configured
// collection. Weaviate class names are [A-Z][_0-9A-Za-z]*, which the
// configured name already is.
func PhysicalName(collection string, version int) string {
	return fmt.Sprintf("%s_v%d", collection, version)
}

// SameEncoding reports whether s and o chunk and embed alike (chunking and
// embedding equal): a version whose spec does not can share neither the
// configuration's chunker nor its embedder.
func (s Spec) SameEncoding(o Spec) bool {
	return s.MaxTokens == o.MaxTokens && s.Overlap == o.Overlap && mustJSON(s.Embedding) == mustJSON(o.Embedding)
}
