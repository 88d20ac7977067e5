package verify

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// Kinds of difference, as the contract names them (section 6).
const (
	Missing   = "missing"   // a row with no object, or chunks absent below its chunk_count (per row)
	Stale     = "stale"     // an object whose text, metadata, chunk_count, content_hash or vector length differs (per object)
	Extra     = "extra"     // an object of a gone row, a chunk past chunk_count, in another tenant, or with a foreign id (per object)
	Duplicate = "duplicate" // a second object for one (row, chunk) (per surplus object)
	// StateMismatch: the state schema's record of an indexed row (content
	// hash, chunk count) disagrees with the objects Weaviate holds. The
	// pipeline trusts that record to skip no-op changes and to prune
	// surplus chunks, so a wrong one makes future drift (per row).
	StateMismatch = "state"
)

// Finding is one difference of one row.
type Finding struct {
	Kind   string `json:"kind"`
	Key    string `json:"source_key"`
	Chunk  int    `json:"chunk_index"` // -1 for a whole row
	ID     string `json:"id,omitempty"`
	Tenant string `json:"tenant,omitempty"`
	Detail string `json:"detail"`
	// lsn is the object's source_lsn, for a repair that deletes it only
	// while it is unchanged.
	lsn string
	// tokens are the embedding tokens of the row's document, for the cost
	// of re-indexing it (missing, stale and state findings).
	tokens int
}

// CompareState checks the state's record of a row whose objects match its
// document (CompareRow found nothing): recorded is nil when the state has
// no record of the row. Pure.
func CompareState(key string, d *transform.Document, recorded *state.DocState) []Finding {
	switch {
	case recorded == nil || recorded.ContentHash == "":
		return []Finding{{Kind: StateMismatch, Key: key, Chunk: -1, Tenant: d.Tenant,
			Detail: "indexed, but the state schema has no record of it (a shrinking document would keep surplus chunks)"}}
	case recorded.ContentHash != d.ContentHash:
		return []Finding{{Kind: StateMismatch, Key: key, Chunk: -1, Tenant: d.Tenant,
			Detail: fmt.Sprintf("state records content_hash %.12s..., Weaviate holds %.12s...", recorded.ContentHash, d.ContentHash)}}
	case recorded.ChunkCount != len(d.Chunks):
		return []Finding{{Kind: StateMismatch, Key: key, Chunk: -1, Tenant: d.Tenant,
			Detail: fmt.Sprintf("state records %d chunks, Weaviate holds %d", recorded.ChunkCount, len(d.Chunks))}}
	case recorded.Tenant != d.Tenant:
		return []Finding{{Kind: StateMismatch, Key: key, Chunk: -1, Tenant: d.Tenant,
			Detail: fmt.Sprintf("state records tenant %q, Weaviate holds the row in %q", recorded.Tenant, d.Tenant)}}
	}
	return nil
}

// Expected is a row's current document as the pipeline would index it.
type Expected struct {
	Doc *transform.Document // rendered and chunked, without vectors
	// Dimensions is the vector length every object must have; 0 skips the
	// check (provider none: Weaviate's vectorizer decides).
	Dimensions int
}

