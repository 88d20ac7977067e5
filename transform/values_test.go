package transform

import (
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

func TestParseArray(t *testing.T) {
	type e = arrayElem
	for _, tc := range []struct {
		in    string
		delim byte
		want  []arrayElem
		ok    bool
	}{
		{"{}", ',', nil, true},
		{"{a}", ',', []e{{text: "a"}}, true},
		{`{a,"b c",NULL,null,"NULL",""}`, ',', []e{{text: "a"}, {text: "b c"}, {text: "NULL", null: true}, {text: "null", null: true}, {text: "NULL"}, {text: ""}}, true},
		{`{"a\"b","c\\d","{x,y}"}`, ',', []e{{text: `a"b`}, {text: `c\d`}, {text: "{x,y}"}}, true},
		{"{{1,2},{3,4}}", ',', []e{{text: "1"}, {text: "2"}, {text: "3"}, {text: "4"}}, true},
		{"[0:1]={7,8}", ',', []e{{text: "7"}, {text: "8"}}, true},
		{"{(1,1),(0,0);(2,2),(1,1)}", ';', []e{{text: "(1,1),(0,0)"}, {text: "(2,2),(1,1)"}}, true},
		{`{"東京","😀"}`, ',', []e{{text: "東京"}, {text: "😀"}}, true},
		{"", ',', nil, false},
		{"1 2 3", ',', nil, false}, // int2vector
		{"{a,b", ',', nil, false},
		{`{"a}`, ',', nil, false},
		{"{a}}", ',', nil, false},
		{"{a}x", ',', nil, false},
	} {
		got, ok := parseArray(tc.in, tc.delim)
		if ok != tc.ok || (ok && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("parseArray(%q) = %#v, %v; want %#v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestColumnType(t *testing.T) {
	for _, tc := range []struct {
		col  connector.Column
		want colType
		kind Kind
	}{
		{connector.Column{OID: pgtype.Int8OID, BaseOID: pgtype.Int8OID}, colType{scalar: scalarInt}, KindInt},
		{connector.Column{OID: pgtype.Int2OID}, colType{scalar: scalarInt}, KindInt}, // BaseOID unset
		{connector.Column{OID: pgtype.Float4OID, BaseOID: pgtype.Float4OID}, colType{scalar: scalarFloat}, KindNumber},
		{connector.Column{OID: pgtype.NumericOID, BaseOID: pgtype.NumericOID}, colType{scalar: scalarNumeric}, KindNumber},
		{connector.Column{OID: pgtype.BoolOID, BaseOID: pgtype.BoolOID}, colType{scalar: scalarBool}, KindBool},
		{connector.Column{OID: pgtype.DateOID, BaseOID: pgtype.DateOID}, colType{scalar: scalarDate}, KindDate},
		{connector.Column{OID: pgtype.JSONBOID, BaseOID: pgtype.JSONBOID}, colType{scalar: scalarJSON}, KindText},
		{connector.Column{OID: pgtype.UUIDOID, BaseOID: pgtype.UUIDOID}, colType{scalar: scalarText}, KindText},
		{connector.Column{OID: 790, BaseOID: 790, Category: 'N'}, colType{scalar: scalarText}, KindText}, // money
		{connector.Column{OID: 90000, BaseOID: 90000, Category: 'E'}, colType{scalar: scalarText}, KindText},
		{connector.Column{OID: 90001, BaseOID: pgtype.TimestamptzOID, Category: 'D'}, colType{scalar: scalarTimestamptz}, KindDate}, // domain
		{connector.Column{OID: pgtype.Int4ArrayOID, BaseOID: pgtype.Int4ArrayOID, Category: 'A', ElemOID: pgtype.Int4OID}, colType{scalar: scalarInt, array: true, delim: ','}, KindIntArray},
		{connector.Column{OID: 90002, BaseOID: 90002, Category: 'A', ElemOID: 90000}, colType{scalar: scalarText, array: true, delim: ','}, KindTextArray}, // enum[]
		{connector.Column{OID: 90003, BaseOID: pgtype.BoolArrayOID, Category: 'A'}, colType{scalar: scalarBool, array: true, delim: ','}, KindBoolArray},   // domain over bool[]
		{connector.Column{OID: pgtype.BoxArrayOID, BaseOID: pgtype.BoxArrayOID, Category: 'A', ElemOID: pgtype.BoxOID}, colType{scalar: scalarText, array: true, delim: ';'}, KindTextArray},
		{connector.Column{OID: pgtype.TimestampArrayOID, BaseOID: pgtype.TimestampArrayOID, Category: 'A', ElemOID: pgtype.TimestampOID}, colType{scalar: scalarTimestamp, array: true, delim: ','}, KindDateArray},
		{connector.Column{OID: pgtype.Float8ArrayOID, BaseOID: pgtype.Float8ArrayOID, Category: 'A', ElemOID: pgtype.Float8OID}, colType{scalar: scalarFloat, array: true, delim: ','}, KindNumberArray},
	} {
		got := columnType(tc.col)
		if got != tc.want || got.kind() != tc.kind {
			t.Errorf("columnType(%+v) = %+v (kind %v), want %+v (kind %v)", tc.col, got, got.kind(), tc.want, tc.kind)
		}
	}
}

func TestTemplateValueGoFallbacks(t *testing.T) {
	// Text that does not parse falls back to the decoded Go value, then to
	// the text itself.
	for _, tc := range []struct {
		typ  colType
		val  connector.Value
		want any
	}{
		{colType{scalar: scalarInt}, connector.Value{Text: "", Go: int32(5)}, int64(5)},
		{colType{scalar: scalarFloat}, connector.Value{Text: "", Go: float32(0.5)}, 0.5},
		{colType{scalar: scalarBool}, connector.Value{Text: "", Go: false}, false},
		{colType{scalar: scalarInt}, connector.Value{Text: "x"}, "x"},
		{colType{scalar: scalarFloat}, connector.Value{Text: "Infinity"}, posInf},
		{colType{scalar: scalarInt, array: true, delim: ','}, connector.Value{Text: "not an array"}, "not an array"},
	} {
		if got := templateValue(tc.typ, tc.val); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("templateValue(%+v, %+v) = %#v, want %#v", tc.typ, tc.val, got, tc.want)
		}
	}
}

var posInf = func() float64 { f, _ := toFloat64("+Inf", nil); return f }()
