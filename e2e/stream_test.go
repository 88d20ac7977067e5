package e2e

import (
	"strings"
	"testing"
)

// articles is the mapping most stream tests use.
func articles() mapping {
	return mapping{
		Table:    "public.articles",
		Template: "{{.title}}\n\n{{.body}}",
		Metadata: []string{"author", "views"},
		KeySQL:   "id::text",
		TextSQL:  "coalesce(title, '') || E'\\n\\n' || coalesce(body, '')",
	}
}

const articlesSchema = `
CREATE TABLE articles (
  id bigint PRIMARY KEY,
  title text,
  body text,
  author text,
  views int,
  internal_note text
);`

// TestStreamFollowsEveryKindOfChange walks one table through the contract's
// section 3, checking Weaviate against the table after each step.
func TestStreamFollowsEveryKindOfChange(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	h.start()
	m := h.maps[0]

	h.exec(`INSERT INTO articles VALUES (1, 'Hello', 'First body', 'ann', 10, 'x'), (2, 'Second', 'Other body', 'bob', 3, 'y'), (11, 'Eleven', 'Body eleven', 'cy', 0, 'z')`)
	h.requireInSync("insert")

	h.exec(`UPDATE articles SET body = 'First body, edited' WHERE id = 1`)
	h.requireInSync("update")

	before := h.sourceLSNs(m)
	h.exec(`UPDATE articles SET internal_note = 'not in the template' WHERE id = 2`)
	h.requireInSync("no-op update")
	if after := h.sourceLSNs(m); after["2"] != before["2"] {
		t.Fatalf("no-op update rewrote row 2: source_lsn %s -> %s", before["2"], after["2"])
	}
	if n := h.metric("cdc_indexer_changes_total", `op="update"`, `outcome="skipped"`); n != 1 {
		t.Fatalf("skipped updates metric = %v, want 1", n)
	}

	h.exec(`UPDATE articles SET author = 'bea' WHERE id = 2`)
	h.requireInSync("metadata-only update")

	h.exec(`DELETE FROM articles WHERE id = 1`)
	h.requireInSync("delete") // key 1 gone, key 11 untouched

	h.exec(`UPDATE articles SET id = 20 WHERE id = 2`)
	h.requireInSync("primary-key change")

	h.exec(`INSERT INTO articles VALUES (3, NULL, NULL, NULL, NULL, NULL)`)
	h.requireInSync("all NULL")

	h.exec(`INSERT INTO articles VALUES (4, 'Ünïcödé — 日本語のテキスト', 'emoji 🎉🚀 and RTL עברית', 'zoë', 1, NULL)`)
	h.requireInSync("unicode and emoji")

	h.exec(`BEGIN; INSERT INTO articles VALUES (5, 'in tx', 'a', 'd', 1, NULL); UPDATE articles SET body = 'b' WHERE id = 5; UPDATE articles SET body = 'c' WHERE id = 5; COMMIT`)
	h.requireInSync("several changes of one row in one transaction")

	h.exec(`DELETE FROM articles WHERE id = 5; INSERT INTO articles VALUES (5, 'again', 'reinserted', 'd', 1, NULL)`)
	h.requireInSync("delete then re-insert of a key")

	h.exec(`TRUNCATE articles`)
	h.requireInSync("truncate")
	if got := len(h.indexed(m)); got != 0 {
		t.Fatalf("%d rows left after truncate", got)
	}

	h.exec(`INSERT INTO articles VALUES (6, 'after truncate', 'still streams', 'e', 2, NULL)`)
	h.requireInSync("insert after truncate")
}

// TestUnchangedToastValueIsIndexed updates a row through a column outside
// its 100 KB body: PostgreSQL does not resend the body, and the index must
// still hold it, never a placeholder.
func TestUnchangedToastValueIsIndexed(t *testing.T) {
	for _, identity := range []string{"DEFAULT", "FULL"} {
		t.Run(identity, func(t *testing.T) {
			h := newHarness(t, articlesSchema+`ALTER TABLE articles REPLICA IDENTITY `+identity+`;
				ALTER TABLE articles ALTER COLUMN body SET STORAGE EXTERNAL;`, articles())
			h.start()
			body := strings.Repeat("A long body that PostgreSQL stores out of line. ", 2200) // ~100 KB
			h.exec(`INSERT INTO articles VALUES (1, 'Big', $1, 'ann', 1, NULL)`, body)
			h.requireInSync("insert of a 100 KB body")
			h.exec(`UPDATE articles SET title = 'Big, retitled' WHERE id = 1`)
			h.requireInSync("update of the title only")
			h.exec(`UPDATE articles SET views = 2 WHERE id = 1`)
			h.requireInSync("update of metadata only")
		})
	}
}

// TestCompositeKeyAndTwoTables streams two tables at once, one with a
// composite primary key whose source_key is a JSON array.
func TestCompositeKeyAndTwoTables(t *testing.T) {
	notes := mapping{
		Table:    "public.notes",
		Template: "{{.tenant}}: {{.note}}",
		Metadata: []string{"tenant"},
		KeySQL:   "'[' || to_json(tenant)::text || ',' || to_json(seq::text)::text || ']'",
		TextSQL:  "tenant || ': ' || coalesce(note, '')",
	}
	h := newHarness(t, articlesSchema+`CREATE TABLE notes (tenant text, seq int, note text, PRIMARY KEY (tenant, seq));`, articles(), notes)
	h.start()
	h.exec(`INSERT INTO notes VALUES ('acme', 7, 'seven'), ('acme', 1, 'one'), ('a', 17, 'not acme 1')`)
	h.exec(`INSERT INTO articles VALUES (1, 't', 'b', 'a', 1, NULL)`)
	h.requireInSync("inserts into two tables")

	got := h.indexed(h.maps[1])
	if _, ok := got[`["acme","7"]`]; !ok {
		t.Fatalf("composite key not indexed as [\"acme\",\"7\"]; have %v", keys(got))
	}
	h.exec(`UPDATE notes SET seq = 8 WHERE tenant = 'acme' AND seq = 7`)
	h.exec(`DELETE FROM notes WHERE tenant = 'acme' AND seq = 1`)
	h.exec(`UPDATE articles SET body = 'b2' WHERE id = 1`)
	h.requireInSync("key change and delete on the composite key, update on the other table")
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
