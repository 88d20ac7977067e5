package connector

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// pgoutput protocol version 1 messages, encoded by hand.

type wire []byte

func (w wire) u8(v byte) wire    { return append(w, v) }
func (w wire) u16(v uint16) wire { return binary.BigEndian.AppendUint16(w, v) }
func (w wire) u32(v uint32) wire { return binary.BigEndian.AppendUint32(w, v) }
func (w wire) u64(v uint64) wire { return binary.BigEndian.AppendUint64(w, v) }
func (w wire) str(s string) wire { return append(append(w, s...), 0) }

func begin(lsn uint64) []byte { return wire{'B'}.u64(lsn).u64(0).u32(1) }
func commit(lsn uint64) []byte {
	return wire{'C'}.u8(0).u64(lsn).u64(lsn + 8).u64(0)
}

type relCol struct {
	name string
	oid  uint32
	key  bool
}

func relationMsg(id uint32, ns, name string, ident byte, cols ...relCol) []byte {
	w := wire{'R'}.u32(id).str(ns).str(name).u8(ident).u16(uint16(len(cols)))
	for _, c := range cols {
		var flags byte
		if c.key {
			flags = 1
		}
		w = w.u8(flags).str(c.name).u32(c.oid).u32(0xffffffff)
	}
	return w
}

// tuple encodes columns: nil is NULL, "\x00u" unchanged TOAST, else text.
func tuple(w wire, cols ...*string) wire {
	w = w.u16(uint16(len(cols)))
	for _, c := range cols {
		switch {
		case c == nil:
			w = w.u8('n')
		case *c == "\x00u":
			w = w.u8('u')
		default:
			w = append(w.u8('t').u32(uint32(len(*c))), *c...)
		}
	}
	return w
}

func s(v string) *string { return &v }

var toast = s("\x00u")

