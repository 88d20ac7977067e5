package transform

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

// scalarType is how a value of a PostgreSQL type is converted for templates
// and metadata. Every type without a dedicated conversion is scalarText.
type scalarType uint8

const (
	scalarText        scalarType = iota // Value.Text
	scalarInt                           // int2, int4, int8
	scalarFloat                         // float4, float8
	scalarNumeric                       // numeric: exact text in templates, float64 in metadata
	scalarBool                          // bool
	scalarTimestamp                     // timestamp without time zone (taken as UTC)
	scalarTimestamptz                   // timestamp with time zone
	scalarDate                          // date
	scalarJSON                          // json, jsonb: their text
)

// colType is the conversion of one column: a scalar or an array of scalars.
type colType struct {
	scalar scalarType
	array  bool
	delim  byte // array element delimiter (',' except for box)
}

func scalarOf(oid uint32) scalarType {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		return scalarInt
	case pgtype.Float4OID, pgtype.Float8OID:
		return scalarFloat
	case pgtype.NumericOID:
		return scalarNumeric
	case pgtype.BoolOID:
		return scalarBool
	case pgtype.TimestampOID:
		return scalarTimestamp
	case pgtype.TimestamptzOID:
		return scalarTimestamptz
	case pgtype.DateOID:
		return scalarDate
	case pgtype.JSONOID, pgtype.JSONBOID:
		return scalarJSON
	}
	return scalarText
}

// arrayElems maps built-in array type OIDs to their element type OIDs.
var arrayElems = map[uint32]uint32{
	pgtype.BoolArrayOID:        pgtype.BoolOID,
	pgtype.Int2ArrayOID:        pgtype.Int2OID,
	pgtype.Int4ArrayOID:        pgtype.Int4OID,
	pgtype.Int8ArrayOID:        pgtype.Int8OID,
	pgtype.Float4ArrayOID:      pgtype.Float4OID,
	pgtype.Float8ArrayOID:      pgtype.Float8OID,
	pgtype.NumericArrayOID:     pgtype.NumericOID,
	pgtype.TimestampArrayOID:   pgtype.TimestampOID,
	pgtype.TimestamptzArrayOID: pgtype.TimestamptzOID,
	pgtype.DateArrayOID:        pgtype.DateOID,
	pgtype.JSONArrayOID:        pgtype.JSONOID,
	pgtype.JSONBArrayOID:       pgtype.JSONBOID,
	pgtype.TextArrayOID:        pgtype.TextOID,
	pgtype.VarcharArrayOID:     pgtype.VarcharOID,
	pgtype.BPCharArrayOID:      pgtype.BPCharOID,
	pgtype.NameArrayOID:        pgtype.NameOID,
	pgtype.QCharArrayOID:       pgtype.QCharOID,
	pgtype.UUIDArrayOID:        pgtype.UUIDOID,
	pgtype.ByteaArrayOID:       pgtype.ByteaOID,
	pgtype.OIDArrayOID:         pgtype.OIDOID,
	pgtype.InetArrayOID:        pgtype.InetOID,
	pgtype.CIDRArrayOID:        pgtype.CIDROID,
	pgtype.MacaddrArrayOID:     pgtype.MacaddrOID,
	pgtype.IntervalArrayOID:    pgtype.IntervalOID,
	pgtype.TimeArrayOID:        pgtype.TimeOID,
	pgtype.TimetzArrayOID:      pgtype.TimetzOID,
	pgtype.XMLArrayOID:         pgtype.XMLOID,
	pgtype.BitArrayOID:         pgtype.BitOID,
	pgtype.VarbitArrayOID:      pgtype.VarbitOID,
	pgtype.PointArrayOID:       pgtype.PointOID,
	pgtype.BoxArrayOID:         pgtype.BoxOID,
	pgtype.JSONPathArrayOID:    pgtype.JSONPathOID,
}

func arrayOf(elem uint32) colType {
	t := colType{scalar: scalarOf(elem), array: true, delim: ','}
	if elem == pgtype.BoxOID {
		t.delim = ';'
	}
	return t
}

// columnType decides a column's conversion from its catalog description: a
// domain converts as its base type, an array as an array of its element
// type; anything unknown converts as text.
func columnType(c connector.Column) colType {
	base := c.BaseOID
	if base == 0 {
		base = c.OID
	}
	if elem, ok := arrayElems[base]; ok {
		return arrayOf(elem)
	}
	if c.Category == 'A' && c.ElemOID != 0 {
		return arrayOf(c.ElemOID)
	}
	return colType{scalar: scalarOf(base)}
}

// oidType decides the conversion from a value's type OID alone, for a column
// the table description does not list.
func oidType(oid uint32) colType {
	if elem, ok := arrayElems[oid]; ok {
		return arrayOf(elem)
	}
	return colType{scalar: scalarOf(oid)}
}

