package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
	"github.com/cdc-indexer/cdc-indexer/internal/openaitest"
)

// Schemas production databases have (contract section 3): a partitioned
// table configured by its parent, a template over a stored generated
// column, and one table in two mappings.

const partitionedSchema = `
CREATE TABLE orders (
  region text NOT NULL,
  id bigint NOT NULL,
  note text,
  PRIMARY KEY (region, id)
) PARTITION BY LIST (region);
CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us');`

func orders() mapping {
	return mapping{
		Table:    "public.orders",
		Template: "{{.region}} order: {{.note}}",
		KeySQL:   "'[' || to_json(region)::text || ',' || to_json(id::text)::text || ']'",
		TextSQL:  "region || ' order: ' || coalesce(note, '')",
	}
}

// TestPartitionedTableIsFollowed: changes to any partition reach the
// parent's collection under the parent's name, including a row moving to
// another partition, and a restart finds the publication in order.
func TestPartitionedTableIsFollowed(t *testing.T) {
	h := newHarness(t, partitionedSchema, orders())
	h.exec(`INSERT INTO orders SELECT CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g, 'seed ' || g FROM generate_series(1, 200) g`)
	h.runSnapshot(indexer.SnapshotOptions{})
	h.requireEqual("snapshot of a partitioned table")

	c := h.start()
	h.exec(`INSERT INTO orders VALUES ('eu', 1001, 'new eu'), ('us', 1002, 'new us')`)
	h.requireInSync("inserts into two partitions")
	h.exec(`UPDATE orders SET note = note || ' edited' WHERE id % 3 = 0`)
	h.requireInSync("updates in both partitions")
	h.exec(`DELETE FROM orders WHERE id % 7 = 0`)
	h.requireInSync("deletes in both partitions")
	h.exec(`UPDATE orders SET region = 'us' WHERE region = 'eu' AND id % 10 = 2`)
	h.requireInSync("rows moved between partitions")

	c.stop(t)
	h.exec(`INSERT INTO orders VALUES ('us', 2001, 'while stopped')`)
	h.exec(`UPDATE orders SET note = 'edited while stopped' WHERE id = 4`)
	h.start()
	h.requireInSync("restart")

	h.exec(`CREATE TABLE orders_apac PARTITION OF orders FOR VALUES IN ('apac')`)
	h.exec(`INSERT INTO orders VALUES ('apac', 3001, 'new partition')`)
	h.requireInSync("insert into a partition created while streaming")

	// Attaching a table that holds rows and detaching a partition write no
	// row changes to the WAL: the connector notices the partition set
	// changed and backfills the parent.
	h.exec(`CREATE TABLE orders_latam (region text NOT NULL, id bigint NOT NULL, note text, PRIMARY KEY (region, id))`)
	h.exec(`INSERT INTO orders_latam SELECT 'latam', g, 'attached ' || g FROM generate_series(5001, 5030) g`)
	h.exec(`ALTER TABLE orders ATTACH PARTITION orders_latam FOR VALUES IN ('latam')`)
	h.requireConverges("partition attached with rows")
	h.exec(`UPDATE orders SET note = 'edited after attach' WHERE region = 'latam' AND id % 2 = 0`)
	h.requireInSync("updates in the attached partition")
	h.exec(`ALTER TABLE orders DETACH PARTITION orders_us`)
	h.requireConverges("partition detached")
	h.exec(`INSERT INTO orders_us VALUES ('us', 6001, 'detached, not indexed')`)
	h.exec(`INSERT INTO orders VALUES ('eu', 6002, 'still indexed')`)
	h.requireInSync("after the detach")

	// While the connector is stopped.
	c = h.running
	c.stop(t)
	h.exec(`ALTER TABLE orders ATTACH PARTITION orders_us FOR VALUES IN ('us')`)
	h.start()
	h.requireConverges("partition attached while stopped")
}

