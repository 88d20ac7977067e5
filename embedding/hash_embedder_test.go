package embedding

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
)

var _ Embedder = (*HashEmbedder)(nil)

func embedOne(t testing.TB, e *HashEmbedder, text string) []float32 {
	t.Helper()
	vs, err := e.Embed(context.Background(), []string{text})
	if err != nil {
		t.Fatal(err)
	}
	return vs[0]
}

func cosine(a, b []float32) float64 {
	var dot float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
	}
	return dot
}

func norm(v []float32) float64 { return math.Sqrt(cosine(v, v)) }

func TestHashEmbedderBasics(t *testing.T) {
	e := NewHashEmbedder(384)
	if e.ModelID() != "hash/v1/384" || e.Dimensions() != 384 {
		t.Errorf("ModelID %q Dimensions %d", e.ModelID(), e.Dimensions())
	}
	texts := []string{"", "   ...!!", "hello", "The quick brown fox", "東京は日本の首都です", "😀 emoji", strings.Repeat("long text ", 1000)}
	vs, err := e.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != len(texts) {
		t.Fatalf("%d vectors for %d texts", len(vs), len(texts))
	}
	for i, v := range vs {
		if len(v) != 384 {
			t.Errorf("vector %d has %d dimensions", i, len(v))
		}
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("vector %d has %v", i, x)
			}
		}
		if n := norm(v); math.Abs(n-1) > 1e-5 {
			t.Errorf("vector %d (%q) has norm %v", i, texts[i], n)
		}
	}
	// No features: the fixed unit vector.
	for _, i := range []int{0, 1} {
		if vs[i][0] != 1 || cosine(vs[i], vs[i]) != 1 {
			t.Errorf("featureless text %q: %v...", texts[i], vs[i][:4])
		}
	}
	// Dimensions are honoured.
	for _, d := range []int{1, 2, 3, 1536} {
		if v := embedOne(t, NewHashEmbedder(d), "some words here"); len(v) != d || math.Abs(norm(v)-1) > 1e-5 {
			t.Errorf("dims %d: len %d norm %v", d, len(v), norm(v))
		}
	}
	if vs, err := e.Embed(context.Background(), nil); err != nil || len(vs) != 0 {
		t.Errorf("Embed(nil) = %v, %v", vs, err)
	}
}

func TestHashEmbedderDeterministic(t *testing.T) {
	text := "PostgreSQL logical replication into Weaviate, with ümlauts and 東京 and 😀; repeated repeated words."
	a := embedOne(t, NewHashEmbedder(256), text)
	for i := 0; i < 20; i++ {
		b := embedOne(t, NewHashEmbedder(256), text)
		for j := range a {
			if math.Float32bits(a[j]) != math.Float32bits(b[j]) {
				t.Fatalf("run %d differs at %d", i, j)
			}
		}
	}
	// Batch position does not matter.
	vs, _ := NewHashEmbedder(256).Embed(context.Background(), []string{"other", text, ""})
	for j := range a {
		if a[j] != vs[1][j] {
			t.Fatal("vector depends on batch neighbours")
		}
	}
	// Case and punctuation are ignored.
	if c := cosine(embedOne(t, NewHashEmbedder(256), "Hello, World!"), embedOne(t, NewHashEmbedder(256), "hello world")); c < 0.9999 {
		t.Errorf("case/punctuation changed the vector: cos %v", c)
	}
}

func TestHashEmbedderSimilarity(t *testing.T) {
	e := NewHashEmbedder(384)
	for _, tc := range []struct{ query, near, far string }{
		{"postgres logical replication slot", "the replication slot of a postgres database", "a recipe for chocolate cake with cream"},
		{"running shoes for marathon training", "marathon runners need good shoes", "quarterly tax filing deadlines"},
		{"connector", "connectors", "banana"}, // shared 3-grams
		{"東京の天気", "東京の天気予報", "パリの美術館"},
	} {
		q, n, f := embedOne(t, e, tc.query), embedOne(t, e, tc.near), embedOne(t, e, tc.far)
		if cn, cf := cosine(q, n), cosine(q, f); cn <= cf {
			t.Errorf("%q: near %q cos %.3f <= far %q cos %.3f", tc.query, tc.near, cn, tc.far, cf)
		}
	}
}

func TestHashEmbedderConcurrent(t *testing.T) {
	e := NewHashEmbedder(128)
	texts := []string{"alpha beta", "gamma delta epsilon", "東京 😀"}
	want, _ := e.Embed(context.Background(), texts)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				got, err := e.Embed(context.Background(), texts)
				if err != nil {
					t.Error(err)
					return
				}
				for k := range got {
					for j := range got[k] {
						if got[k][j] != want[k][j] {
							t.Error("concurrent Embed differs")
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestHashEmbedderCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewHashEmbedder(8).Embed(ctx, []string{"x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestNewHashEmbedderRejectsZeroDimensions(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for 0 dimensions")
		}
	}()
	NewHashEmbedder(0)
}

func BenchmarkHashEmbedder(b *testing.B) {
	e := NewHashEmbedder(384)
	chunk := strings.Repeat("PostgreSQL logical replication streams changes into the vector index. ", 28) // ~2 KB, ~512 tokens
	texts := []string{chunk, chunk, chunk, chunk}
	b.SetBytes(int64(4 * len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Embed(context.Background(), texts); err != nil {
			b.Fatal(err)
		}
	}
}
