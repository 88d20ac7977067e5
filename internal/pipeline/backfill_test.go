package pipeline

import (
	"testing"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

// A row a backfill's snapshot no longer holds (BackfillRow.Gone) is removed
// from the index, unless the stream applied a change to it after the
// snapshot was read.
func TestBackfillRemovesGoneRowsUnlessNewer(t *testing.T) {
	f := newFixture(t, "{{.title}}")
	run := f.pipeline(t, Config{}, nil)
	run.send(100, f.row(connector.OpInsert, 1, "gone before the snapshot", "{}"))
	run.send(200, f.row(connector.OpInsert, 2, "written after the snapshot", "{}"))
	run.waitConfirmed(200)

	k1 := f.row(connector.OpInsert, 1, "", "{}").Key
	k2 := f.row(connector.OpInsert, 2, "", "{}").Key
	rows := []BackfillRow{{Key: k1, Gone: true}, {Key: k2, Gone: true}}
	if err := run.p.Backfill(f.ctx, f.table, rows, 150); err != nil {
		t.Fatal(err)
	}
	run.stop()
	texts := f.texts(t)
	if _, ok := texts["1"]; ok {
		t.Errorf("row 1, absent from the snapshot at 150 and last written at 100, is still indexed")
	}
	if got := texts["2"]; got != "written after the snapshot" {
		t.Errorf("row 2, written at 200 after the snapshot at 150, was removed: %q", got)
	}
}
