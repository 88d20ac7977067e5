package state

import (
	"testing"

	"github.com/jackc/pglogrepl"
)

func TestDeadLetters(t *testing.T) {
	s, _ := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	if got, err := s.DeadLetters(ctx); err != nil || len(got) != 0 {
		t.Fatalf("DeadLetters of a new schema = %v, %v", got, err)
	}
	rec := func(key string, lsn int, msg string) DeadLetter {
		return DeadLetter{SourceKey: key, LSN: pglogrepl.LSN(0x100 + lsn), Error: msg, Attempts: 3}
	}
	if err := s.RecordDeadLetters(ctx, coll, table, []DeadLetter{rec("1", 1, "bad"), rec("11", 1, "worse")}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDeadLetters(ctx, "Other", "public.other", []DeadLetter{rec("1", 2, "elsewhere")}); err != nil {
		t.Fatal(err)
	}
	// The same row failing again keeps its id and first failure, adds up
	// its attempts and takes the new LSN and error.
	if err := s.RecordDeadLetters(ctx, coll, table, []DeadLetter{rec("1", 5, "still bad")}); err != nil {
		t.Fatal(err)
	}
	all, err := s.DeadLetters(ctx)
	if err != nil || len(all) != 3 {
		t.Fatalf("DeadLetters = %+v, %v", all, err)
	}
	d := all[0]
	if d.SourceKey != "1" || d.Collection != coll || d.SourceTable != table || d.Attempts != 6 || d.Error != "still bad" ||
		d.LSN != 0x105 || d.FirstFailedAt.After(d.LastFailedAt) {
		t.Fatalf("first dead letter = %+v", d)
	}

	only, err := s.FindDeadLetters(ctx, DeadLetterFilter{SourceTable: table, SourceKeys: []string{"1"}})
	if err != nil || len(only) != 1 || only[0].ID != d.ID {
		t.Fatalf("filter by key (1 must not match 11) = %+v, %v", only, err)
	}

	n, err := s.RequestDeadLetterRetry(ctx, DeadLetterFilter{SourceTable: table})
	if err != nil || n != 2 {
		t.Fatalf("RequestDeadLetterRetry = %d, %v", n, err)
	}
	waiting, err := s.FindDeadLetters(ctx, DeadLetterFilter{RetryRequested: true})
	if err != nil || len(waiting) != 2 || !waiting[0].RetryRequested() {
		t.Fatalf("waiting for retry = %+v, %v", waiting, err)
	}
	if c, err := s.CountDeadLetters(ctx, DeadLetterFilter{Collection: coll, SourceTable: table}); err != nil || c != 2 {
		t.Fatalf("CountDeadLetters = %d, %v", c, err)
	}

	if n, err := s.ClearDeadLetters(ctx, coll, table, []string{"11", "never"}); err != nil || n != 1 {
		t.Fatalf("ClearDeadLetters = %d, %v", n, err)
	}
	if n, err := s.PurgeDeadLetters(ctx, DeadLetterFilter{IDs: []int64{d.ID}}); err != nil || n != 1 {
		t.Fatalf("PurgeDeadLetters = %d, %v", n, err)
	}
	left, _ := s.DeadLetters(ctx)
	if len(left) != 1 || left[0].Collection != "Other" {
		t.Fatalf("left = %+v", left)
	}

	if err := s.SaveCheckpoint(ctx, "slot", 42); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCheckpoint(ctx, "slot"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.LoadCheckpoint(ctx, "slot"); found {
		t.Fatal("checkpoint survived DeleteCheckpoint")
	}
}