func mustDecode(t *testing.T, d *Decoder, msg []byte) Message {
	t.Helper()
	m, err := d.Decode(msg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDecoderKeysAndToast(t *testing.T) {
	info := TableInfo{
		Name: TableName{"public", "docs"},
		Columns: []Column{
			{Name: "a", OID: 25, BaseOID: 25}, {Name: "b", OID: 23, BaseOID: 23},
			{Name: "body", OID: 25, BaseOID: 25}, {Name: "n", OID: 23, BaseOID: 23},
		},
		Key: []string{"b", "a"},
	}
	d := NewDecoder([]TableInfo{info})
	cols := []relCol{{"a", 25, true}, {"b", 23, true}, {"body", 25, false}, {"n", 23, false}}
	mustDecode(t, d, relationMsg(10, "public", "docs", 'd', cols...))
	mustDecode(t, d, relationMsg(11, "public", "other", 'd', relCol{"id", 23, true}))

	if m := mustDecode(t, d, begin(100)); m != nil || !d.InTransaction() {
		t.Fatalf("begin: %v", m)
	}
	// Unchanged TOAST without an old tuple: listed, not in Row. A bad int
	// keeps its text.
	m := mustDecode(t, d, tuple(wire{'U'}.u32(10).u8('N'), s("x"), s("1"), toast, s("zz")))
	c := m.(*Change)
	if c.Op != OpUpdate || !c.Key.Equal(Key{"1", "x"}) || c.OldKey != nil || c.CommitLSN != 100 ||
		!reflect.DeepEqual(c.Unchanged, []string{"body"}) || len(c.Row) != 3 {
		t.Errorf("update: %+v", c)
	}
	if v := c.Row["n"]; v.Text != "zz" || v.Go != nil || v.Null || v.OID != 23 {
		t.Errorf("undecodable int: %#v", v)
	}

	// Old key tuple ('K'): non-key columns are NULL; the key changed.
	m = mustDecode(t, d, tuple(tuple(wire{'U'}.u32(10).u8('K'), s("x"), s("1"), nil, nil).u8('N'), s("y"), s("1"), toast, nil))
	c = m.(*Change)
	if !c.Key.Equal(Key{"1", "y"}) || !c.OldKey.Equal(Key{"1", "x"}) || !c.Row["n"].Null {
		t.Errorf("key change: %+v", c)
	}

	// Full old tuple ('O') supplies the unchanged value, unless it lacks it too.
	m = mustDecode(t, d, tuple(tuple(wire{'U'}.u32(10).u8('O'), s("y"), s("1"), s("big"), s("5")).u8('N'), s("y"), s("1"), toast, s("6")))
	c = m.(*Change)
	if c.Row["body"].Text != "big" || len(c.Unchanged) != 0 || c.OldKey != nil || c.Row["n"].Go != int32(6) {
		t.Errorf("full old tuple: %+v", c)
	}
	m = mustDecode(t, d, tuple(tuple(wire{'U'}.u32(10).u8('O'), s("y"), s("1"), toast, s("5")).u8('N'), s("y"), s("1"), toast, s("6")))
	if c = m.(*Change); !reflect.DeepEqual(c.Unchanged, []string{"body"}) {
		t.Errorf("old tuple without the value: %+v", c)
	}

	// Delete with a key tuple.
	m = mustDecode(t, d, tuple(wire{'D'}.u32(10).u8('K'), s("y"), s("1"), nil, nil))
	if c = m.(*Change); c.Op != OpDelete || !c.Key.Equal(Key{"1", "y"}) || c.Row != nil {
		t.Errorf("delete: %+v", c)
	}
	// Other tables are ignored; a truncate of only them too.
	if m := mustDecode(t, d, tuple(wire{'I'}.u32(11).u8('N'), s("1"))); m != nil {
		t.Errorf("ignored insert: %#v", m)
	}
	if m := mustDecode(t, d, wire{'T'}.u32(1).u8(0).u32(11)); m != nil {
		t.Errorf("ignored truncate: %#v", m)
	}
	m = mustDecode(t, d, wire{'T'}.u32(2).u8(0).u32(11).u32(10))
	if c = m.(*Change); c.Op != OpTruncate || c.Table != info.Name || !reflect.DeepEqual(c.Tables, []TableName{info.Name}) {
		t.Errorf("truncate: %+v", c)
	}
	m = mustDecode(t, d, commit(100))
	if cm, ok := m.(*Commit); !ok || cm.CommitLSN != 100 || d.InTransaction() {
		t.Errorf("commit: %#v", m)
	}

	// A transaction with nothing of interest ends without a Commit.
	mustDecode(t, d, begin(200))
	mustDecode(t, d, tuple(wire{'I'}.u32(11).u8('N'), s("1")))
	if m := mustDecode(t, d, commit(200)); m != nil {
		t.Errorf("empty transaction: %#v", m)
	}
}

func TestDecoderErrors(t *testing.T) {
	info := TableInfo{Name: TableName{"public", "t"}, Columns: []Column{{Name: "id", OID: 23}, {Name: "u", OID: 25}}, Key: []string{"id"}}
	d := NewDecoder([]TableInfo{info})
	mustDecode(t, d, begin(1))
	if _, err := d.Decode(tuple(wire{'I'}.u32(10).u8('N'), s("1"), s("a"))); err == nil {
		t.Error("change before its relation accepted")
	}
	// REPLICA IDENTITY USING INDEX on u: the old key does not hold the
	// primary key. Not an error (the WAL would stay undecodable for good):
	// the change says the key was lost.
	mustDecode(t, d, relationMsg(10, "public", "t", 'i', relCol{"id", 23, false}, relCol{"u", 25, true}))
	m, err := d.Decode(tuple(wire{'D'}.u32(10).u8('K'), nil, s("a")))
	if c, ok := m.(*Change); err != nil || !ok || c.Op != OpDelete || !c.KeyLost || c.Key != nil {
		t.Errorf("delete without primary key: %#v, %v", m, err)
	}
	m, err = d.Decode(tuple(tuple(wire{'U'}.u32(10).u8('K'), nil, s("a")).u8('N'), s("3"), s("b")))
	if c, ok := m.(*Change); err != nil || !ok || c.Op != OpUpdate || !c.KeyLost || !c.Key.Equal(Key{"3"}) || c.OldKey != nil {
		t.Errorf("update of the identity without primary key: %#v, %v", m, err)
	}
	if _, err := d.Decode(tuple(wire{'I'}.u32(10).u8('N'), s("1"))); err == nil {
		t.Error("tuple with a missing column accepted")
	}
	// The primary key column was renamed: the column the relation flags as
	// its identity stands in for it.
	mustDecode(t, d, relationMsg(10, "public", "t", 'd', relCol{"ident", 23, true}, relCol{"u", 25, false}))
	m, err = d.Decode(tuple(wire{'I'}.u32(10).u8('N'), s("7"), s("a")))
	if c, ok := m.(*Change); err != nil || !ok || !reflect.DeepEqual(c.Key, Key{"7"}) {
		t.Errorf("insert after the key column was renamed: %#v, %v", m, err)
	}
	// Then the identity moves to another index: its flagged column is not
	// taken for the key; the renamed key column stays followed.
	mustDecode(t, d, relationMsg(10, "public", "t", 'i', relCol{"ident", 23, false}, relCol{"u", 25, true}))
	m, err = d.Decode(tuple(wire{'I'}.u32(10).u8('N'), s("8"), s("b")))
	if c, ok := m.(*Change); err != nil || !ok || !reflect.DeepEqual(c.Key, Key{"8"}) {
		t.Errorf("insert after the identity moved to another index: %#v, %v", m, err)
	}
	// The primary key column was dropped and nothing is flagged in its place.
	mustDecode(t, d, relationMsg(10, "public", "t", 'n', relCol{"other", 23, false}, relCol{"u", 25, false}))
	if _, err := d.Decode(tuple(wire{'I'}.u32(10).u8('N'), s("1"), s("a"))); err == nil {
		t.Error("insert without the primary key column accepted")
	}
	if _, err := d.Decode([]byte{'?'}); err == nil {
		t.Error("unknown message accepted")
	}
}

func TestTypeMapDecode(t *testing.T) {
	tm := NewTypeMap([]TableInfo{{Columns: []Column{{Name: "d", OID: 90001, BaseOID: pgtype.TimestamptzOID}}}})
	for _, tc := range []struct {
		oid  uint32
		text string
		want any
	}{
		{pgtype.Int4OID, "12", int32(12)},
		{pgtype.Int4OID, "twelve", nil},
		{pgtype.Int4ArrayOID, "{1,x}", nil},
		{pgtype.TextOID, "", ""},
		{pgtype.BoolOID, "t", true},
		{pgtype.JSONBOID, "{bad", nil},
		{90002, "unknown type", nil},
		{pgtype.TimestamptzOID, "not a time", nil},
	} {
		v := tm.Decode(tc.oid, []byte(tc.text))
		if v.Text != tc.text || v.OID != tc.oid || v.Null || !reflect.DeepEqual(v.Go, tc.want) {
			t.Errorf("Decode(%d, %q) = %#v, want Go %#v", tc.oid, tc.text, v, tc.want)
		}
	}
	// A domain decodes as its base type but keeps its own OID.
	v := tm.Decode(90001, []byte("2024-01-01 00:00:00+00"))
	if _, ok := v.Go.(interface{ Unix() int64 }); !ok || v.OID != 90001 {
		t.Errorf("domain: %#v", v)
	}
	if v := tm.Null(25); !v.Null || v.OID != 25 || v.Go != nil || v.Text != "" {
		t.Errorf("Null: %#v", v)
	}
}

func TestKeyPositions(t *testing.T) {
	cols := []relColumn{{name: "article_id", key: false}, {name: "slug", key: true}, {name: "title"}}
	renamed := []relColumn{{name: "article_id", key: true}, {name: "slug"}, {name: "title"}}
	cases := []struct {
		name     string
		key      []string
		cols     []relColumn
		identity byte
		want     []int
	}{
		{"by name", []string{"article_id"}, cols, 'i', []int{0}},
		{"renamed key, default identity: the flagged column stands in", []string{"id"}, renamed, 'd', []int{0}},
		{"missing key, identity of another index: its column does not stand in", []string{"id"}, cols, 'i', []int{-1}},
		{"missing key, full identity: every column is flagged, none stands in", []string{"id"}, []relColumn{{name: "a", key: true}, {name: "b", key: true}}, 'f', []int{-1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := keyPositions(c.key, c.cols, c.identity); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("keyPositions = %v, want %v", got, c.want)
			}
		})
	}
}
