package sink

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weaviate/weaviate/entities/models"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

func TestEnsureCollectionCreatesContractSchema(t *testing.T) {
	w := newTestSink(t)
	ctx := testCtx(t)
	name := testenv.CollectionName(t)
	spec := CollectionSpec{Name: name, Vectorizer: VectorizerNone, Metadata: []transform.MetadataField{
		{Name: "author", Kind: transform.KindText},
		{Name: "Views", Kind: transform.KindInt},
	}}
	created, err := w.EnsureCollection(ctx, spec)
	if err != nil || !created {
		t.Fatalf("EnsureCollection = %v, %v; want created", created, err)
	}
	class, err := w.getClass(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if class.Vectorizer != "none" {
		t.Errorf("vectorizer = %q, want none", class.Vectorizer)
	}
	got := map[string]string{}
	for _, p := range class.Properties {
		got[p.Name] = strings.Join(p.DataType, ",") + "/" + p.Tokenization
	}
	want := map[string]string{
		"source_table": "text/field", "source_key": "text/field", "chunk_index": "int/",
		"chunk_count": "int/", "text": "text/word", "content_hash": "text/field",
		"source_lsn": "text/field", "author": "text/word", "views": "int/",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("property %s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("properties = %v, want %v", got, want)
	}
	// Chunk text is searchable (BM25) and, by default, not filterable.
	for _, p := range class.Properties {
		if p.Name == PropText && (p.IndexSearchable == nil || !*p.IndexSearchable || p.IndexFilterable == nil || *p.IndexFilterable) {
			t.Errorf("text: searchable %v, filterable %v; want searchable only", deref(p.IndexSearchable), deref(p.IndexFilterable))
		}
	}

	// Idempotent.
	created, err = w.EnsureCollection(ctx, spec)
	if err != nil || created {
		t.Fatalf("second EnsureCollection = %v, %v; want existing, no error", created, err)
	}

	// A new metadata column is added to the existing collection.
	spec.Metadata = append(spec.Metadata, transform.MetadataField{Name: "tags", Kind: transform.KindTextArray})
	if _, err := w.EnsureCollection(ctx, spec); err != nil {
		t.Fatalf("EnsureCollection with a new metadata column: %v", err)
	}
	class, err = w.getClass(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range class.Properties {
		if p.Name == "tags" && strings.Join(p.DataType, ",") == "text[]" {
			found = true
		}
	}
	if !found {
		t.Fatalf("tags property not added: %+v", class.Properties)
	}

	// A different vectorizer is a conflict too.
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: name, Vectorizer: "text2vec-openai"}); err == nil || !strings.Contains(err.Error(), "vectorizer") {
		t.Fatalf("EnsureCollection with another vectorizer = %v", err)
	}

	// A metadata column whose kind changed conflicts with the stored type.
	spec.Metadata[0].Kind = transform.KindInt
	_, err = w.EnsureCollection(ctx, spec)
	if err == nil {
		t.Fatal("EnsureCollection with a conflicting type succeeded")
	}
	if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "author") {
		t.Fatalf("conflict error %q does not name the collection and the property", err)
	}
}

func TestEnsureCollectionRejectsBadMetadataNames(t *testing.T) {
	w := &Weaviate{}
	for _, f := range []transform.MetadataField{
		{Name: "text", Kind: transform.KindText},
		{Name: "Source_key", Kind: transform.KindText},
		{Name: "Body Text", Kind: transform.KindText},
		{Name: "id", Kind: transform.KindText},
	} {
		_, err := w.EnsureCollection(context.Background(), CollectionSpec{Name: "X", Metadata: []transform.MetadataField{f}})
		if err == nil || !strings.Contains(err.Error(), f.Name) {
			t.Errorf("metadata %q: err = %v, want an error naming it", f.Name, err)
		}
	}
}

func TestEnsureCollectionConcurrent(t *testing.T) {
	w := newTestSink(t)
	ctx := testCtx(t)
	spec := CollectionSpec{Name: testenv.CollectionName(t), Metadata: []transform.MetadataField{{Name: "n", Kind: transform.KindNumber}}}
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	createds := make([]bool, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			createds[i], errs[i] = w.EnsureCollection(ctx, spec)
		}(i)
	}
	wg.Wait()
	count := 0
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Errorf("EnsureCollection %d: %v", i, errs[i])
		}
		if createds[i] {
			count++
		}
	}
	if count > 1 {
		t.Errorf("%d calls report creating the collection", count)
	}
}

func TestEnsureCollectionWithVectorizerModuleConfig(t *testing.T) {
	// Building the class model needs no server: check the module settings.
	spec := CollectionSpec{Name: "X", Vectorizer: "text2vec-openai"}
	props, err := specProps(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range props {
		m := p.model(spec.vectorizer())
		cfg := m.ModuleConfig.(map[string]any)["text2vec-openai"].(map[string]any)
		if skip := cfg["skip"].(bool); skip != (p.name != PropText) {
			t.Errorf("property %s: skip = %v", p.name, skip)
		}
	}
}

func deref(b *bool) bool { return b != nil && *b }

// weaviate.text_filterable gives new collections a filterable chunk text;
// an existing collection keeps what it has either way.
func TestTextFilterableOption(t *testing.T) {
	w := newTestSink(t)
	ctx := testCtx(t)
	name := testenv.CollectionName(t)
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: name, Vectorizer: VectorizerNone, TextFilterable: true}); err != nil {
		t.Fatal(err)
	}
	filterable := func() bool {
		class, err := w.getClass(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range class.Properties {
			if p.Name == PropText {
				return deref(p.IndexFilterable) && deref(p.IndexSearchable)
			}
		}
		t.Fatal("no text property")
		return false
	}
	if !filterable() {
		t.Fatal("text_filterable: the text property is not filterable and searchable")
	}
	if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: name, Vectorizer: VectorizerNone}); err != nil {
		t.Fatalf("an existing filterable text with the option off: %v", err)
	}
	if !filterable() {
		t.Fatal("the existing collection's index changed")
	}
}

// A replicated collection, created by the sink or found without it, runs
// Weaviate's asynchronous replication with time-based deletion conflicts:
// what brings a node that was down back in step.
func TestReplicatedCollectionsRepairTheirReplicas(t *testing.T) {
	ctx := testCtx(t)
	nodes, err := testenv.StartWeaviateCluster(ctx, 2, testenv.WeaviateOptions{})
	if err != nil {
		t.Fatalf("TEST ENVIRONMENT UNAVAILABLE: %v", err)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Close()
		}
	})
	w, err := New(ctx, Config{URL: nodes[0].URL(), GRPC: nodes[0].GRPC(), Timeout: 30 * time.Second, ReplicationFactor: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })

	// One created by hand, without asynchronous replication.
	byHand := &models.Class{Class: "TByHand", Vectorizer: VectorizerNone,
		ReplicationConfig: &models.ReplicationConfig{Factor: 2}}
	if err := w.client.Schema().ClassCreator().WithClass(byHand).Do(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"TCreated", "TByHand"} {
		if _, err := w.EnsureCollection(ctx, CollectionSpec{Name: name}); err != nil {
			t.Fatalf("EnsureCollection(%s): %v", name, err)
		}
		class, err := w.getClass(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		rc := class.ReplicationConfig
		if rc == nil || rc.Factor != 2 || !rc.AsyncEnabled || rc.DeletionStrategy != models.ReplicationConfigDeletionStrategyTimeBasedResolution {
			t.Errorf("%s: replication %+v, want factor 2, async, TimeBasedResolution", name, rc)
		}
	}
}
