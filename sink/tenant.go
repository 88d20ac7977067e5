package sink

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/weaviate/weaviate/entities/models"
)

// Multi-tenant collections (tables[].tenant): every object lives in one
// tenant, and every read, write and delete names the tenant it is for.
// Writes create (and activate) tenants as rows arrive. A delete whose tenant
// is not known ("") reaches every tenant of the collection: what a truncate
// does, and what a removal does when the state does not record where the
// row was.

// multiTenancy is the configuration of a collection the connector creates
// with tenants.
func multiTenancy() *models.MultiTenancyConfig {
	return &models.MultiTenancyConfig{Enabled: true, AutoTenantCreation: true, AutoTenantActivation: true}
}

func isMultiTenant(class *models.Class) bool {
	return class != nil && class.MultiTenancyConfig != nil && class.MultiTenancyConfig.Enabled
}

// forTenants runs fn for tenant when it is given, else for every tenant of
// a multi-tenant collection, else once with "" (a collection without
// tenants, or one that does not exist).
func (w *Weaviate) forTenants(ctx context.Context, collection, tenant string, fn func(tenant string) error) error {
	if tenant != "" {
		return fn(tenant)
	}
	tenants, err := w.Tenants(ctx, collection)
	if err != nil {
		return err
	}
	if tenants == nil {
		return fn("")
	}
	for _, t := range tenants {
		if err := fn(t); err != nil {
			return fmt.Errorf("tenant %s: %w", t, err)
		}
	}
	return nil
}

// Tenants lists the tenants of a multi-tenant collection, by name; nil for
// a collection without tenants or one that does not exist.
func (w *Weaviate) Tenants(ctx context.Context, collection string) ([]string, error) {
	multi, err := w.multiTenant(ctx, collection)
	if err != nil || !multi {
		return nil, err
	}
	list, err := w.client.Schema().TenantsGetter().WithClassName(collection).Do(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tenants of %s: %w", collection, err)
	}
	out := make([]string, 0, len(list))
	for _, t := range list {
		out = append(out, t.Name)
	}
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// multiTenant reports whether a collection has tenants: remembered from
// EnsureCollection, else read from its schema.
func (w *Weaviate) multiTenant(ctx context.Context, collection string) (bool, error) {
	w.mu.RLock()
	multi, known := w.tenancy[collection]
	w.mu.RUnlock()
	if known {
		return multi, nil
	}
	class, err := w.getClass(ctx, collection)
	if errors.Is(err, errNoCollection) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	multi = isMultiTenant(class)
	w.mu.Lock()
	if w.tenancy == nil {
		w.tenancy = map[string]bool{}
	}
	w.tenancy[collection] = multi
	w.mu.Unlock()
	return multi, nil
}
