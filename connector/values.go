package connector

import (
	"github.com/jackc/pgx/v5/pgtype"
)

// TypeMap decodes PostgreSQL text forms into Values. The stream and FetchRows
// share it so that a value looks the same whichever way it was read.
//
// A TypeMap is not safe for concurrent use (pgtype.Map caches plans); give
// each goroutine its own.
type TypeMap struct {
	m *pgtype.Map
	// base maps a domain's OID to its base type's OID, learnt from the
	// configured tables' columns.
	base map[uint32]uint32
}

// NewTypeMap returns a TypeMap that knows pgx's built-in types and the
// domains used by the given tables.
func NewTypeMap(tables []TableInfo) *TypeMap {
	tm := &TypeMap{m: pgtype.NewMap(), base: map[uint32]uint32{}}
	for _, t := range tables {
		for _, c := range t.Columns {
			if c.BaseOID != 0 && c.BaseOID != c.OID {
				tm.base[c.OID] = c.BaseOID
			}
		}
	}
	return tm
}

// Null is a NULL of the given type.
func (tm *TypeMap) Null(oid uint32) Value {
	return Value{Null: true, OID: oid}
}

// Decode turns the text form of a value of type oid into a Value: Text is the
// text form as PostgreSQL printed it; Go is pgx's decoding of it when pgx
// knows the type (for a domain: its base type), else nil. A value pgx fails
// to decode keeps its Text and gets a nil Go: it never fails the caller.
func (tm *TypeMap) Decode(oid uint32, data []byte) Value {
	v := Value{Text: string(data), OID: oid}
	decodeOID := oid
	if b, ok := tm.base[oid]; ok {
		decodeOID = b
	}
	if decodeOID == pgtype.TextOID || decodeOID == pgtype.VarcharOID {
		// pgx decodes these to a copy of the same string: skip both copies.
		v.Go = v.Text
		return v
	}
	t, ok := tm.m.TypeForOID(decodeOID)
	if !ok {
		return v
	}
	goVal, err := decodeText(tm.m, t, decodeOID, []byte(v.Text))
	if err != nil {
		return v
	}
	if s, ok := goVal.(string); ok && s == v.Text {
		goVal = v.Text // share the string instead of holding a second copy
	}
	v.Go = goVal
	return v
}

func decodeText(m *pgtype.Map, t *pgtype.Type, oid uint32, src []byte) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, errDecodePanic
		}
	}()
	return t.Codec.DecodeValue(m, oid, pgtype.TextFormatCode, src)
}

type decodeError string

func (e decodeError) Error() string { return string(e) }

const errDecodePanic = decodeError("value decoding panicked")
