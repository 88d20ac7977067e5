package snapshot

import (
	"reflect"
	"testing"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
)

func TestComparePartitions(t *testing.T) {
	for _, tc := range []struct {
		name              string
		recorded, current []string
		want              PartitionChange
	}{
		{"same", []string{"a", "b"}, []string{"a", "b"}, PartitionChange{}},
		{"none", nil, nil, PartitionChange{}},
		{"attached", []string{"a"}, []string{"a", "b"}, PartitionChange{Attached: []string{"b"}}},
		{"detached", []string{"a", "b"}, []string{"b"}, PartitionChange{Detached: []string{"a"}}},
		{"replaced", []string{"a", "c"}, []string{"b", "c"}, PartitionChange{Attached: []string{"b"}, Detached: []string{"a"}}},
		{"first leaf", nil, []string{"a"}, PartitionChange{Attached: []string{"a"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ComparePartitions(tc.recorded, tc.current)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ComparePartitions(%v, %v) = %+v; want %+v", tc.recorded, tc.current, got, tc.want)
			}
			if got.Changed() != (len(tc.want.Attached)+len(tc.want.Detached) > 0) {
				t.Errorf("Changed() = %v", got.Changed())
			}
		})
	}
}

func TestPartitionSetRecorded(t *testing.T) {
	f := newFixture(t, "")
	ctx := testContext(t)
	if leaves, ok, err := f.store.PartitionSet(ctx, "public.p"); err != nil || ok || leaves != nil {
		t.Fatalf("before any record: %v, %v, %v", leaves, ok, err)
	}
	for _, want := range [][]string{{"public.p_a", `"S p"."P x"`}, {}, {"public.p_b"}} {
		if err := f.store.RecordPartitionSet(ctx, "public.p", want); err != nil {
			t.Fatal(err)
		}
		leaves, ok, err := f.store.PartitionSet(ctx, "public.p")
		if err != nil || !ok || len(leaves) != len(want) || (len(want) > 0 && !reflect.DeepEqual(leaves, want)) {
			t.Errorf("recorded %v, read %v, %v, %v", want, leaves, ok, err)
		}
	}
}

// A snapshot records the partitions it read, which the running connector
// compares with the current ones.
func TestRunRecordsPartitions(t *testing.T) {
	f := newFixture(t, `CREATE TABLE parted (k text NOT NULL, id int NOT NULL, body text, PRIMARY KEY (k, id)) PARTITION BY LIST (k);
CREATE TABLE parted_a PARTITION OF parted FOR VALUES IN ('a');
CREATE TABLE parted_b PARTITION OF parted FOR VALUES IN ('b');
INSERT INTO parted SELECT CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, g, 'row ' || g FROM generate_series(1, 100) g`)
	ctx := testContext(t)
	tbl := f.table("parted", "Parted", "{{.body}}")
	x, err := Fresh(ctx, f.dsn, "cdc_indexer")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if _, err := Run(ctx, Config{DSN: f.dsn, Readers: 2, ChunkRows: 30, Store: f.store, Apply: rec, Log: zerolog.Nop()}, x, []*pipeline.Table{tbl}); err != nil {
		t.Fatal(err)
	}
	if len(rec.keys) != 100 {
		t.Errorf("%d rows read; want 100", len(rec.keys))
	}
	leaves, ok, err := f.store.PartitionSet(ctx, "public.parted")
	if want := []string{"public.parted_a", "public.parted_b"}; err != nil || !ok || !reflect.DeepEqual(leaves, want) {
		t.Errorf("recorded partitions %v, %v, %v; want %v", leaves, ok, err, want)
	}
}
