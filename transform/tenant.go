package transform

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

// tenantName is Weaviate's rule for tenant names.
var tenantName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ErrInvalidTenant is wrapped by Render's error for a row whose tenant
// column does not hold a valid Weaviate tenant name: such a row can never
// be indexed (a dead letter) until its value changes.
var ErrInvalidTenant = errors.New("not a valid Weaviate tenant name")

// WithTenant makes the renderer put each row's objects in the Weaviate
// tenant its column names (tables[].tenant). The column must exist and be
// known for every change the stream carries, deletes included: part of the
// primary key, or any column under REPLICA IDENTITY FULL.
func (r *Renderer) WithTenant(info connector.TableInfo, column string) error {
	if _, ok := info.Column(column); !ok {
		return fmt.Errorf("tenant column %q is not a column of %s", column, info.Name)
	}
	if !slices.Contains(info.Key, column) && info.ReplicaIdentity != 'f' {
		return fmt.Errorf("tenant column %q of %s is not in its primary key (%v) and the table's replica identity is not FULL, so a delete would not say which tenant the row was in: put the column in the primary key, or run ALTER TABLE %s REPLICA IDENTITY FULL",
			column, info.Name, info.Key, info.Name)
	}
	r.tenant = column
	return nil
}

// Tenant is the tenant column, "" when the collection has no tenants.
func (r *Renderer) Tenant() string { return r.tenant }

// TenantOf returns the tenant a row's objects belong in: the column's text
// form, which must be a valid tenant name.
func (r *Renderer) TenantOf(row connector.Row) (string, error) {
	if r.tenant == "" {
		return "", nil
	}
	v, ok := row[r.tenant]
	switch {
	case !ok:
		return "", fmt.Errorf("%w: tenant column %q was dropped or renamed while streaming; update tables[].tenant and restart", ErrColumnMissing, r.tenant)
	case v.Null:
		return "", fmt.Errorf("tenant column %q is NULL: %w", r.tenant, ErrInvalidTenant)
	case !tenantName.MatchString(v.Text):
		return "", fmt.Errorf("tenant column %q is %q: %w (1 to 64 of A-Z, a-z, 0-9, _ and -)", r.tenant, abbreviate(v.Text, 80), ErrInvalidTenant)
	}
	return v.Text, nil
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
