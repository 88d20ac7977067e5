package state

import (
	"slices"
	"testing"
	"time"

	"github.com/cdc-indexer/cdc-indexer/internal/reindex"
)

// A collection's versions through a reindex: one serving, one filling, the
// switch, retention, and forgetting the retired version with its rows.
func TestVersionsThroughAReindex(t *testing.T) {
	s, _ := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	spec := reindex.Spec{Mappings: []reindex.Mapping{{Table: "public.articles", Template: "{{.title}}"}}, MaxTokens: 64,
		Embedding: reindex.Embedding{Provider: "hash", Dimensions: 8}}
	v1 := reindex.Version{Collection: "Article", Number: 1, Physical: "Article_v1", Phase: reindex.PhaseServing, Fingerprint: spec.Fingerprint(), Spec: spec}
	if err := s.AddVersion(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if n, err := s.NextVersion(ctx, "Article"); err != nil || n != 2 {
		t.Fatalf("NextVersion = %d, %v; want 2", n, err)
	}
	next := spec
	next.Mappings = []reindex.Mapping{{Table: "public.articles", Template: "{{.title}} {{.body}}"}}
	v2 := reindex.Version{Collection: "Article", Number: 2, Physical: "Article_v2", Phase: reindex.PhaseFilling, Fingerprint: next.Fingerprint(), Spec: next}
	if err := s.AddVersion(ctx, v2); err != nil {
		t.Fatal(err)
	}
	v2.Number, v2.Physical = 3, "Article_v3"
	if err := s.AddVersion(ctx, v2); err == nil {
		t.Fatal("a second filling version was recorded")
	}
	if err := s.SetBackfills(ctx, "Article_v2", []int64{7, 9}); err != nil {
		t.Fatal(err)
	}
	serving, filling, retired, err := s.Versions(ctx, "Article")
	if err != nil || serving == nil || filling == nil || len(retired) != 0 {
		t.Fatalf("Versions = %+v, %+v, %+v, %v", serving, filling, retired, err)
	}
	if serving.Physical != "Article_v1" || filling.Physical != "Article_v2" || !slices.Equal(filling.Backfills, []int64{7, 9}) ||
		serving.Backfills != nil || filling.Spec.Mappings[0].Template != "{{.title}} {{.body}}" || filling.Fingerprint != next.Fingerprint() {
		t.Fatalf("serving %+v, filling %+v", serving, filling)
	}

	if err := s.RequestReindex(ctx, "Article"); err != nil {
		t.Fatal(err)
	}
	if err := s.RequestReindex(ctx, "Article"); err != nil {
		t.Fatalf("asking twice: %v", err)
	}
	if ok, err := s.ReindexRequested(ctx, "Article"); err != nil || !ok {
		t.Fatalf("ReindexRequested = %v, %v", ok, err)
	}
	if err := s.ConsumeReindexRequest(ctx, "Article"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.ReindexRequested(ctx, "Article"); ok {
		t.Fatal("the request outlived its consumption")
	}

	if err := s.ApplyDocuments(ctx, "Article_v1", "public.articles", []DocState{{SourceKey: "1", ContentHash: "h", ChunkCount: 1, LSN: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDeadLetters(ctx, "Article_v1", "public.articles", []DeadLetter{{SourceKey: "2", Error: "cannot render", Attempts: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSwitch(ctx, "Article", time.Hour); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountDeadLetters(ctx, DeadLetterFilter{Collection: "Article_v1"}); err != nil || n != 0 {
		t.Fatalf("dead letters of the retired version after the switch: %d, %v; want none", n, err)
	}
	serving, filling, retired, _ = s.Versions(ctx, "Article")
	if serving == nil || serving.Physical != "Article_v2" || filling != nil || len(retired) != 1 || retired[0].Physical != "Article_v1" {
		t.Fatalf("after the switch: serving %+v, filling %+v, retired %+v", serving, filling, retired)
	}
	if due, err := s.RetiredDue(ctx); err != nil || len(due) != 0 {
		t.Fatalf("RetiredDue within the retention = %+v, %v", due, err)
	}
	if err := s.RecordSwitch(ctx, "Other", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(ctx, `UPDATE cdc_indexer.collection_versions SET retire_at = now() - interval '1 second' WHERE physical = 'Article_v1'`); err != nil {
		t.Fatal(err)
	}
	due, err := s.RetiredDue(ctx)
	if err != nil || len(due) != 1 || due[0].Physical != "Article_v1" {
		t.Fatalf("RetiredDue past the retention = %+v, %v", due, err)
	}
	if err := s.ForgetVersion(ctx, "Article_v1"); err != nil {
		t.Fatal(err)
	}
	if docs, err := s.LookupDocuments(ctx, "Article_v1", "public.articles", []string{"1"}); err != nil || len(docs) != 0 {
		t.Fatalf("rows of the forgotten version: %+v, %v", docs, err)
	}
	if _, _, retired, _ := s.Versions(ctx, "Article"); len(retired) != 0 {
		t.Fatalf("retired versions left: %+v", retired)
	}
}
