package pipeline

import (
	"testing"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

func TestRemovalTenant(t *testing.T) {
	info := connector.TableInfo{
		Name: connector.TableName{Schema: "public", Name: "notes"}, Key: []string{"org", "id"},
		Columns: []connector.Column{{Name: "org", OID: 25, BaseOID: 25}, {Name: "id", OID: 23, BaseOID: 23}},
	}
	plain, err := transform.NewRenderer(info, "Note", "{{.id}}", nil, "m")
	if err != nil {
		t.Fatal(err)
	}
	tenanted, err := transform.NewRenderer(info, "Note", "{{.id}}", nil, "m")
	if err != nil {
		t.Fatal(err)
	}
	if err := tenanted.WithTenant(info, "org"); err != nil {
		t.Fatal(err)
	}
	prev := map[string]state.DocState{
		"known":     {SourceKey: "known", ContentHash: "h", Tenant: "acme"},
		"tombstone": {SourceKey: "tombstone"},
	}
	cases := []struct {
		name      string
		r         *transform.Renderer
		key       string
		untrusted bool
		want      string
	}{
		{"no tenants", plain, "known", false, ""},
		{"recorded tenant", tenanted, "known", false, "acme"},
		{"recorded, but replayed after a crash: every tenant", tenanted, "known", true, ""},
		{"never recorded: every tenant", tenanted, "unknown", false, ""},
		{"tombstone: every tenant", tenanted, "tombstone", false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := NewTable(info, "Note", c.r)
			if got := removalTenant(tb, prev, c.key, c.untrusted); got != c.want {
				t.Fatalf("removalTenant = %q, want %q", got, c.want)
			}
		})
	}
}
