package transform

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

// articles is a table with one column of most interesting types.
func articles() connector.TableInfo {
	col := func(name string, oid uint32, cat byte) connector.Column {
		return connector.Column{Name: name, OID: oid, BaseOID: oid, Category: cat}
	}
	arr := func(name string, oid, elem uint32) connector.Column {
		return connector.Column{Name: name, OID: oid, BaseOID: oid, Category: 'A', ElemOID: elem}
	}
	return connector.TableInfo{
		Name: connector.TableName{Schema: "public", Name: "articles"},
		Key:  []string{"id"},
		Columns: []connector.Column{
			col("id", pgtype.Int8OID, 'N'),
			col("title", pgtype.TextOID, 'S'),
			col("body", pgtype.TextOID, 'S'),
			col("Body Text", pgtype.TextOID, 'S'),
			col("views", pgtype.Int4OID, 'N'),
			col("small", pgtype.Int2OID, 'N'),
			col("score", pgtype.Float8OID, 'N'),
			col("ratio", pgtype.Float4OID, 'N'),
			col("price", pgtype.NumericOID, 'N'),
			col("published", pgtype.BoolOID, 'B'),
			col("created", pgtype.TimestamptzOID, 'D'),
			col("local", pgtype.TimestampOID, 'D'),
			col("day", pgtype.DateOID, 'D'),
			col("doc", pgtype.JSONBOID, 'U'),
			col("raw", pgtype.JSONOID, 'U'),
			col("uid", pgtype.UUIDOID, 'U'),
			col("mood", 91234, 'E'), // an enum
			col("addr", pgtype.InetOID, 'I'),
			col("span", pgtype.IntervalOID, 'T'),
			col("cost", 790, 'N'), // money
			col("author", pgtype.VarcharOID, 'S'),
			col("category", pgtype.TextOID, 'S'),
			arr("tags", pgtype.TextArrayOID, pgtype.TextOID),
			arr("counts", pgtype.Int4ArrayOID, pgtype.Int4OID),
			arr("weights", pgtype.Float8ArrayOID, pgtype.Float8OID),
			arr("flags", pgtype.BoolArrayOID, pgtype.BoolOID),
			arr("days", pgtype.DateArrayOID, pgtype.DateOID),
			arr("amounts", pgtype.NumericArrayOID, pgtype.NumericOID),
			arr("moods", 91235, 91234),                                               // array of enum
			{Name: "email", OID: 91300, BaseOID: pgtype.TextOID, Category: 'S'},      // domain over text
			{Name: "rating", OID: 91301, BaseOID: pgtype.Int4OID, Category: 'N'},     // domain over int4
			{Name: "codes", OID: 91302, BaseOID: pgtype.Int8ArrayOID, Category: 'A'}, // domain over int8[]
			col("text", pgtype.TextOID, 'S'),
			col("Upper", pgtype.TextOID, 'S'),
		},
	}
}

func v(text string, goVal any, oid uint32) connector.Value {
	return connector.Value{Text: text, Go: goVal, OID: oid}
}

var null = connector.Value{Null: true}

