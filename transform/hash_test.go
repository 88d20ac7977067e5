package transform

import (
	"regexp"
	"testing"
)

func TestContentHash(t *testing.T) {
	md := func() map[string]any {
		return map[string]any{
			"author": "Ada",
			"views":  int64(3),
			"score":  1.5,
			"tags":   []string{"a", "b"},
			"flags":  []bool{true},
			"when":   "2024-01-31T00:00:00Z",
		}
	}
	base := ContentHash("text", md(), "hash/v1/384")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(base) {
		t.Fatalf("hash %q is not hex SHA-256", base)
	}
	// Stable across calls and map construction orders.
	for i := 0; i < 50; i++ {
		m := map[string]any{}
		keys := []string{"when", "flags", "tags", "score", "views", "author"}
		src := md()
		for j := range keys {
			k := keys[(i+j)%len(keys)]
			m[k] = src[k]
		}
		if h := ContentHash("text", m, "hash/v1/384"); h != base {
			t.Fatalf("hash changed between calls: %s vs %s", h, base)
		}
	}
	if ContentHash("", nil, "") != ContentHash("", map[string]any{}, "") {
		t.Error("nil and empty metadata differ")
	}

	different := map[string]func() string{
		"text":           func() string { return ContentHash("text!", md(), "hash/v1/384") },
		"model":          func() string { return ContentHash("text", md(), "hash/v1/385") },
		"metadata value": func() string { m := md(); m["author"] = "Grace"; return ContentHash("text", m, "hash/v1/384") },
		"metadata type":  func() string { m := md(); m["views"] = float64(3); return ContentHash("text", m, "hash/v1/384") },
		"metadata key": func() string {
			m := md()
			m["writer"] = m["author"]
			delete(m, "author")
			return ContentHash("text", m, "hash/v1/384")
		},
		"metadata added":  func() string { m := md(); m["x"] = ""; return ContentHash("text", m, "hash/v1/384") },
		"metadata gone":   func() string { m := md(); delete(m, "flags"); return ContentHash("text", m, "hash/v1/384") },
		"array element":   func() string { m := md(); m["tags"] = []string{"a", "c"}; return ContentHash("text", m, "hash/v1/384") },
		"array split":     func() string { m := md(); m["tags"] = []string{"a,b"}; return ContentHash("text", m, "hash/v1/384") },
		"text into model": func() string { return ContentHash("tex", md(), "thash/v1/384") },
	}
	seen := map[string]string{base: "base"}
	for name, f := range different {
		h := f()
		if prev, ok := seen[h]; ok {
			t.Errorf("changing %s gives the same hash as %s", name, prev)
		}
		seen[h] = name
	}

	// Framing: moving bytes between fields changes the hash.
	if ContentHash("ab", nil, "c") == ContentHash("a", nil, "bc") {
		t.Error("text/model boundary is ambiguous")
	}
	if ContentHash("", map[string]any{"a": "bc"}, "") == ContentHash("", map[string]any{"ab": "c"}, "") {
		t.Error("key/value boundary is ambiguous")
	}
}

func BenchmarkContentHash(b *testing.B) {
	text := string(make([]byte, 4096))
	md := map[string]any{"author": "Ada", "views": int64(3), "tags": []string{"a", "b", "c"}}
	b.ReportAllocs()
	for b.Loop() {
		ContentHash(text, md, "hash/v1/384")
	}
}
