package connector

import (
	"context"
	"testing"
)

func TestQuoteIdentMatchesPostgres(t *testing.T) {
	_, db := testDB(t)
	ctx := context.Background()

	names := []string{
		"articles", "Articles", "MixedCase", "odd schema", "with\"quote", `"`, "a.b",
		"1abc", "abc1", "_x", "x_1", "a$b", "café", "emoji😀", "a-b", "", " ",
		"select", "user", "table", "order", "Select", "text", "name", "integer", "int",
		"between", "verbose", "analyze", "authorization", "do", "xmltable", "filter",
		"id", "key", "value", "data", "type", "public", "schema",
	}
	// Every keyword PostgreSQL knows, reserved or not.
	rows, err := db.Query(ctx, "SELECT word FROM pg_get_keywords()")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var w string
		if err := rows.Scan(&w); err != nil {
			t.Fatal(err)
		}
		names = append(names, w)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	for _, n := range names {
		var want string
		if err := db.QueryRow(ctx, "SELECT quote_ident($1)", n).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if got := QuoteIdent(n); got != want {
			t.Errorf("QuoteIdent(%q) = %s, quote_ident gives %s", n, got, want)
		}
	}

	for _, tn := range []TableName{
		{"public", "articles"}, {"Odd Schema", "Mixed Case"}, {"public", "select"}, {"s\"q", "x1"},
	} {
		var want string
		if err := db.QueryRow(ctx, "SELECT quote_ident($1) || '.' || quote_ident($2)", tn.Schema, tn.Name).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if got := tn.String(); got != want {
			t.Errorf("%#v.String() = %s, want %s", tn, got, want)
		}
		back, err := ParseTableName(want)
		if err != nil || back != tn {
			t.Errorf("ParseTableName(%s) = %#v, %v; want %#v", want, back, err, tn)
		}
	}
}

func TestParseTableName(t *testing.T) {
	for in, want := range map[string]TableName{
		"articles":                  {"public", "articles"},
		"Public.Articles":           {"public", "articles"},
		`"Odd Schema"."Mixed Case"`: {"Odd Schema", "Mixed Case"},
		`s."a""b"`:                  {"s", `a"b`},
		`"a.b".c`:                   {"a.b", "c"},
	} {
		got, err := ParseTableName(in)
		if err != nil || got != want {
			t.Errorf("ParseTableName(%q) = %#v, %v; want %#v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a.", ".a", "a.b.c", `"a`, `""`, "a b", `a"b`} {
		if got, err := ParseTableName(in); err == nil {
			t.Errorf("ParseTableName(%q) = %#v, want an error", in, got)
		}
	}
}

func TestRowSizeCountsTextOnceAndBytesBeside(t *testing.T) {
	tm := NewTypeMap(nil)
	text := tm.Decode(25, []byte("hello world")) // text: Go shares Text
	bytea := tm.Decode(17, []byte(`\x00010203`)) // bytea: Go is a []byte of its own
	row := Row{"t": text, "b": bytea, "n": tm.Null(25)}
	want := int64(len("t")+len("hello world")+valueOverhead) +
		int64(len("b")+len(`\x00010203`)+4+valueOverhead) +
		int64(len("n")+valueOverhead)
	if got := row.Size(); got != want {
		t.Fatalf("Size = %d, want %d", got, want)
	}
	if (Row{}).Size() != 0 {
		t.Fatal("an empty row has no size")
	}
}
