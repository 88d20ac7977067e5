package transform

import (
	"errors"
	"strings"
	"testing"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

func TestWithTenantNeedsTheColumnInEveryChange(t *testing.T) {
	info := articles()
	info.Key = []string{"author", "id"}
	cases := []struct {
		name, column string
		identity     byte
		wantErr      string
	}{
		{"in the primary key", "author", 'd', ""},
		{"not in the key, identity full", "category", 'f', ""},
		{"not in the key, default identity", "category", 'd', "REPLICA IDENTITY FULL"},
		{"no such column", "org", 'd', `tenant column "org" is not a column`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := info
			in.ReplicaIdentity = c.identity
			r, err := NewRenderer(in, "Article", "{{.title}}", nil, "m")
			if err != nil {
				t.Fatal(err)
			}
			err = r.WithTenant(in, c.column)
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("WithTenant(%q) = %v, want %q", c.column, err, c.wantErr)
			}
		})
	}
}

func TestRenderPutsTheRowInItsTenant(t *testing.T) {
	info := articles()
	info.Key = []string{"author", "id"}
	r, err := NewRenderer(info, "Article", "{{.title}}", nil, "m")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WithTenant(info, "author"); err != nil {
		t.Fatal(err)
	}
	if cols, _ := r.Columns(); !strings.Contains(strings.Join(cols, ","), "author") {
		t.Fatalf("Columns %v: the tenant column is read (and re-read when unchanged TOAST)", cols)
	}
	tm := connector.NewTypeMap([]connector.TableInfo{info})
	row := func(author *string) connector.Row {
		r := connector.Row{"id": tm.Decode(20, []byte("1")), "title": tm.Decode(25, []byte("t"))}
		if author == nil {
			r["author"] = tm.Null(1043)
		} else {
			r["author"] = tm.Decode(1043, []byte(*author))
		}
		return r
	}
	str := func(s string) *string { return &s }
	cases := []struct {
		name    string
		author  *string
		want    string
		wantErr error
	}{
		{"valid", str("acme-7_B"), "acme-7_B", nil},
		{"NULL", nil, "", ErrInvalidTenant},
		{"space", str("acme corp"), "", ErrInvalidTenant},
		{"too long", str(strings.Repeat("a", 65)), "", ErrInvalidTenant},
		{"empty", str(""), "", ErrInvalidTenant},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc, err := r.Render(row(c.author), connector.Key{"x", "1"}, 7)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), "public.articles") {
					t.Fatalf("Render = %v, want %v naming the table", err, c.wantErr)
				}
				return
			}
			if err != nil || doc.Tenant != c.want {
				t.Fatalf("Render tenant = %q, %v; want %q", doc.Tenant, err, c.want)
			}
		})
	}
}
