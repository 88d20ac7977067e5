package state

import (
	"fmt"
	"strings"
	"testing"
)

// The per-batch lookup must find its rows through the whole primary key
// however large the documents table has grown since the statement was
// prepared and before anything analyzed it (keyLookup in store.go).
func TestLookupProbesPrimaryKeyInUnanalyzedTable(t *testing.T) {
	s, pool := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "PREPARE lookup(text, text, text[]) AS "+s.sql.lookupDocuments); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveDocuments(ctx, coll, table, []DocState{doc("0", "h", 1, 1)}); err != nil {
		t.Fatal(err)
	}
	// Past the five custom plans, after which a session may keep a
	// generic plan made for the table's size of that moment.
	for i := 0; i < 8; i++ {
		if _, err := conn.Exec(ctx, fmt.Sprintf("EXECUTE lookup('%s', '%s', ARRAY['0', '%d'])", coll, table, i)); err != nil {
			t.Fatal(err)
		}
	}
	docs := make([]DocState, 20000)
	for i := range docs {
		docs[i] = doc(fmt.Sprint(i), "h", 1, 1)
	}
	if err := s.SaveDocuments(ctx, coll, table, docs); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, fmt.Sprintf("EXPLAIN EXECUTE lookup('%s', '%s', ARRAY['1', '2', '3'])", coll, table))
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	probes := false
	for _, line := range plan {
		if strings.Contains(line, "Index Cond:") && strings.Contains(line, "source_key =") {
			probes = true
		}
	}
	if !probes {
		t.Errorf("lookup does not probe the primary key by source_key:\n%s", strings.Join(plan, "\n"))
	}
	got := lookup(t, s, coll, table, "1", "2", "3", "1", "missing")
	assertDocs(t, got, doc("1", "h", 1, 1), doc("2", "h", 1, 1), doc("3", "h", 1, 1))
}
