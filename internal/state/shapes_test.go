package state

import (
	"slices"
	"testing"
)

func TestShapeChange(t *testing.T) {
	base := MappingShape{Template: "{{.title}}", Metadata: []string{"a", "b"}, MaxTokens: 512}
	cases := []struct {
		name             string
		mutate           func(*MappingShape)
		changed, rewrite bool
	}{
		{"same", func(*MappingShape) {}, false, false},
		{"template", func(s *MappingShape) { s.Template = "{{.title}} {{.summary}}" }, true, false},
		{"metadata added", func(s *MappingShape) { s.Metadata = append(s.Metadata, "c") }, true, false},
		{"metadata reordered", func(s *MappingShape) { s.Metadata = []string{"b", "a"} }, true, false},
		{"max tokens", func(s *MappingShape) { s.MaxTokens = 256 }, true, true},
		{"overlap", func(s *MappingShape) { s.Overlap = 32 }, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := base
			now.Metadata = append([]string(nil), base.Metadata...)
			c.mutate(&now)
			changed, rewrite := ShapeChange(base, now)
			if changed != c.changed || rewrite != c.rewrite {
				t.Fatalf("ShapeChange = %v, %v; want %v, %v", changed, rewrite, c.changed, c.rewrite)
			}
		})
	}
}

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