func sampleRow() connector.Row {
	created := time.Date(2024, 1, 31, 11, 30, 15, 123456000, time.FixedZone("CET", 3600))
	return connector.Row{
		"id":        v("42", int64(42), pgtype.Int8OID),
		"title":     v("Hello", "Hello", pgtype.TextOID),
		"body":      v("World 🌍 東京", "World 🌍 東京", pgtype.TextOID),
		"Body Text": v("spaced", "spaced", pgtype.TextOID),
		"views":     v("1234", int32(1234), pgtype.Int4OID),
		"small":     v("-7", int16(-7), pgtype.Int2OID),
		"score":     v("2.5", 2.5, pgtype.Float8OID),
		"ratio":     v("0.1", float32(0.1), pgtype.Float4OID),
		"price":     v("12345678901234567890.123456789", nil, pgtype.NumericOID),
		"published": v("t", true, pgtype.BoolOID),
		"created":   v("2024-01-31 11:30:15.123456+01", created, pgtype.TimestamptzOID),
		"local":     v("2024-01-31 11:30:15", time.Date(2024, 1, 31, 11, 30, 15, 0, time.UTC), pgtype.TimestampOID),
		"day":       v("2024-01-31", time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC), pgtype.DateOID),
		"doc":       v(`{"a": 1, "b": [true, null]}`, map[string]any{"a": 1.0}, pgtype.JSONBOID),
		"raw":       v(`{"z":1,  "a":2}`, map[string]any{"z": 1.0}, pgtype.JSONOID),
		"uid":       v("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", [16]byte{0xa0}, pgtype.UUIDOID),
		"mood":      v("happy", nil, 91234),
		"addr":      v("192.168.0.1/24", nil, pgtype.InetOID),
		"span":      v("1 day 02:00:00", nil, pgtype.IntervalOID),
		"cost":      v("$1,234.50", nil, 790),
		"author":    v("Ada", "Ada", pgtype.VarcharOID),
		"category":  null,
		"tags":      v(`{go,"two words",NULL,"quote\"d","NULL"}`, nil, pgtype.TextArrayOID),
		"counts":    v("{1,2,NULL,3}", nil, pgtype.Int4ArrayOID),
		"weights":   v("{1.5,NaN,-2}", nil, pgtype.Float8ArrayOID),
		"flags":     v("{t,f}", nil, pgtype.BoolArrayOID),
		"days":      v("{2024-01-31,infinity}", nil, pgtype.DateArrayOID),
		"amounts":   v("{1.10,2.000}", nil, pgtype.NumericArrayOID),
		"moods":     v("{happy,sad}", nil, 91235),
		"email":     v("ada@example.com", nil, 91300),
		"rating":    v("5", nil, 91301),
		"codes":     v("{{1,2},{3,4}}", nil, 91302),
		"text":      v("x", "x", pgtype.TextOID),
		"Upper":     v("y", "y", pgtype.TextOID),
	}
}

