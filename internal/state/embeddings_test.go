package state

import (
	"errors"
	"testing"
)

func TestCollectionModels(t *testing.T) {
	s, _ := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	if _, err := s.CollectionModel(ctx, "Article"); !errors.Is(err, ErrNoCollectionModel) {
		t.Fatalf("unrecorded collection: %v", err)
	}
	if err := s.SaveCollectionModel(ctx, CollectionModel{Collection: "Article", ModelID: "openai/m/512", Dimensions: 512}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCollectionModel(ctx, CollectionModel{Collection: "Note", ModelID: "none"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCollectionModel(ctx, CollectionModel{Collection: "Article", ModelID: "openai/m/256", Dimensions: 256}); err != nil {
		t.Fatal(err)
	}
	c, err := s.CollectionModel(ctx, "Article")
	if err != nil || c.ModelID != "openai/m/256" || c.Dimensions != 256 || c.CreatedAt.IsZero() {
		t.Fatalf("CollectionModel = %+v, %v", c, err)
	}
	all, err := s.CollectionModels(ctx)
	if err != nil || len(all) != 2 || all[0].Collection != "Article" || all[1].ModelID != "none" {
		t.Fatalf("CollectionModels = %+v, %v", all, err)
	}
}

func TestEmbeddingUsage(t *testing.T) {
	s, _ := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	for i := 0; i < 3; i++ {
		if err := s.AddEmbeddingUsage(ctx, "openai/m/512", "public.articles", 2, 100, 0.5); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddEmbeddingUsage(ctx, "openai/m/512", "public.notes", 1, 7, 0); err != nil {
		t.Fatal(err)
	}
	u, err := s.EmbeddingUsages(ctx)
	if err != nil || len(u) != 2 {
		t.Fatalf("EmbeddingUsages = %+v, %v", u, err)
	}
	if a := u[0]; a.SourceTable != "public.articles" || a.Texts != 6 || a.Tokens != 300 || a.Cost != 1.5 {
		t.Errorf("articles usage %+v", a)
	}
}

func TestEmbeddingCacheRoundTrip(t *testing.T) {
	s, _ := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	k1, k2 := [32]byte{1}, [32]byte{2}
	v := []float32{0.5, -1.25, 3e-8, 0}
	if err := s.SaveEmbeddings(ctx, "m", [][32]byte{k1}, [][]float32{v}); err != nil {
		t.Fatal(err)
	}
	// Saving again only touches it.
	if err := s.SaveEmbeddings(ctx, "m", [][32]byte{k1}, [][]float32{{9}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.LookupEmbeddings(ctx, "m", [][32]byte{k1, k2})
	if err != nil || len(got) != 1 {
		t.Fatalf("LookupEmbeddings = %v, %v", got, err)
	}
	for i := range v {
		if got[k1][i] != v[i] {
			t.Fatalf("vector %v, want %v", got[k1], v)
		}
	}
	if other, err := s.LookupEmbeddings(ctx, "other-model", [][32]byte{k1}); err != nil || len(other) != 0 {
		t.Errorf("another model's lookup = %v, %v", other, err)
	}
}
