package indexer

import (
	"slices"
	"testing"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/reindex"
)

func versionsConfig() *config.Config {
	return &config.Config{
		Embedding: config.Embedding{Provider: config.ProviderHash, Dimensions: 64},
		Chunking:  config.Chunking{MaxTokens: 128},
		Tables: []config.Table{
			{Table: "articles", Collection: "Article", Template: "{{.title}}", Metadata: []string{"author"}},
			{Table: "public.notes", Collection: "Article", Template: "{{.body}}"},
			{Table: "public.tickets", Collection: "Ticket", Template: "{{.subject}}"},
		},
	}
}

func TestSpecOfCoversEveryMappingOfTheCollection(t *testing.T) {
	cfg := versionsConfig()
	s := specOf(cfg, "Article")
	if len(s.Mappings) != 2 || s.Mappings[0].Table != "public.articles" || s.Mappings[1].Table != "public.notes" {
		t.Fatalf("mappings = %+v, want public.articles and public.notes in canonical form", s.Mappings)
	}
	if e := s.Embedding; e.Provider != "hash" || e.Model != "" || e.Dimensions != 64 || s.MaxTokens != 128 {
		t.Fatalf("spec = %+v", s)
	}
	before := s.Fingerprint()
	cfg.Tables[2].Template = "changed"
	if specOf(cfg, "Article").Fingerprint() != before {
		t.Error("a change to another collection's mapping changed the fingerprint")
	}
	cfg.Embedding.BaseURL = "http://elsewhere"
	if specOf(cfg, "Article").Fingerprint() != before {
		t.Error("the provider's address changed the fingerprint")
	}
	cfg.Embedding.Dimensions = 128
	if specOf(cfg, "Article").Fingerprint() == before {
		t.Error("a dimensions change kept the fingerprint")
	}
}

func TestEmbeddingConfigOfAnOlderVersion(t *testing.T) {
	now := config.Embedding{Provider: config.ProviderOpenAI, Model: "new", Dimensions: 256, BaseURL: "http://p", APIKey: "k"}
	old := embeddingConfig(now, reindex.Embedding{Provider: config.ProviderOpenAI, Model: "old", Dimensions: 128})
	if old.Model != "old" || old.Dimensions != 128 || old.BaseURL != "http://p" || old.APIKey != "k" {
		t.Fatalf("embeddingConfig = %+v; want the old model at the configured endpoint", old)
	}
}

func TestParseModelID(t *testing.T) {
	tests := []struct {
		id   string
		dims int
		want reindex.Embedding
		ok   bool
	}{
		{"hash/v1/64", 64, reindex.Embedding{Provider: "hash", Dimensions: 64}, true},
		{"openai/text-embedding-3-small/1536", 1536, reindex.Embedding{Provider: "openai", Model: "text-embedding-3-small", Dimensions: 1536}, true},
		{"openai/org/model/8", 8, reindex.Embedding{Provider: "openai", Model: "org/model", Dimensions: 8}, true},
		{"weaviate/text2vec-openai", 0, reindex.Embedding{}, false},
		{"none", 0, reindex.Embedding{}, false},
	}
	for _, tt := range tests {
		got, ok := parseModelID(tt.id, tt.dims)
		if ok != tt.ok || got.Provider != tt.want.Provider || got.Model != tt.want.Model || got.Dimensions != tt.want.Dimensions {
			t.Errorf("parseModelID(%q) = %+v, %v; want %+v, %v", tt.id, got, ok, tt.want, tt.ok)
		}
	}
}

func TestVersionNumber(t *testing.T) {
	for physical, want := range map[string]int{"Article_v3": 3, "Article_v12": 12, "Article": 0, "Other_v2": 0, "Article_vx": 0} {
		if got := versionNumber("Article", physical); got != want {
			t.Errorf("versionNumber(Article, %s) = %d, want %d", physical, got, want)
		}
	}
}

func TestReindexSelection(t *testing.T) {
	cfg := versionsConfig()
	names, mappings, err := reindexSelection(cfg, nil)
	if err != nil || !slices.Equal(names, []string{"Article", "Ticket"}) || len(mappings) != 3 {
		t.Fatalf("all: %v, %d mappings, %v", names, len(mappings), err)
	}
	names, mappings, err = reindexSelection(cfg, []string{"public.notes"})
	if err != nil || !slices.Equal(names, []string{"Article"}) || len(mappings) != 2 {
		t.Fatalf("--table public.notes: %v, %d mappings, %v; want Article with both its mappings", names, len(mappings), err)
	}
	if _, _, err := reindexSelection(cfg, []string{"public.nope"}); err == nil {
		t.Fatal("an unconfigured table was accepted")
	}
}
