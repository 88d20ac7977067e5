package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const examplePath = "../../config.example.yaml"

func TestExampleConfigLoadsAndValidates(t *testing.T) {
	cfg, err := Load(examplePath)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// The example shows the defaults for optional keys.
	defaulted := mustLoad(t, minimalYAML)
	if cfg.Pipeline != defaulted.Pipeline || cfg.Chunking != defaulted.Chunking || cfg.Log != defaulted.Log ||
		cfg.Weaviate.Timeout != defaulted.Weaviate.Timeout || cfg.Embedding.BatchSize != defaulted.Embedding.BatchSize ||
		cfg.Embedding.Dimensions != defaulted.Embedding.Dimensions || cfg.Postgres.Slot != defaulted.Postgres.Slot ||
		cfg.Observability != defaulted.Observability {
		t.Errorf("example differs from the defaults:\n%+v\n%+v", cfg.Redacted(), defaulted.Redacted())
	}
}

// Every key appears in the example, written out and preceded by a comment.
func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	raw, err := os.ReadFile(filepath.Clean(examplePath))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.DocumentNode:
			walk(n.Content[0], prefix)
		case yaml.MappingNode:
			for i := 0; i < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				key := k.Value
				if prefix != "" {
					key = prefix + "." + k.Value
				}
				comment := k.HeadComment + k.LineComment + v.LineComment
				if i == 0 {
					// A comment above "- key:" belongs to the list item.
					comment += n.HeadComment
				}
				documented[key] = strings.TrimSpace(comment) != ""
				walk(v, key)
			}
		case yaml.SequenceNode:
			if len(n.Content) > 0 {
				walk(n.Content[0], prefix+"[]")
			}
		}
	}
	walk(&doc, "")
	want := append([]string{tablesKey}, scalarKeys...)
	for _, k := range tableKeys {
		want = append(want, tablesKey+"[]."+k)
	}
	for _, key := range want {
		commented, present := documented[key]
		switch {
		case !present:
			t.Errorf("config.example.yaml lacks %s", key)
		case !commented:
			t.Errorf("config.example.yaml has no comment on %s", key)
		}
	}
}
