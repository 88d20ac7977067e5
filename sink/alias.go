package sink

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/weaviate/weaviate-go-client/v5/weaviate/alias"
	"github.com/weaviate/weaviate-go-client/v5/weaviate/fault"
)

// Alias returns the collection the alias name points at, or "" when there
// is no such alias (Weaviate >= 1.32).
func (w *Weaviate) Alias(ctx context.Context, name string) (string, error) {
	a, err := w.client.Alias().AliasGetter().WithAliasName(name).Do(ctx)
	if err != nil {
		var ce *fault.WeaviateClientError
		if errors.As(err, &ce) && ce.StatusCode == http.StatusNotFound {
			return "", nil
		}
		return "", fmt.Errorf("sink: read alias %s from %s: %w", name, w.baseURL, err)
	}
	return a.Class, nil
}

// PointAlias makes the alias name point at collection, creating it when
// missing. Moving an existing alias is one schema operation in Weaviate: a
// query resolves it to the old collection before and to the new one after.
func (w *Weaviate) PointAlias(ctx context.Context, name, collection string) error {
	have, err := w.Alias(ctx, name)
	if err != nil {
		return err
	}
	a := &alias.Alias{Alias: name, Class: collection}
	switch have {
	case collection:
		return nil
	case "":
		err = w.client.Alias().AliasCreator().WithAlias(a).Do(ctx)
	default:
		err = w.client.Alias().AliasUpdater().WithAlias(a).Do(ctx)
	}
	if err != nil {
		return fmt.Errorf("sink: point alias %s at %s: %w", name, collection, err)
	}
	return nil
}

// DeleteAlias deletes the alias name; a missing one is not an error.
func (w *Weaviate) DeleteAlias(ctx context.Context, name string) error {
	err := w.client.Alias().AliasDeleter().WithAliasName(name).Do(ctx)
	var ce *fault.WeaviateClientError
	if err != nil && !(errors.As(err, &ce) && ce.StatusCode == http.StatusNotFound) {
		return fmt.Errorf("sink: delete alias %s: %w", name, err)
	}
	return nil
}

// ServeAs tells the sink that the objects it writes to collection (a
// physical version) are served under name: object IDs are computed over
// name, so that every version holds the same IDs (contract section 3).
func (w *Weaviate) ServeAs(collection, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.names == nil {
		w.names = map[string]string{}
	}
	w.names[collection] = name
}

// ServedName is the name whose IDs the objects of collection carry.
func (w *Weaviate) ServedName(collection string) string {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if n, ok := w.names[collection]; ok {
		return n
	}
	return collection
}

// Versions returns the collections that are versions of name (name_v1,
// name_v2, ...) and name itself when it is a plain collection, sorted.
func (w *Weaviate) Versions(ctx context.Context, name string) ([]string, error) {
	s, err := w.client.Schema().Getter().Do(ctx)
	if err != nil {
		return nil, fmt.Errorf("sink: read the schema of %s: %w", w.baseURL, err)
	}
	var out []string
	for _, c := range s.Classes {
		if c.Class == name || isVersionOf(c.Class, name) {
			out = append(out, c.Class)
		}
	}
	slices.Sort(out)
	return out, nil
}

// isVersionOf reports whether class is named as a version of name.
func isVersionOf(class, name string) bool {
	rest, ok := strings.CutPrefix(class, name+"_v")
	if !ok || rest == "" {
		return false
	}
	for _, r := range rest {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
