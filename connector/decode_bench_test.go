package connector

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// benchTable is the benchmark's public.docs: a bigint key, four text
// columns (one of them a ~650-byte body) and a timestamptz.
var benchTable = TableInfo{
	Name: TableName{"public", "docs"},
	Columns: []Column{
		{Name: "id", OID: pgtype.Int8OID, BaseOID: pgtype.Int8OID},
		{Name: "title", OID: pgtype.TextOID, BaseOID: pgtype.TextOID},
		{Name: "body", OID: pgtype.TextOID, BaseOID: pgtype.TextOID},
		{Name: "author", OID: pgtype.TextOID, BaseOID: pgtype.TextOID},
		{Name: "category", OID: pgtype.TextOID, BaseOID: pgtype.TextOID},
		{Name: "updated_at", OID: pgtype.TimestamptzOID, BaseOID: pgtype.TimestamptzOID},
	},
	Key: []string{"id"},
}

func benchDecoder(b *testing.B) *Decoder {
	d := NewDecoder([]TableInfo{benchTable})
	cols := make([]relCol, len(benchTable.Columns))
	for i, c := range benchTable.Columns {
		cols[i] = relCol{c.Name, c.OID, c.Name == "id"}
	}
	if _, err := d.Decode(relationMsg(16384, "public", "docs", 'd', cols...)); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Decode(begin(100)); err != nil {
		b.Fatal(err)
	}
	return d
}

func benchInsert(id int) []byte {
	body := strings.Repeat("replication slot stream commit ", 22)
	return tuple(wire{'I'}.u32(16384).u8('N'),
		s(strconv.Itoa(id)), s("Document "+strconv.Itoa(id)), s(body), s("author7"), s("cat3"),
		s(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Format("2006-01-02 15:04:05.999999-07")))
}

// BenchmarkDecodeInsert is the reader's per-row cost of pgoutput decoding
// (pglogrepl parsing, value decoding, key extraction) for one insert.
func BenchmarkDecodeInsert(b *testing.B) {
	d := benchDecoder(b)
	msg := benchInsert(42)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTypeMapDecodeText is the cost of one text column's value.
func BenchmarkTypeMapDecodeText(b *testing.B) {
	tm := NewTypeMap(nil)
	data := []byte(strings.Repeat("replication slot stream commit ", 22))
	b.ReportAllocs()
	for b.Loop() {
		tm.Decode(pgtype.TextOID, data)
	}
}