// kind is the metadata property kind of a column of this type.
func (t colType) kind() Kind {
	var k Kind
	switch t.scalar {
	case scalarInt:
		k = KindInt
	case scalarFloat, scalarNumeric:
		k = KindNumber
	case scalarBool:
		k = KindBool
	case scalarTimestamp, scalarTimestamptz, scalarDate:
		k = KindDate
	default:
		k = KindText
	}
	if !t.array {
		return k
	}
	switch k {
	case KindInt:
		return KindIntArray
	case KindNumber:
		return KindNumberArray
	case KindBool:
		return KindBoolArray
	case KindDate:
		return KindDateArray
	}
	return KindTextArray
}

// sanitize makes text safe to store: invalid UTF-8 sequences become U+FFFD
// and NUL bytes are dropped.
func sanitize(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// templateValue converts a column value for the template data map. A NULL
// is "", so a template never prints "<no value>".
func templateValue(t colType, v connector.Value) any {
	if v.Null {
		return ""
	}
	if !t.array {
		return scalarTemplate(t.scalar, v.Text, v.Go)
	}
	elems, ok := parseArray(v.Text, t.delim)
	if !ok {
		return sanitize(v.Text)
	}
	out := make([]any, len(elems))
	for i, e := range elems {
		if e.null {
			out[i] = ""
			continue
		}
		out[i] = scalarTemplate(t.scalar, e.text, nil)
	}
	return out
}

func scalarTemplate(s scalarType, text string, goVal any) any {
	switch s {
	case scalarInt:
		if n, ok := toInt64(text, goVal); ok {
			return n
		}
	case scalarFloat:
		if f, ok := toFloat64(text, goVal); ok {
			return f
		}
	case scalarBool:
		if b, ok := toBool(text, goVal); ok {
			return b
		}
	case scalarTimestamp, scalarTimestamptz:
		if ts, ok := toTime(s, text, goVal); ok {
			return ts.Format(time.RFC3339Nano)
		}
	}
	// Text, numeric (exact), date (PostgreSQL form), json and every type
	// without a natural Go value: PostgreSQL's text form.
	return sanitize(text)
}

// metadataValue converts a column value to its property value, or reports
// false when the property is to be left out (NULL, or a value the kind
// cannot hold such as NaN or an infinite timestamp).
func metadataValue(t colType, v connector.Value) (any, bool) {
	if v.Null {
		return nil, false
	}
	if !t.array {
		return scalarMetadata(t.scalar, v.Text, v.Go)
	}
	elems, ok := parseArray(v.Text, t.delim)
	if !ok {
		if t.kind() == KindTextArray {
			return []string{sanitize(v.Text)}, true
		}
		return nil, false
	}
	switch t.kind() {
	case KindIntArray:
		out := make([]int64, 0, len(elems))
		for _, e := range elems {
			if n, ok := toInt64(e.text, nil); ok && !e.null {
				out = append(out, n)
			}
		}
		return out, true
	case KindNumberArray:
		out := make([]float64, 0, len(elems))
		for _, e := range elems {
			if f, ok := toFloat64(e.text, nil); ok && !e.null && finite(f) {
				out = append(out, f)
			}
		}
		return out, true
	case KindBoolArray:
		out := make([]bool, 0, len(elems))
		for _, e := range elems {
			if b, ok := toBool(e.text, nil); ok && !e.null {
				out = append(out, b)
			}
		}
		return out, true
	case KindDateArray:
		out := make([]string, 0, len(elems))
		for _, e := range elems {
			if d, ok := scalarMetadata(t.scalar, e.text, nil); ok && !e.null {
				out = append(out, d.(string))
			}
		}
		return out, true
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		if !e.null {
			out = append(out, sanitize(e.text))
		}
	}
	return out, true
}

func scalarMetadata(s scalarType, text string, goVal any) (any, bool) {
	switch s {
	case scalarInt:
		return toInt64(text, goVal)
	case scalarFloat, scalarNumeric:
		f, ok := toFloat64(text, goVal)
		if !ok || !finite(f) {
			return nil, false
		}
		return f, true
	case scalarBool:
		return toBool(text, goVal)
	case scalarTimestamp, scalarTimestamptz, scalarDate:
		ts, ok := toTime(s, text, goVal)
		if !ok {
			return nil, false
		}
		return ts.Format(time.RFC3339Nano), true
	}
	return sanitize(text), true
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func toInt64(text string, goVal any) (int64, bool) {
	switch x := goVal.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case int:
		return int64(x), true
	}
	n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	return n, err == nil
}

// toFloat64 prefers the text form: a float4 decoded to float32 and widened
// would print as 0.10000000149011612 instead of 0.1.
func toFloat64(text string, goVal any) (float64, bool) {
	if f, err := strconv.ParseFloat(strings.TrimSpace(text), 64); err == nil {
		return f, true
	} else if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		return f, true // ±Inf or 0 for out-of-range numeric
	}
	switch x := goVal.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case pgtype.Numeric:
		if f, err := x.Float64Value(); err == nil && f.Valid {
			return f.Float64, true
		}
	}
	return 0, false
}