// CompareRow classifies the objects found for one row (key) of a mapping
// against what the row renders to now; exp is nil when the row does not
// exist. objs may come from several tenants. Pure: every decision of verify
// about one row is here.
//
// collection is the name the objects' IDs are computed over: the configured
// collection, whichever version holds them.
func CompareRow(collection, sourceTable, key string, exp *Expected, objs []sink.StoredObject) []Finding {
	var out []Finding
	if exp == nil {
		for _, o := range objs {
			out = append(out, Finding{Kind: Extra, Key: key, Chunk: o.ChunkIndex, ID: o.ID, Tenant: o.Tenant, lsn: o.SourceLSN, Detail: "the row does not exist"})
		}
		return out
	}
	d := exp.Doc
	count := len(d.Chunks)
	// Objects at their deterministic id, by chunk; any other is extra or a
	// duplicate.
	byChunk := map[int]sink.StoredObject{}
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].ChunkIndex < objs[j].ChunkIndex })
	for _, o := range objs {
		switch {
		case o.Tenant != d.Tenant:
			out = append(out, Finding{Kind: Extra, Key: key, Chunk: o.ChunkIndex, ID: o.ID, Tenant: o.Tenant, lsn: o.SourceLSN,
				Detail: fmt.Sprintf("in tenant %q, the row's is %q", o.Tenant, d.Tenant)})
		case o.ChunkIndex < 0 || o.ChunkIndex >= count:
			out = append(out, Finding{Kind: Extra, Key: key, Chunk: o.ChunkIndex, ID: o.ID, Tenant: o.Tenant, lsn: o.SourceLSN,
				Detail: fmt.Sprintf("chunk %d past the document's %d chunks", o.ChunkIndex, count)})
		case o.ID != string(sink.ObjectID(collection, sourceTable, key, o.ChunkIndex)):
			out = append(out, Finding{Kind: Duplicate, Key: key, Chunk: o.ChunkIndex, ID: o.ID, Tenant: o.Tenant, lsn: o.SourceLSN,
				Detail: "a second object for the chunk, at an id that is not the chunk's deterministic id"})
		default:
			byChunk[o.ChunkIndex] = o
		}
	}
	var absent []int
	for i := 0; i < count; i++ {
		o, ok := byChunk[i]
		if !ok {
			absent = append(absent, i)
			continue
		}
		if why := staleness(d, exp.Dimensions, o); why != "" {
			out = append(out, Finding{Kind: Stale, Key: key, Chunk: i, ID: o.ID, Tenant: o.Tenant, lsn: o.SourceLSN, Detail: why})
		}
	}
	if len(absent) > 0 {
		out = append(out, Finding{Kind: Missing, Key: key, Chunk: -1, Tenant: d.Tenant,
			Detail: fmt.Sprintf("chunks %v of %d absent", absent, count)})
	}
	return out
}

// staleness says how an object at its right id differs from chunk
// o.ChunkIndex of d, or "".
func staleness(d *transform.Document, dims int, o sink.StoredObject) string {
	c := d.Chunks[o.ChunkIndex]
	switch {
	case o.Text != c.Text:
		return fmt.Sprintf("text %q, want %q", abbreviate(o.Text), abbreviate(c.Text))
	case o.ChunkCount != len(d.Chunks):
		return fmt.Sprintf("chunk_count %d, want %d", o.ChunkCount, len(d.Chunks))
	case o.ContentHash != d.ContentHash:
		return fmt.Sprintf("content_hash %.12s..., want %.12s...", o.ContentHash, d.ContentHash)
	case dims > 0 && len(o.Vector) != dims:
		return fmt.Sprintf("vector length %d, want %d", len(o.Vector), dims)
	}
	if name, got, want, ok := metadataDiff(d.Metadata, o.Metadata); !ok {
		return fmt.Sprintf("metadata %s = %v, want %v", name, got, want)
	}
	return ""
}

// metadataDiff compares the rendered metadata (column -> value) with an
// object's properties (property name -> value as read back).
func metadataDiff(want, got map[string]any) (name string, g, w any, ok bool) {
	seen := map[string]bool{}
	cols := make([]string, 0, len(want))
	for col := range want {
		cols = append(cols, col)
	}
	sort.Strings(cols)
	for _, col := range cols {
		prop := sink.PropertyName(col)
		seen[prop] = true
		if !sameValue(got[prop], want[col]) {
			return prop, got[prop], want[col], false
		}
	}
	for prop, v := range got {
		if !seen[prop] && v != nil {
			return prop, v, nil, false
		}
	}
	return "", nil, nil, true
}

// sameValue compares a rendered metadata value with the value read back.
// Dates compare as Weaviate normalises them: RFC 3339 text of one instant.
func sameValue(got, want any) bool {
	if reflect.DeepEqual(got, want) {
		return true
	}
	return fmt.Sprint(got) == fmt.Sprint(want)
}

func abbreviate(s string) string {
	if len(s) <= 60 {
		return s
	}
	return strings.ToValidUTF8(s[:60], "") + "..."
}
