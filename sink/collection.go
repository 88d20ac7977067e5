package sink

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/weaviate/weaviate-go-client/v5/weaviate/fault"
	"github.com/weaviate/weaviate/entities/models"

	"github.com/cdc-indexer/cdc-indexer/transform"
)

// The contract's properties (CONTRACT.md section 3).
const (
	PropSourceTable = "source_table"
	PropSourceKey   = "source_key"
	PropChunkIndex  = "chunk_index"
	PropChunkCount  = "chunk_count"
	PropText        = "text"
	PropContentHash = "content_hash"
	PropSourceLSN   = "source_lsn"
)

// VectorizerNone is CollectionSpec.Vectorizer for collections whose vectors
// the connector computes.
const VectorizerNone = "none"

// CollectionSpec describes the collection of one table mapping.
type CollectionSpec struct {
	Name     string
	Metadata []transform.MetadataField
	// Vectorizer is "none" (or empty) when the connector sends vectors, or
	// the name of a Weaviate vectorizer module (e.g. text2vec-openai).
	Vectorizer string
	// VectorizerConfig is the module's class-level configuration.
	VectorizerConfig map[string]any
	// MultiTenant makes every object live in a tenant (tables[].tenant),
	// created and activated as rows arrive.
	MultiTenant bool
	// TextFilterable gives the chunk text property a filterable index too
	// (weaviate.text_filterable); it is always searchable (BM25).
	TextFilterable bool
}

type propSpec struct {
	name         string
	dataType     string
	tokenization string // "" for non-text types
	filterable   bool
	searchable   bool
	vectorize    bool // part of the vectorizer's input
}

var contractProps = []propSpec{
	{name: PropSourceTable, dataType: "text", tokenization: "field", filterable: true},
	{name: PropSourceKey, dataType: "text", tokenization: "field", filterable: true},
	{name: PropChunkIndex, dataType: "int", filterable: true},
	{name: PropChunkCount, dataType: "int", filterable: true},
	{name: PropText, dataType: "text", tokenization: "word", searchable: true, vectorize: true},
	{name: PropContentHash, dataType: "text", tokenization: "field", filterable: true},
	{name: PropSourceLSN, dataType: "text", tokenization: "field", filterable: true},
}

var propNameRE = regexp.MustCompile(`^[_A-Za-z][_0-9A-Za-z]{0,230}$`)

// PropertyName is the name Weaviate gives a metadata column's property:
// Weaviate lower-cases the first letter of property names.
func PropertyName(column string) string {
	if column == "" {
		return column
	}
	c := column[0]
	if c >= 'A' && c <= 'Z' {
		return string(c+('a'-'A')) + column[1:]
	}
	return column
}

// specProps is every property spec asks for, contract ones first.
func specProps(spec CollectionSpec) ([]propSpec, error) {
	props := make([]propSpec, 0, len(contractProps)+len(spec.Metadata))
	props = append(props, contractProps...)
	for i := range props {
		if props[i].name == PropText {
			props[i].filterable = spec.TextFilterable
		}
	}
	seen := map[string]string{}
	for _, p := range contractProps {
		seen[strings.ToLower(p.name)] = p.name
	}
	for _, f := range spec.Metadata {
		name := PropertyName(f.Name)
		if !propNameRE.MatchString(name) {
			return nil, fmt.Errorf("collection %s: metadata column %q is not a valid Weaviate property name (want %s)", spec.Name, f.Name, propNameRE)
		}
		switch name {
		case "id", "_id", "_additional":
			return nil, fmt.Errorf("collection %s: metadata column %q is a reserved Weaviate property name", spec.Name, f.Name)
		}
		if other, dup := seen[strings.ToLower(name)]; dup {
			return nil, fmt.Errorf("collection %s: metadata column %q collides with property %q", spec.Name, f.Name, other)
		}
		seen[strings.ToLower(name)] = name
		dt, err := dataType(f.Kind)
		if err != nil {
			return nil, fmt.Errorf("collection %s: metadata column %q: %w", spec.Name, f.Name, err)
		}
		p := propSpec{name: name, dataType: dt, filterable: true}
		if dt == "text" || dt == "text[]" {
			p.tokenization = "word"
			p.searchable = true
		}
		props = append(props, p)
	}
	return props, nil
}

