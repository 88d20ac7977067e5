package transform

import (
	"github.com/jackc/pglogrepl"
)

// Document is a row rendered for the index: its text, its metadata
// properties, and (once chunked and embedded) its chunks.
type Document struct {
	Collection  string
	SourceTable string // contract's source_table (quote_ident form)
	SourceKey   string // contract's source_key
	Text        string
	Metadata    map[string]any // property name -> value in the Go form of its Kind
	ContentHash string
	LSN         pglogrepl.LSN
	// Tenant is the Weaviate tenant the objects belong in; "" for a
	// collection without tenants.
	Tenant string
	Chunks []Chunk
}

// UnknownChunkCount is how many chunks a row had before a write when its
// objects in Weaviate may be ahead of the recorded state: after a crash
// between Weaviate's acknowledgement and the state update, a replayed
// change must not trust the recorded count, or a shrunken document keeps
// stale chunks. The sink then looks the row's objects up.
const UnknownChunkCount = -1

// Chunk is one piece of a Document's text with its vector.
type Chunk struct {
	Index  int
	Text   string
	Vector []float32 // nil when Weaviate vectorizes (provider none)
}

// Kind is the property type a metadata column lands as in Weaviate. The
// transform decides it from the PostgreSQL type; the sink maps it to
// Weaviate's data type.
type Kind uint8

const (
	KindText Kind = iota
	KindInt
	KindNumber
	KindBool
	KindDate // RFC 3339 string
	KindTextArray
	KindIntArray
	KindNumberArray
	KindBoolArray
	KindDateArray
)

// MetadataField is one metadata column and the property type it lands as.
type MetadataField struct {
	Name string
	Kind Kind
}