// TestPartitionedTableRefusesLeafPublication: an existing publication that
// would report a partitioned table's changes under its partitions' names is
// refused with the fix, rather than streamed and silently missed.
func TestPartitionedTableRefusesLeafPublication(t *testing.T) {
	h := newHarness(t, partitionedSchema+`CREATE PUBLICATION cdc_indexer FOR TABLE orders;`, orders())
	err := h.runUntilExit(time.Minute)
	if err == nil {
		t.Fatal("run streamed a publication without publish_via_partition_root")
	}
	if !strings.Contains(err.Error(), "publish_via_partition_root = true") {
		t.Fatalf("run failed without naming the fix: %v", err)
	}
	h.exec(`ALTER PUBLICATION cdc_indexer SET (publish_via_partition_root = true)`)
	h.start()
	h.exec(`INSERT INTO orders VALUES ('eu', 1, 'after the fix')`)
	h.requireInSync("after the publication was fixed")
}

// TestGeneratedColumnInTemplate: a stored generated column, which the
// replication stream does not carry, is indexed with its current value.
func TestGeneratedColumnInTemplate(t *testing.T) {
	m := mapping{
		Table:    "public.pages",
		Template: "{{.search}}",
		KeySQL:   "id::text",
		TextSQL:  "coalesce(search, '')",
	}
	h := newHarness(t, `CREATE TABLE pages (
		id int PRIMARY KEY, title text, body text, views int,
		search text GENERATED ALWAYS AS (title || ' :: ' || body) STORED)`, m)
	h.exec(`INSERT INTO pages (id, title, body, views) SELECT g, 'title ' || g, 'body ' || g, 0 FROM generate_series(1, 50) g`)
	h.runSnapshot(indexer.SnapshotOptions{})
	h.start()
	h.requireInSync("snapshot")
	h.exec(`INSERT INTO pages (id, title, body) VALUES (100, 'streamed', 'insert')`)
	h.requireInSync("streamed insert")
	h.exec(`UPDATE pages SET body = body || ' edited' WHERE id % 2 = 0`)
	h.requireInSync("updates of a base column")
	h.exec(`UPDATE pages SET views = views + 1 WHERE id % 3 = 0`)
	h.requireInSync("updates of an unrelated column")
}

// TestTableInTwoMappings: one table indexed into two collections with
// different templates, plus a second table sharing the first collection;
// each collection equals its mappings through snapshot, live changes,
// truncate and an online re-snapshot.
func TestTableInTwoMappings(t *testing.T) {
	alt := articles()
	alt.Template = "{{.author}} wrote {{.title}}"
	alt.Metadata = nil
	alt.TextSQL = "coalesce(author, '') || ' wrote ' || coalesce(title, '')"
	first := articles()
	first.Collection = "TwoMappingsShared"
	notes := mapping{
		Table:      "public.notes",
		Collection: first.Collection,
		Template:   "{{.note}}",
		KeySQL:     "id::text",
		TextSQL:    "coalesce(note, '')",
	}
	h := newHarness(t, articlesSchema+`CREATE TABLE notes (id int PRIMARY KEY, note text);`, first, alt, notes)
	seedArticles(h, 300)
	h.exec(`INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 100) g`)
	h.runSnapshot(indexer.SnapshotOptions{})
	h.requireEqual("snapshot fills every mapping")

	h.start()
	h.exec(`UPDATE articles SET title = title || ' retitled' WHERE id % 4 = 0`)
	h.exec(`UPDATE articles SET views = 7 WHERE id % 5 = 0`)
	h.exec(`DELETE FROM articles WHERE id % 9 = 0`)
	h.exec(`INSERT INTO notes VALUES (500, 'streamed note')`)
	h.requireInSync("live changes reach both mappings")

	h.exec(`TRUNCATE articles`)
	h.exec(`INSERT INTO articles VALUES (1001, 'after', 'truncate', 'ann', 1, NULL)`)
	h.requireInSync("truncate empties both mappings, not the shared table's rows")

	seedArticles(h, 50)
	h.runSnapshot(indexer.SnapshotOptions{})
	h.requireInSync("online re-snapshot")

	// verify tells the mappings of one table apart: a row's objects
	// deleted from the second mapping's collection only are missing there,
	// and the repair (through the running connector) mends just that.
	if err := h.weaviate.Delete(context.Background(), h.maps[1].Collection, "", "public.articles", []string{"1001"}); err != nil {
		t.Fatal(err)
	}
	out, code := h.cliExit("verify", "--json")
	if code != 1 || !strings.Contains(out, `"missing": 1`) {
		t.Fatalf("verify after deleting one row of the second mapping: exit %d, want 1 and one missing\n%s", code, out)
	}
	if out, code := h.cliExit("verify", "--repair"); code != 0 || !strings.Contains(out, "1 rows re-indexed") {
		t.Fatalf("verify --repair: exit %d\n%s", code, out)
	}
	h.requireEqual("after the repair of the second mapping")
}

