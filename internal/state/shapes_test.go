package state

import (
	"slices"
	"testing"
)

func TestMappingShapeRoundTrip(t *testing.T) {
	s, _ := newStore(t, "cdc_indexer")
	ctx := ctxFor(t)
	if _, ok, err := s.MappingShape(ctx, "Article", "public.articles"); err != nil || ok {
		t.Fatalf("unrecorded mapping: ok %v, %v", ok, err)
	}
	want := MappingShape{Template: "{{.title}}", Metadata: []string{"author"}, MaxTokens: 512, Overlap: 8}
	if err := s.SaveMappingShape(ctx, "Article", "public.articles", want); err != nil {
		t.Fatal(err)
	}
	want.Template = "{{.title}} {{.body}}"
	if err := s.SaveMappingShape(ctx, "Article", "public.articles", want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.MappingShape(ctx, "Article", "public.articles")
	if err != nil || !ok || got.Template != want.Template || !slices.Equal(got.Metadata, want.Metadata) || got.MaxTokens != 512 || got.Overlap != 8 {
		t.Fatalf("MappingShape = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	if _, ok, _ := s.MappingShape(ctx, "Other", "public.articles"); ok {
		t.Fatal("a shape recorded for another collection")
	}
}