func (spec CollectionSpec) vectorizer() string {
	if spec.Vectorizer == "" {
		return VectorizerNone
	}
	return spec.Vectorizer
}

func (p propSpec) model(vectorizer string) *models.Property {
	t, f := true, false
	mp := &models.Property{
		Name:            p.name,
		DataType:        []string{p.dataType},
		Tokenization:    p.tokenization,
		IndexFilterable: &f,
	}
	if p.filterable {
		mp.IndexFilterable = &t
	}
	if p.tokenization != "" {
		mp.IndexSearchable = &f
		if p.searchable {
			mp.IndexSearchable = &t
		}
	}
	if vectorizer != VectorizerNone {
		mp.ModuleConfig = map[string]any{
			vectorizer: map[string]any{"skip": !p.vectorize, "vectorizePropertyName": false},
		}
	}
	return mp
}

// EnsureCollection creates spec's collection when it does not exist and
// otherwise checks that it has the contract's properties and spec's metadata
// properties with compatible types, adding missing ones. created reports
// whether this call created the collection. A property of a conflicting
// type is an error naming the collection and the property.
func (w *Weaviate) EnsureCollection(ctx context.Context, spec CollectionSpec) (created bool, err error) {
	if spec.Name == "" {
		return false, errors.New("sink: collection name is empty")
	}
	props, err := specProps(spec)
	if err != nil {
		return false, fmt.Errorf("sink: %w", err)
	}
	defer func() {
		if err == nil {
			w.rememberKinds(spec)
		}
	}()

	class, err := w.getClass(ctx, spec.Name)
	if err != nil && !errors.Is(err, errNoCollection) {
		return false, err
	}
	if class == nil {
		vec := spec.vectorizer()
		c := &models.Class{Class: spec.Name, Vectorizer: vec, Properties: make([]*models.Property, len(props))}
		if w.replicationFactor > 1 {
			c.ReplicationConfig = replicated(w.replicationFactor)
		}
		if spec.MultiTenant {
			c.MultiTenancyConfig = multiTenancy()
		}
		for i, p := range props {
			c.Properties[i] = p.model(vec)
		}
		if vec != VectorizerNone {
			cfg := map[string]any{"vectorizeClassName": false}
			for k, v := range spec.VectorizerConfig {
				cfg[k] = v
			}
			c.ModuleConfig = map[string]any{vec: cfg}
		}
		cerr := w.client.Schema().ClassCreator().WithClass(c).Do(ctx)
		if cerr == nil {
			return true, nil
		}
		if !alreadyExists(cerr) {
			return false, fmt.Errorf("sink: create collection %s: %w", spec.Name, cerr)
		}
		// Created concurrently: check what is there.
		class, err = w.getClass(ctx, spec.Name)
		if err != nil {
			return false, err
		}
	}
	return false, w.reconcile(ctx, spec, class, props)
}