// TestSchemaChangesWhileStreaming (contract section 3): columns added and
// dropped outside the mapping, the primary-key column and the table renamed
// are followed; deletes and a key change under a replica identity without
// the primary key are found by reading the table again; a renamed template
// column turns the rows it affects into dead letters that name the fix,
// while the rest of the stream goes on.
func TestSchemaChangesWhileStreaming(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	h.start()
	seedArticles(h, 40)
	h.requireInSync("seed")

	h.exec(`ALTER TABLE articles ADD COLUMN summary text`)
	h.exec(`UPDATE articles SET summary = 'sum', title = title || ' +col' WHERE id % 3 = 0`)
	h.exec(`INSERT INTO articles (id, title, body, summary) VALUES (100, 'after add', 'b', 's')`)
	h.requireInSync("column added")

	h.exec(`ALTER TABLE articles DROP COLUMN internal_note`)
	h.exec(`UPDATE articles SET body = body || ' -col' WHERE id % 4 = 0`)
	h.requireInSync("column outside the mapping dropped")

	h.exec(`ALTER TABLE articles RENAME COLUMN id TO article_id`)
	h.maps[0].KeySQL = "article_id::text"
	h.exec(`UPDATE articles SET title = 'key column renamed' WHERE article_id = 5`)
	h.exec(`UPDATE articles SET article_id = 500 WHERE article_id = 6`)
	h.exec(`DELETE FROM articles WHERE article_id = 7`)
	h.requireInSync("primary-key column renamed")

	// Another index as the replica identity: deletes and key changes no
	// longer carry the primary key, so the table is read again to find the
	// rows they removed.
	h.exec(`ALTER TABLE articles ADD COLUMN slug text;
UPDATE articles SET slug = 's' || article_id;
ALTER TABLE articles ALTER COLUMN slug SET NOT NULL;
CREATE UNIQUE INDEX articles_slug ON articles (slug);
ALTER TABLE articles REPLICA IDENTITY USING INDEX articles_slug`)
	h.exec(`DELETE FROM articles WHERE article_id IN (13, 14)`)
	h.exec(`UPDATE articles SET slug = 'rekeyed', article_id = 700 WHERE article_id = 15`)
	h.exec(`UPDATE articles SET title = 'identity switched' WHERE article_id = 16`)
	h.requireConverges("replica identity switched to another index, then deletes and a key change")
	h.exec(`ALTER TABLE articles REPLICA IDENTITY DEFAULT; DROP INDEX articles_slug; ALTER TABLE articles DROP COLUMN slug`)

	// The mapping keeps its name for the table; the oracle reads the
	// renamed table through a view of the old name.
	h.exec(`ALTER TABLE articles RENAME TO posts; CREATE VIEW articles AS SELECT * FROM posts`)
	h.exec(`UPDATE posts SET title = 'table renamed' WHERE article_id = 8`)
	h.exec(`DELETE FROM posts WHERE article_id = 9`)
	h.exec(`INSERT INTO posts (article_id, title, body) VALUES (600, 'into the renamed table', 'b')`)
	h.requireInSync("table renamed")

	h.exec(`DROP VIEW articles; ALTER TABLE posts RENAME COLUMN body TO content`)
	h.exec(`UPDATE posts SET title = 'template column renamed' WHERE article_id = 10`)
	h.exec(`DELETE FROM posts WHERE article_id = 11`)
	h.waitCaughtUp()
	letters := h.deadLetters()
	if len(letters) != 1 || letters[0].SourceKey != "10" || !strings.Contains(letters[0].Error, `"body" was dropped or renamed`) {
		t.Fatalf("dead letters after a template column was renamed = %+v, want row 10 naming body and the fix", letters)
	}
	got := h.indexed(h.maps[0])
	if _, ok := got["11"]; ok {
		t.Fatal("a delete after the template column was renamed was not applied")
	}
	if _, ok := got["10"]; ok {
		t.Fatal("the dead-lettered row still has objects (an outdated version)")
	}
	if _, ok := got["12"]; !ok {
		t.Fatal("an untouched row lost its objects")
	}
}

