package pipeline

import (
	"context"
	"fmt"
	"slices"

	"github.com/cdc-indexer/cdc-indexer/internal/state"
)

// Multi-tenant mappings (tables[].tenant) keep each row's objects in the
// tenant its column names. The state records that tenant per row, which is
// how a delete, or a row whose tenant changed, finds the objects to remove
// without visiting every tenant. Where the state may not know (a replayed
// change after an unclean stop, a row a stopped snapshot was writing), the
// row is removed from every tenant but the one it is written to.

// tenantKeys are the removals of one batch: keys by the tenant they leave,
// and keys to remove from every tenant but their own.
type tenantKeys struct {
	from      map[string][]string // tenant ("" = every tenant) -> keys
	elsewhere map[string][]string // keys' own tenant -> keys, removed from all others
}

func (r *tenantKeys) add(tenant, key string) {
	if r.from == nil {
		r.from = map[string][]string{}
	}
	r.from[tenant] = append(r.from[tenant], key)
}

func (r *tenantKeys) addElsewhere(tenant, key string) {
	if r.elsewhere == nil {
		r.elsewhere = map[string][]string{}
	}
	r.elsewhere[tenant] = append(r.elsewhere[tenant], key)
}

// removalTenant is the tenant a removed row's objects are in: the one the
// state records, or "" (every tenant) when the mapping has tenants and the
// state is not trusted or records none.
func removalTenant(t *Table, prev map[string]state.DocState, key string, untrusted bool) string {
	if t.Renderer.Tenant() == "" || untrusted {
		return ""
	}
	return prev[key].Tenant
}

// recovering reports whether a live change is replayed after an unclean
// stop (Config.RecoverUntil): Weaviate may hold a newer version of its row
// than the state records.
func (p *Pipeline) recovering(it item) bool {
	return it.backfill == nil && it.lsn.LSN <= p.cfg.RecoverUntil
}

// apply runs the removals, after the batch's writes: a key written in the
// batch is only ever removed from other tenants than its own.
func (r *tenantKeys) apply(ctx context.Context, sink Sink, t *Table) error {
	for _, tenant := range sortedKeys(r.from) {
		if err := sink.Delete(ctx, t.Collection, tenant, t.SourceTable, r.from[tenant]); err != nil {
			return err
		}
	}
	if len(r.elsewhere) == 0 {
		return nil
	}
	tenants, err := sink.Tenants(ctx, t.Collection)
	if err != nil {
		return fmt.Errorf("list tenants of %s: %w", t.Collection, err)
	}
	for _, own := range sortedKeys(r.elsewhere) {
		for _, other := range tenants {
			if other == own {
				continue
			}
			if err := sink.Delete(ctx, t.Collection, other, t.SourceTable, r.elsewhere[own]); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