// reconcile checks an existing class against props and adds what is missing.
func (w *Weaviate) reconcile(ctx context.Context, spec CollectionSpec, class *models.Class, props []propSpec) error {
	if got := replicationFactor(class); w.replicationFactor > 0 && got != w.replicationFactor {
		return fmt.Errorf("sink: collection %s has replication factor %d, weaviate.replication_factor is %d: set the key to %d, or change the collection's factor in Weaviate", spec.Name, got, w.replicationFactor, got)
	}
	if err := w.repairReplicas(ctx, class); err != nil {
		return fmt.Errorf("sink: collection %s: %w", spec.Name, err)
	}
	if multi := isMultiTenant(class); multi != spec.MultiTenant {
		if multi {
			return fmt.Errorf("sink: collection %s has tenants, and the mapping names no tenant column: set tables[].tenant, or use another collection", spec.Name)
		}
		return fmt.Errorf("sink: collection %s has no tenants, and the mapping names a tenant column: Weaviate cannot add tenants to an existing collection; use a new collection name", spec.Name)
	}
	existing := make(map[string]*models.Property, len(class.Properties))
	for _, p := range class.Properties {
		existing[strings.ToLower(p.Name)] = p
	}
	vec := class.Vectorizer
	if vec == "" {
		vec = VectorizerNone
	}
	if class.Vectorizer != "" && vec != spec.vectorizer() {
		return fmt.Errorf("sink: collection %s uses vectorizer %s, the configuration wants %s", spec.Name, vec, spec.vectorizer())
	}
	for _, want := range props {
		have, ok := existing[strings.ToLower(want.name)]
		if !ok {
			err := w.client.Schema().PropertyCreator().WithClassName(spec.Name).WithProperty(want.model(vec)).Do(ctx)
			if err == nil {
				continue
			}
			if !alreadyExists(err) {
				return fmt.Errorf("sink: collection %s: add property %s: %w", spec.Name, want.name, err)
			}
			fresh, gerr := w.getClass(ctx, spec.Name)
			if gerr != nil {
				return gerr
			}
			for _, p := range fresh.Properties {
				if strings.EqualFold(p.Name, want.name) {
					have = p
				}
			}
			if have == nil {
				return fmt.Errorf("sink: collection %s: add property %s: %w", spec.Name, want.name, err)
			}
		}
		if err := compatible(spec.Name, want, have); err != nil {
			return err
		}
	}
	return nil
}

func compatible(collection string, want propSpec, have *models.Property) error {
	got := strings.Join(have.DataType, ",")
	if have.Name != want.name {
		return fmt.Errorf("sink: collection %s: property %s exists as %s (names differ in case)", collection, want.name, have.Name)
	}
	if got != want.dataType && !(want.dataType == "text" && got == "string") && !(want.dataType == "text[]" && got == "string[]") {
		return fmt.Errorf("sink: collection %s: property %s has type %s, want %s", collection, want.name, got, want.dataType)
	}
	// Exact matching of keys and deletes depends on field tokenization.
	if want.tokenization == "field" && have.Tokenization != "field" {
		return fmt.Errorf("sink: collection %s: property %s has tokenization %q, want \"field\"", collection, want.name, have.Tokenization)
	}
	if want.filterable && have.IndexFilterable != nil && !*have.IndexFilterable &&
		(want.name == PropSourceTable || want.name == PropSourceKey) {
		return fmt.Errorf("sink: collection %s: property %s is not filterable", collection, want.name)
	}
	return nil
}

// getClass returns the class, or errNoCollection.
func (w *Weaviate) getClass(ctx context.Context, name string) (*models.Class, error) {
	class, err := w.client.Schema().ClassGetter().WithClassName(name).Do(ctx)
	if err != nil {
		var ce *fault.WeaviateClientError
		if errors.As(err, &ce) && ce.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("sink: collection %s: %w", name, errNoCollection)
		}
		return nil, fmt.Errorf("sink: read collection %s from %s: %w", name, w.baseURL, err)
	}
	return class, nil
}

func alreadyExists(err error) bool {
	var ce *fault.WeaviateClientError
	if !errors.As(err, &ce) {
		return false
	}
	return strings.Contains(strings.ToLower(ce.Msg), "already exists")
}

// rememberKinds records spec's metadata kinds for Write's value conversion.
func (w *Weaviate) rememberKinds(spec CollectionSpec) {
	m := make(map[string]kindInfo, len(spec.Metadata))
	for _, f := range spec.Metadata {
		m[f.Name] = kindInfo{kind: f.Kind, known: true}
	}
	w.mu.Lock()
	w.kinds[spec.Name] = m
	if w.tenancy == nil {
		w.tenancy = map[string]bool{}
	}
	w.tenancy[spec.Name] = spec.MultiTenant
	w.mu.Unlock()
}