// TestMappingFollowsTheSchemaAfterRestarts (contract section 3): a column
// added while streaming is used by a new template after a restart, and a
// renamed template column (its rows dead letters naming the fix) is
// followed once the template names it: each restart with a changed
// template re-indexes every row, not only those that change later.
func TestMappingFollowsTheSchemaAfterRestarts(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	c := h.start()
	seedArticles(h, 30)
	h.requireInSync("seed")
	h.exec(`ALTER TABLE articles ADD COLUMN summary text`)
	h.exec(`UPDATE articles SET summary = 'summary of ' || id WHERE id % 2 = 0`)
	h.requireInSync("column added, not in the template yet")
	c.stop(t)

	h.setTemplate(0, "{{.title}}: {{.summary}}", "coalesce(title, '') || ': ' || coalesce(summary, '')")
	c = h.start()
	h.requireConverges("restart with a template over the added column")

	h.exec(`ALTER TABLE articles RENAME COLUMN summary TO abstract`)
	h.exec(`UPDATE articles SET abstract = 'renamed ' || id WHERE id IN (4, 5)`)
	h.exec(`UPDATE articles SET views = views + 1 WHERE id = 6`)
	h.waitCaughtUp()
	letters := h.deadLetters()
	if len(letters) != 3 || !strings.Contains(letters[0].Error, `"summary" was dropped or renamed`) {
		t.Fatalf("dead letters after the template column was renamed = %+v, want rows 4, 5 and 6 naming summary", letters)
	}
	c.stop(t)

	h.setTemplate(0, "{{.title}}: {{.abstract}}", "coalesce(title, '') || ': ' || coalesce(abstract, '')")
	h.start()
	h.requireConverges("restart with the template naming the renamed column")
	if letters := h.deadLetters(); len(letters) != 0 {
		t.Fatalf("dead letters left after the template was fixed: %+v", letters)
	}
}

// TestFailuresOfOneRowAreIsolated (contract section 5): a provider that
// answers 500 for one input forever (a self-hosted model whose tokenizer
// chokes on it) but answers everything else makes a dead letter of that row
// only; every other row is indexed and /readyz is 200 once it is isolated.
// Fixing the row indexes it.
func TestFailuresOfOneRowAreIsolated(t *testing.T) {
	srv := fakeProvider(t, openaitest.Options{})
	srv.Hook(func(r *openaitest.Request) *openaitest.Fault {
		for _, in := range r.Inputs {
			if strings.Contains(in, "CRASH-ME") {
				return &openaitest.Fault{Status: 500, Body: `{"error":{"message":"tokenizer panicked"}}`}
			}
		}
		return nil
	})
	h := newHarness(t, articlesSchema, articles())
	h.useOpenAI(srv.URL(), fakeDims, nil)
	h.start()
	m := h.maps[0]
	h.exec(`INSERT INTO articles SELECT g, 'Title ' || g, CASE WHEN g = 7 THEN 'This body makes the model CRASH-ME.' ELSE 'Body ' || g END, 'a', g, 'n'
FROM generate_series(1, 30) g`)
	h.waitCaughtUp()
	if p := h.diff(m); len(p) != 1 || p[0] != "missing row 7" {
		t.Fatalf("want only row 7 missing, got:\n  %s", strings.Join(p, "\n  "))
	}
	var errText string
	err := h.db.QueryRow(context.Background(),
		`SELECT error FROM cdc_indexer.dead_letters WHERE source_table = 'public.articles' AND source_key = '7'`).Scan(&errText)
	if err != nil {
		t.Fatalf("dead letter of row 7: %v", err)
	}
	if !strings.Contains(errText, "500") || !strings.Contains(errText, "tokenizer panicked") {
		t.Errorf("dead letter error %q does not carry the provider's answer", errText)
	}
	if code, body := h.readyz(); code != 200 {
		t.Errorf("/readyz answered %d %q with the failing row isolated", code, body)
	}
	waitFor(t, "cdc_indexer_dead_letters 1", 30*time.Second, func() bool { return h.metric("cdc_indexer_dead_letters ") == 1 })
	h.exec(`UPDATE articles SET body = 'A harmless body now.' WHERE id = 7`)
	h.requireInSync("row fixed")
}