func toBool(text string, goVal any) (bool, bool) {
	if b, ok := goVal.(bool); ok {
		return b, true
	}
	switch strings.ToLower(strings.TrimSpace(text)) {
	case "t", "true", "yes", "on", "1":
		return true, true
	case "f", "false", "no", "off", "0":
		return false, true
	}
	return false, false
}

// Layouts of PostgreSQL's ISO output (DateStyle ISO); fractional seconds are
// accepted by time.Parse after the seconds even though the layouts omit them.
var (
	timestamptzLayouts = []string{
		"2006-01-02 15:04:05Z07",
		"2006-01-02 15:04:05Z07:00",
		"2006-01-02 15:04:05Z07:00:00",
		time.RFC3339Nano,
	}
	timestampLayouts = []string{
		"2006-01-02 15:04:05",
		"2006-01-02T15:04:05",
	}
)

// toTime returns the value as a UTC time. A timestamp without time zone is
// taken as UTC; a date is midnight UTC. Values outside years 1..9999
// (including ±infinity and BC dates) are refused: RFC 3339 cannot hold them.
func toTime(s scalarType, text string, goVal any) (time.Time, bool) {
	var ts time.Time
	ok := false
	if t, isTime := goVal.(time.Time); isTime {
		ts, ok = t, true
		if s == scalarTimestamp || s == scalarDate {
			// Keep the wall clock whatever location the decoder chose.
			y, mo, d := t.Date()
			h, mi, sec := t.Clock()
			ts = time.Date(y, mo, d, h, mi, sec, t.Nanosecond(), time.UTC)
		}
		if s == scalarDate {
			ts = time.Date(ts.Year(), ts.Month(), ts.Day(), 0, 0, 0, 0, time.UTC)
		}
	} else {
		text = strings.TrimSpace(text)
		var layouts []string
		switch s {
		case scalarTimestamptz:
			layouts = timestamptzLayouts
		case scalarTimestamp:
			layouts = timestampLayouts
		default:
			layouts = []string{time.DateOnly}
		}
		for _, l := range layouts {
			if t, err := time.Parse(l, text); err == nil {
				ts, ok = t, true
				break
			}
		}
	}
	if !ok {
		return time.Time{}, false
	}
	ts = ts.UTC()
	if y := ts.Year(); y < 1 || y > 9999 {
		return time.Time{}, false
	}
	return ts, true
}

// arrayElem is one element of a PostgreSQL array literal.
type arrayElem struct {
	text string
	null bool
}

// parseArray parses PostgreSQL's array output ({a,"b c",NULL}, nested for
// several dimensions, optionally preceded by bounds such as [0:2]=) into its
// elements, flattened in row-major order.
func parseArray(s string, delim byte) ([]arrayElem, bool) {
	i := 0
	if strings.HasPrefix(s, "[") {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, false
		}
		i = eq + 1
	}
	if i >= len(s) || s[i] != '{' {
		return nil, false
	}
	var out []arrayElem
	depth := 0
	var buf strings.Builder
	for i < len(s) {
		switch c := s[i]; {
		case c == '{':
			depth++
			i++
		case c == '}':
			depth--
			i++
			if depth < 0 {
				return nil, false
			}
			if depth == 0 {
				return out, i == len(s)
			}
		case c == delim || c == ' ':
			i++
		case depth == 0:
			return nil, false
		case c == '"':
			buf.Reset()
			i++
			closed := false
			for i < len(s) {
				if s[i] == '\\' && i+1 < len(s) {
					buf.WriteByte(s[i+1])
					i += 2
					continue
				}
				if s[i] == '"' {
					closed = true
					i++
					break
				}
				buf.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, false
			}
			out = append(out, arrayElem{text: buf.String()})
		default:
			buf.Reset()
			for i < len(s) && s[i] != delim && s[i] != '}' && s[i] != '{' {
				if s[i] == '\\' && i+1 < len(s) {
					buf.WriteByte(s[i+1])
					i += 2
					continue
				}
				buf.WriteByte(s[i])
				i++
			}
			t := strings.TrimRight(buf.String(), " ")
			out = append(out, arrayElem{text: t, null: strings.EqualFold(t, "NULL")})
		}
	}
	return nil, false
}