func (w *Weaviate) kindsOf(collection string) map[string]kindInfo {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.kinds[collection]
}

// CollectionVectorDimensions reports the length of the vectors stored in
// the collection, by reading one object (of the first tenant that has one);
// ok is false when the collection does not exist or holds no vector yet.
func (w *Weaviate) CollectionVectorDimensions(ctx context.Context, name string) (dims int, ok bool, err error) {
	errFound := errors.New("found")
	err = w.forTenants(ctx, name, "", func(tenant string) error {
		objs, _, err := w.listPage(ctx, name, tenant, "", 1, true)
		if err != nil {
			return err
		}
		if len(objs) > 0 && len(objs[0].vector) > 0 {
			dims = len(objs[0].vector)
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return dims, true, nil
	case err == nil, errors.Is(err, errNoCollection):
		return 0, false, nil
	default:
		return 0, false, err
	}
}

// replicated is the replication of a collection the connector creates with
// factor > 1. A replica that was down misses the writes and deletes of that
// time, and Weaviate's synchronous replication never sends them again: only
// asynchronous replication brings it back in step without a read of every
// object. Its conflicts between a deleted object and one present elsewhere
// are settled by time (TimeBasedResolution): the connector deletes and
// re-creates the same deterministic ids (a row deleted and inserted again,
// a document that shrank and grew), so "delete wins" would lose objects,
// and no resolution at all would keep deleted rows on the returning node.
func replicated(factor int) *models.ReplicationConfig {
	return &models.ReplicationConfig{
		Factor:           int64(factor),
		AsyncEnabled:     true,
		DeletionStrategy: models.ReplicationConfigDeletionStrategyTimeBasedResolution,
	}
}

// repairReplicas turns on what replicated() sets for an existing
// replicated collection that lacks it (created by hand, or by an earlier
// version of the connector): without it, a node that was down stays out of
// step for good.
func (w *Weaviate) repairReplicas(ctx context.Context, class *models.Class) error {
	factor := replicationFactor(class)
	rc := class.ReplicationConfig
	if factor < 2 || (rc.AsyncEnabled && rc.DeletionStrategy == models.ReplicationConfigDeletionStrategyTimeBasedResolution) {
		return nil
	}
	class.ReplicationConfig = replicated(factor)
	if err := w.client.Schema().ClassUpdater().WithClass(class).Do(ctx); err != nil {
		return fmt.Errorf("turn on asynchronous replication (asyncEnabled, deletionStrategy %s): %w",
			models.ReplicationConfigDeletionStrategyTimeBasedResolution, err)
	}
	return nil
}

// replicationFactor is a class's replication factor; Weaviate reports none
// for an unreplicated class.
func replicationFactor(class *models.Class) int {
	if class.ReplicationConfig == nil || class.ReplicationConfig.Factor < 1 {
		return 1
	}
	return int(class.ReplicationConfig.Factor)
}

// CollectionExists reports whether Weaviate has the collection.
func (w *Weaviate) CollectionExists(ctx context.Context, name string) (bool, error) {
	ok, err := w.client.Schema().ClassExistenceChecker().WithClassName(name).Do(ctx)
	if err != nil {
		return false, fmt.Errorf("sink: does collection %s exist: %w", name, err)
	}
	return ok, nil
}

// DeleteCollection deletes a collection and every object in it.
func (w *Weaviate) DeleteCollection(ctx context.Context, name string) error {
	if err := w.client.Schema().ClassDeleter().WithClassName(name).Do(ctx); err != nil {
		return fmt.Errorf("sink: delete collection %s: %w", name, err)
	}
	w.mu.Lock()
	delete(w.kinds, name)
	delete(w.tenancy, name)
	w.mu.Unlock()
	return nil
}
