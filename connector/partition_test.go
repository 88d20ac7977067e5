package connector

import (
	"context"
	"reflect"
	"testing"
)

func TestPartitionedAndLeaves(t *testing.T) {
	_, db := testDB(t)
	ctx := context.Background()
	mustExec(t, db, `CREATE TABLE plain (id int PRIMARY KEY);
CREATE TABLE p (k text NOT NULL, id int NOT NULL, PRIMARY KEY (k, id)) PARTITION BY LIST (k);
CREATE TABLE p_b PARTITION OF p FOR VALUES IN ('b');
CREATE TABLE p_a PARTITION OF p FOR VALUES IN ('a') PARTITION BY RANGE (id);
CREATE TABLE p_a_low PARTITION OF p_a FOR VALUES FROM (0) TO (100);
CREATE SCHEMA "S p"; CREATE TABLE "S p"."P x" PARTITION OF p FOR VALUES IN ('x')`)
	plain, p := TableName{"public", "plain"}, TableName{"public", "p"}

	parts, err := Partitioned(ctx, db, []TableName{plain, p, {"public", "missing"}})
	if err != nil || !reflect.DeepEqual(parts, []TableName{p}) {
		t.Errorf("Partitioned: %v, %v", parts, err)
	}
	// Leaves only, nested partitions included, in name order.
	leaves, err := Leaves(ctx, db, p)
	want := []TableName{{"S p", "P x"}, {"public", "p_a_low"}, {"public", "p_b"}}
	if err != nil || !reflect.DeepEqual(leaves, want) {
		t.Errorf("Leaves(p) = %v, %v; want %v", leaves, err, want)
	}
	mustExec(t, db, `ALTER TABLE p DETACH PARTITION p_b`)
	if leaves, err := Leaves(ctx, db, p); err != nil || len(leaves) != 2 {
		t.Errorf("after detach: %v, %v", leaves, err)
	}
	for _, other := range []TableName{plain, {"public", "missing"}} {
		if leaves, err := Leaves(ctx, db, other); err != nil || len(leaves) != 0 {
			t.Errorf("Leaves(%s) = %v, %v; want none", other, leaves, err)
		}
	}
}
