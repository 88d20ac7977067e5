// Package migrations creates and upgrades the connector's own tables in the
// state schema (postgres.state_schema).
//
// Migrations are the files sql/NNNN_name.sql, applied in version order, each
// in its own transaction, and recorded in <schema>.schema_migrations. A file
// names the schema as {{schema}}, which is replaced by the quoted schema
// name. Applied files must never change: add a new version instead.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

//go:embed sql/*.sql
var files embed.FS

// schemaPlaceholder marks where a migration names the state schema.
const schemaPlaceholder = "{{schema}}"

var fileName = regexp.MustCompile(`^(\d+)_([a-z0-9_]+)\.sql$`)

// Migration is one versioned SQL file.
type Migration struct {
	Version int
	Name    string
	sql     string
}

// SQL is the migration's text for schema, safely quoted.
func (m Migration) SQL(schema string) string {
	return strings.ReplaceAll(m.sql, schemaPlaceholder, connector.QuoteIdent(schema))
}

// All returns the embedded migrations in version order.
func All() ([]Migration, error) {
	return load(files)
}

func load(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "sql/*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	seen := map[int]string{}
	for _, name := range names {
		base := path.Base(name)
		m := fileName.FindStringSubmatch(base)
		if m == nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", base)
		}
		version, err := strconv.Atoi(m[1])
		if err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: bad version", base)
		}
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, base, version)
		}
		seen[version] = base
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", base, err)
		}
		out = append(out, Migration{Version: version, Name: m[2], sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}
