package reindex

import (
	"slices"
	"testing"
)

func TestFingerprint(t *testing.T) {
	base := Spec{
		Mappings: []Mapping{
			{Table: "public.a", Template: "{{.title}}", Metadata: []string{"author"}},
			{Table: "public.b", Template: "{{.body}}"},
		},
		MaxTokens: 512,
		Embedding: Embedding{Provider: "hash", Dimensions: 128},
	}
	reordered := base
	reordered.Mappings = []Mapping{base.Mappings[1], base.Mappings[0]}
	if base.Fingerprint() != reordered.Fingerprint() {
		t.Error("the order of the mappings changed the fingerprint")
	}
	emptyMeta := base
	emptyMeta.Mappings = slices.Clone(base.Mappings)
	emptyMeta.Mappings[1].Metadata = []string{}
	if base.Fingerprint() != emptyMeta.Fingerprint() {
		t.Error("nil and empty metadata differ")
	}
	change := func(f func(*Spec)) Spec {
		s := base
		s.Mappings = slices.Clone(base.Mappings)
		f(&s)
		return s
	}
	for name, s := range map[string]Spec{
		"template":    change(func(s *Spec) { s.Mappings[0].Template = "{{.title}}!" }),
		"metadata":    change(func(s *Spec) { s.Mappings[0].Metadata = []string{"category"} }),
		"tenant":      change(func(s *Spec) { s.Mappings[1].Tenant = "org" }),
		"chunking":    change(func(s *Spec) { s.MaxTokens = 256 }),
		"overlap":     change(func(s *Spec) { s.Overlap = 16 }),
		"model":       change(func(s *Spec) { s.Embedding.Model = "m2" }),
		"dimensions":  change(func(s *Spec) { s.Embedding.Dimensions = 256 }),
		"provider":    change(func(s *Spec) { s.Embedding.Provider = "openai" }),
		"vectorizer":  change(func(s *Spec) { s.Embedding.VectorizerConfig = map[string]any{"model": "x"} }),
		"new mapping": change(func(s *Spec) { s.Mappings = append(s.Mappings, Mapping{Table: "public.c"}) }),
	} {
		if s.Fingerprint() == base.Fingerprint() {
			t.Errorf("a change of %s kept the fingerprint", name)
		}
		if len(Changes(base, s)) == 0 {
			t.Errorf("Changes does not name a change of %s", name)
		}
	}
	for name, s := range map[string]Spec{
		"template": change(func(s *Spec) { s.Mappings[0].Template = "x" }),
		"metadata": change(func(s *Spec) { s.Mappings[0].Metadata = nil }),
	} {
		if !base.SameEncoding(s) {
			t.Errorf("a change of %s changed the encoding", name)
		}
	}
	for name, s := range map[string]Spec{
		"chunking":   change(func(s *Spec) { s.MaxTokens = 256 }),
		"overlap":    change(func(s *Spec) { s.Overlap = 16 }),
		"model":      change(func(s *Spec) { s.Embedding.Model = "m2" }),
		"dimensions": change(func(s *Spec) { s.Embedding.Dimensions = 256 }),
		"vectorizer": change(func(s *Spec) { s.Embedding.VectorizerConfig = map[string]any{"model": "x"} }),
	} {
		if base.SameEncoding(s) {
			t.Errorf("a change of %s kept the encoding", name)
		}
	}
	if got := Changes(base, reordered); len(got) != 0 {
		t.Errorf("Changes(base, reordered) = %v, want none", got)
	}
	if got := Changes(base, change(func(s *Spec) { s.Mappings[0].Template = "x" })); !slices.Equal(got, []string{"template of public.a"}) {
		t.Errorf("Changes = %v", got)
	}
}

func TestPhysicalName(t *testing.T) {
	if got := PhysicalName("Article", 3); got != "Article_v3" {
		t.Errorf("PhysicalName = %q", got)
	}
}