func mustRenderer(t *testing.T, tmpl string, metadata ...string) *Renderer {
	t.Helper()
	r, err := NewRenderer(articles(), "Article", tmpl, metadata, "hash/v1/384")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func render(t *testing.T, tmpl string, row connector.Row) string {
	t.Helper()
	doc, err := mustRenderer(t, tmpl).Render(row, connector.Key{"42"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return doc.Text
}

func TestRenderValues(t *testing.T) {
	row := sampleRow()
	for _, tc := range []struct {
		tmpl, want string
	}{
		{`{{.title}}`, "Hello"},
		{"{{.title}}\n\n{{.body}}", "Hello\n\nWorld 🌍 東京"},
		{`{{index . "Body Text"}}`, "spaced"},
		{`{{.id}} {{.views}} {{.small}}`, "42 1234 -7"},
		{`{{printf "%T %T" .id .views}}`, "int64 int64"},
		{`{{.score}} {{.ratio}}`, "2.5 0.1"},
		{`{{printf "%T %T" .score .ratio}}`, "float64 float64"},
		{`{{.price}}`, "12345678901234567890.123456789"},
		{`{{.published}}`, "true"},
		{`{{if .published}}yes{{end}}`, "yes"},
		{`{{.created}}`, "2024-01-31T10:30:15.123456Z"},
		{`{{.local}}`, "2024-01-31T11:30:15Z"},
		{`{{.day}}`, "2024-01-31"},
		{`{{.doc}}`, `{"a": 1, "b": [true, null]}`},
		{`{{.raw}}`, `{"z":1,  "a":2}`},
		{`{{.uid}}`, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{`{{.mood}} {{.addr}} {{.span}} {{.cost}}`, "happy 192.168.0.1/24 1 day 02:00:00 $1,234.50"},
		{`[{{.category}}]`, "[]"},
		{`{{range .tags}}<{{.}}>{{end}}`, `<go><two words><><quote"d><NULL>`},
		{`{{range .counts}}{{printf "%v:%T " . .}}{{end}}`, "1:int64 2:int64 :string 3:int64 "},
		{`{{.weights}}`, "[1.5 NaN -2]"},
		{`{{.flags}}`, "[true false]"},
		{`{{.days}}`, "[2024-01-31 infinity]"},
		{`{{.amounts}}`, "[1.10 2.000]"},
		{`{{.moods}}`, "[happy sad]"},
		{`{{.email}} {{.rating}} {{printf "%T" .rating}}`, "ada@example.com 5 int64"},
		{`{{.codes}}`, "[1 2 3 4]"},
		{`{{len .tags}}`, "5"},
		{`{{$.title}}`, "Hello"},
		{`{{with .title}}{{.}}{{end}}`, "Hello"},
		{`{{with .}}{{.title}}{{end}}`, "Hello"},
		{`{{define "t"}}<{{.title}}>{{end}}{{template "t" .}}`, "<Hello>"},
		{`{{range $k, $v := .}}{{end}}ok`, "ok"},
	} {
		if got := render(t, tc.tmpl, row); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.tmpl, got, tc.want)
		}
	}
}

func TestRenderNullsAreEmpty(t *testing.T) {
	row := connector.Row{
		"title":     null,
		"views":     null,
		"tags":      null,
		"doc":       null,
		"body":      null,
		"Body Text": null,
	}
	for _, tmpl := range []string{
		`{{.title}}{{.views}}{{.tags}}{{.doc}}{{.body}}`,
		`{{index . "Body Text"}}`,
		`{{range $k, $v := .}}{{$v}}{{end}}`, // dynamic: every table column present
	} {
		got := render(t, tmpl, row)
		if got != "" {
			t.Errorf("%s = %q, want empty", tmpl, got)
		}
		if strings.Contains(got, "no value") {
			t.Errorf("%s printed <no value>", tmpl)
		}
	}
}

// A row without a column the mapping reads comes from a table whose column
// was dropped or renamed while streaming: blanking it would index a wrong
// document, so the row is refused, naming the column and the fix.
func TestRenderRefusesRowWithoutAReadColumn(t *testing.T) {
	row := connector.Row{"title": v("T", nil, pgtype.TextOID)}
	for _, tmpl := range []string{`{{.title}} {{.body}}`, `{{index . "Body Text"}}`} {
		r := mustRenderer(t, tmpl)
		_, err := r.Render(row, connector.Key{"1"}, 0)
		if !errors.Is(err, ErrColumnMissing) || !strings.Contains(err.Error(), "dropped or renamed") {
			t.Errorf("%s over a row without the column: err %v, want ErrColumnMissing with the fix", tmpl, err)
		}
	}
	// A dynamic template reads what the row has.
	if got := render(t, `{{range $k, $v := .}}{{$v}}{{end}}`, row); got != "T" {
		t.Errorf("dynamic template = %q, want T", got)
	}
}

func TestRenderDynamicTemplateSeesAllColumns(t *testing.T) {
	r := mustRenderer(t, `{{range $k, $v := .}}{{$k}}={{$v}};{{end}}`)
	doc, err := r.Render(connector.Row{"title": v("T", nil, pgtype.TextOID), "extra": v("9", nil, pgtype.Int4OID)}, connector.Key{"1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"title=T;", "extra=9;", "body=;", "Body Text=;"} {
		if !strings.Contains(doc.Text, want) {
			t.Errorf("dynamic render %q lacks %q", doc.Text, want)
		}
	}
}

func TestRenderSanitizesText(t *testing.T) {
	row := connector.Row{"title": v("bad \xff\xfe bytes\x00 and NUL", nil, pgtype.TextOID), "author": v("A\x00da\xc3", nil, pgtype.TextOID)}
	r := mustRenderer(t, `{{.title}}{{"\x00"}}`, "author")
	doc, err := r.Render(row, connector.Key{"1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := "bad \uFFFD bytes and NUL"; doc.Text != want {
		t.Errorf("text = %q, want %q", doc.Text, want)
	}
	if got := doc.Metadata["author"]; got != "Ada\uFFFD" {
		t.Errorf("author = %q", got)
	}
}

func TestRenderDocument(t *testing.T) {
	r, err := NewRenderer(articles(), "Article", "{{.title}}", []string{"author", "category", "views", "score", "price", "published", "created", "local", "day", "uid", "doc", "mood", "tags", "counts", "weights", "flags", "days", "amounts", "moods", "rating", "codes", "email"}, "hash/v1/384")
	if err != nil {
		t.Fatal(err)
	}
	key := connector.Key{"acme", "7"}
	lsn, _ := pglogrepl.ParseLSN("0/16B3748")
	doc, err := r.Render(sampleRow(), key, lsn)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Collection != "Article" || doc.SourceTable != "public.articles" || doc.SourceKey != `["acme","7"]` || doc.Text != "Hello" || doc.LSN != lsn {
		t.Errorf("document = %+v", doc)
	}
	if len(doc.Chunks) != 0 {
		t.Errorf("Render made chunks")
	}
	want := map[string]any{
		"author":    "Ada",
		"views":     int64(1234),
		"score":     2.5,
		"price":     12345678901234567890.123456789,
		"published": true,
		"created":   "2024-01-31T10:30:15.123456Z",
		"local":     "2024-01-31T11:30:15Z",
		"day":       "2024-01-31T00:00:00Z",
		"uid":       "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"doc":       `{"a": 1, "b": [true, null]}`,
		"mood":      "happy",
		"tags":      []string{"go", "two words", `quote"d`, "NULL"},
		"counts":    []int64{1, 2, 3},
		"weights":   []float64{1.5, -2},
		"flags":     []bool{true, false},
		"days":      []string{"2024-01-31T00:00:00Z"},
		"amounts":   []float64{1.1, 2},
		"moods":     []string{"happy", "sad"},
		"rating":    int64(5),
		"codes":     []int64{1, 2, 3, 4},
		"email":     "ada@example.com",
		// category is NULL: left out.
	}
	if !reflect.DeepEqual(doc.Metadata, want) {
		for k, w := range want {
			if g := doc.Metadata[k]; !reflect.DeepEqual(g, w) {
				t.Errorf("metadata[%s] = %#v, want %#v", k, g, w)
			}
		}
		for k := range doc.Metadata {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected metadata %s = %#v", k, doc.Metadata[k])
			}
		}
	}
	if doc.ContentHash != ContentHash(doc.Text, doc.Metadata, "hash/v1/384") {
		t.Error("content hash does not cover text, metadata and model")
	}

	wantKinds := map[string]Kind{
		"author": KindText, "category": KindText, "views": KindInt, "score": KindNumber,
		"price": KindNumber, "published": KindBool, "created": KindDate, "local": KindDate,
		"day": KindDate, "uid": KindText, "doc": KindText, "mood": KindText,
		"tags": KindTextArray, "counts": KindIntArray, "weights": KindNumberArray,
		"flags": KindBoolArray, "days": KindDateArray, "amounts": KindNumberArray,
		"moods": KindTextArray, "rating": KindInt, "codes": KindIntArray, "email": KindText,
	}
	fields := r.MetadataFields()
	if len(fields) != len(wantKinds) || fields[0].Name != "author" || fields[len(fields)-1].Name != "email" {
		t.Errorf("MetadataFields = %v", fields)
	}
	for _, f := range fields {
		if wantKinds[f.Name] != f.Kind {
			t.Errorf("kind of %s = %v, want %v", f.Name, f.Kind, wantKinds[f.Name])
		}
	}
}

func TestRenderMetadataEdgeValues(t *testing.T) {
	r := mustRenderer(t, "", "score", "price", "created", "day", "views", "published")
	row := connector.Row{
		"score":     v("NaN", math.NaN(), pgtype.Float8OID),
		"price":     v("Infinity", nil, pgtype.NumericOID),
		"created":   v("infinity", pgtype.Infinity, pgtype.TimestamptzOID),
		"day":       v("0044-03-15 BC", nil, pgtype.DateOID),
		"views":     v("not a number", nil, pgtype.Int4OID),
		"published": v("maybe", nil, pgtype.BoolOID),
	}
	doc, err := r.Render(row, connector.Key{"1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Metadata) != 0 {
		t.Errorf("unrepresentable values should be left out, got %v", doc.Metadata)
	}
	// Templates still show them, as PostgreSQL's text.
	got := render(t, "{{.created}} {{.day}} {{.views}} {{.published}} {{.price}}", row)
	if want := "infinity 0044-03-15 BC not a number maybe Infinity"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRenderTimestampFromTextOnly(t *testing.T) {
	// When the connector could not decode a value, Text is enough.
	for _, tc := range []struct {
		col, text, want string
	}{
		{"created", "2024-01-31 11:30:15.5+01", "2024-01-31T10:30:15.5Z"},
		{"created", "2024-01-31 11:30:15+05:30", "2024-01-31T06:00:15Z"},
		{"created", "2024-01-31 11:30:15+00", "2024-01-31T11:30:15Z"},
		{"local", "2024-01-31 11:30:15.000001", "2024-01-31T11:30:15.000001Z"},
	} {
		row := connector.Row{tc.col: v(tc.text, nil, 0)}
		if got := render(t, "{{."+tc.col+"}}", row); got != tc.want {
			t.Errorf("%s %q = %q, want %q", tc.col, tc.text, got, tc.want)
		}
	}
}

func TestRenderExecutionErrorNamesRow(t *testing.T) {
	r := mustRenderer(t, `{{index .tags 10}}`)
	_, err := r.Render(sampleRow(), connector.Key{"42"}, 0)
	if err == nil || !strings.Contains(err.Error(), "public.articles") || !strings.Contains(err.Error(), "key 42") {
		t.Errorf("error = %v", err)
	}
}

func TestNewRendererErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tmpl     string
		metadata []string
		want     string
	}{
		{"missing field", `{{.title}} {{.nope}}`, nil, `template references column "nope", which is not a column of public.articles`},
		{"missing index", `{{index . "Nope Col"}}`, nil, `column "Nope Col"`},
		{"missing dollar", `{{range .tags}}{{$.gone}}{{end}}`, nil, `column "gone"`},
		{"several missing", `{{.b1}}{{.a1}}`, nil, `columns "a1", "b1", which are not columns of public.articles`},
		{"missing in if", `{{if .nope}}x{{end}}`, nil, `"nope"`},
		{"missing in named template", `{{define "x"}}{{.nope}}{{end}}{{template "x" .}}`, nil, `"nope"`},
		{"undefined template", `{{template "x" .}}`, nil, `undefined template "x"`},
		{"parse error", `{{.title`, nil, "template for public.articles"},
		{"missing metadata", `{{.title}}`, []string{"author", "x"}, `metadata column "x" is not a column of public.articles`},
		{"duplicate metadata", `{{.title}}`, []string{"author", "author"}, `metadata column "author" is listed twice`},
		{"metadata with space", `{{.title}}`, []string{"Body Text"}, `cannot be a Weaviate property name`},
		{"metadata upper case", `{{.title}}`, []string{"Upper"}, `upper-case`},
		{"metadata builtin", `{{.title}}`, []string{"text"}, `built-in property`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRenderer(articles(), "Article", tc.tmpl, tc.metadata, "m")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRendererColumns(t *testing.T) {
	for _, tc := range []struct {
		tmpl     string
		metadata []string
		want     []string
		all      bool
	}{
		{"{{.title}}\n\n{{.body}}", []string{"author", "category"}, []string{"author", "body", "category", "title"}, false},
		{`{{index . "Body Text"}}{{$.title}}`, nil, []string{"Body Text", "title"}, false},
		{`{{with .title}}{{.x}}{{end}}`, nil, []string{"title"}, false},
		{`{{range .tags}}{{.y}}{{end}}{{if .published}}{{.body}}{{else}}{{.title}}{{end}}`, nil, []string{"body", "published", "tags", "title"}, false},
		{`{{$r := .}}{{$r.title}}{{index $r "body"}}`, nil, []string{"body", "title"}, false},
		{`{{define "p"}}{{.}}{{end}}{{template "p" .title}}`, nil, []string{"title"}, false},
		{`{{.title | printf "%s"}}{{printf "%s" .body | len}}`, nil, []string{"body", "title"}, false},
		{`{{(.).title}}`, nil, []string{"title"}, false},
		{`static text`, nil, []string{}, false},
		{`{{range $k, $v := .}}{{$v}}{{end}}`, nil, []string{}, true},
		{`{{.}}`, nil, []string{}, true},
		{`{{$c := "title"}}{{index . $c}}`, nil, []string{}, true},
		{`{{printf "%v" .}}`, nil, []string{}, true},
		{`{{. | printf "%v"}}`, nil, []string{}, true},
		{`{{define "p"}}{{range .}}{{.}}{{end}}{{end}}{{.title}}{{template "p" .}}`, nil, []string{"title"}, true},
	} {
		r := mustRenderer(t, tc.tmpl, tc.metadata...)
		cols, all := r.Columns()
		if !reflect.DeepEqual(cols, tc.want) && !(len(cols) == 0 && len(tc.want) == 0) || all != tc.all {
			t.Errorf("%s: Columns() = %q, %v; want %q, %v", tc.tmpl, cols, all, tc.want, tc.all)
		}
	}
}

func TestRenderContentHashTracksInputs(t *testing.T) {
	r := mustRenderer(t, "{{.title}}", "author")
	other, err := NewRenderer(articles(), "Article", "{{.title}}", []string{"author"}, "hash/v1/768")
	if err != nil {
		t.Fatal(err)
	}
	row := sampleRow()
	base, _ := r.Render(row, connector.Key{"1"}, 1)
	again, _ := r.Render(row, connector.Key{"1"}, 2)
	if base.ContentHash != again.ContentHash {
		t.Error("hash depends on the LSN")
	}
	changedBody := sampleRow()
	changedBody["body"] = v("unused column", nil, pgtype.TextOID)
	if d, _ := r.Render(changedBody, connector.Key{"1"}, 1); d.ContentHash != base.ContentHash {
		t.Error("hash changed with a column neither rendered nor metadata")
	}
	changedAuthor := sampleRow()
	changedAuthor["author"] = v("Grace", nil, pgtype.VarcharOID)
	if d, _ := r.Render(changedAuthor, connector.Key{"1"}, 1); d.ContentHash == base.ContentHash {
		t.Error("hash ignores metadata")
	}
	if d, _ := other.Render(row, connector.Key{"1"}, 1); d.ContentHash == base.ContentHash {
		t.Error("hash ignores the model")
	}
}

func TestRenderConcurrent(t *testing.T) {
	r := mustRenderer(t, "{{.title}} {{range .tags}}{{.}},{{end}}", "author", "tags")
	row := sampleRow()
	want, _ := r.Render(row, connector.Key{"1"}, 0)
	done := make(chan string)
	for g := 0; g < 8; g++ {
		go func() {
			d, err := r.Render(row, connector.Key{"1"}, 0)
			if err != nil {
				done <- err.Error()
				return
			}
			done <- d.ContentHash
		}()
	}
	for g := 0; g < 8; g++ {
		if h := <-done; h != want.ContentHash {
			t.Errorf("concurrent render: %s", h)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	r, err := NewRenderer(articles(), "Article", "{{.title}}\n\n{{.body}}\n{{range .tags}}#{{.}} {{end}}", []string{"author", "views", "created", "tags"}, "hash/v1/384")
	if err != nil {
		b.Fatal(err)
	}
	row := sampleRow()
	row["body"] = v(strings.Repeat("Some body text. ", 256), nil, pgtype.TextOID)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Render(row, connector.Key{"42"}, 0); err != nil {
			b.Fatal(err)
		}
	}
}
