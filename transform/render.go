package transform

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"

	"github.com/jackc/pglogrepl"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

// builtinProperties are the properties every object carries (contract §3);
// a metadata column cannot use one of these names.
var builtinProperties = []string{
	"source_table", "source_key", "chunk_index", "chunk_count",
	"text", "content_hash", "source_lsn",
}

// reservedProperties are names Weaviate itself refuses for properties.
var reservedProperties = []string{"id", "_id", "_additional", "meta"}

// Renderer turns rows of one table into Documents: it renders the table's
// template over the row and copies its metadata columns. It is immutable and
// safe for concurrent use.
type Renderer struct {
	table      string // TableInfo.Name.String()
	collection string
	modelID    string
	tmpl       *template.Template

	types    map[string]colType // every column of the table
	order    []string           // columns in table order
	used     []string           // columns the template reads, sorted
	dynamic  bool               // the template may read any column
	metadata []metadataColumn
	tenant   string // column naming the row's tenant (tenant.go); "" for none
}

type metadataColumn struct {
	name string
	typ  colType
}

// NewRenderer validates a table mapping and prepares its template.
//
// It fails, naming the problem, when the template does not parse, reads a
// column the table does not have, or calls an undefined template; or when a
// metadata column is not a column of the table, is listed twice, or its
// name cannot be a Weaviate property (see ValidatePropertyName).
//
// modelID is the embedding model id, part of every document's content hash.
func NewRenderer(info connector.TableInfo, collection, tmplText string, metadata []string, modelID string) (*Renderer, error) {
	table := info.Name.String()
	r := &Renderer{
		table:      table,
		collection: collection,
		modelID:    modelID,
		types:      make(map[string]colType, len(info.Columns)),
	}
	for _, c := range info.Columns {
		r.types[c.Name] = columnType(c)
		r.order = append(r.order, c.Name)
	}

	tmpl, err := parseTemplate(table, tmplText)
	if err != nil {
		return nil, fmt.Errorf("template for %s: %w", table, err)
	}
	r.tmpl = tmpl
	refs := analyzeTemplate(tmpl)
	if len(refs.undefined) > 0 {
		return nil, fmt.Errorf("template for %s calls undefined template %q", table, refs.undefined[0])
	}
	var missing []string
	for name := range refs.columns {
		if _, ok := r.types[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		quoted := make([]string, len(missing))
		for i, m := range missing {
			quoted[i] = fmt.Sprintf("%q", m)
		}
		if len(missing) == 1 {
			return nil, fmt.Errorf("template references column %s, which is not a column of %s", quoted[0], table)
		}
		return nil, fmt.Errorf("template references columns %s, which are not columns of %s", strings.Join(quoted, ", "), table)
	}
	r.dynamic = refs.dynamic
	r.used = slices.Sorted(maps.Keys(refs.columns))

	seen := map[string]bool{}
	for _, name := range metadata {
		typ, ok := r.types[name]
		if !ok {
			return nil, fmt.Errorf("metadata column %q is not a column of %s", name, table)
		}
		if seen[name] {
			return nil, fmt.Errorf("metadata column %q is listed twice", name)
		}
		seen[name] = true
		if err := ValidatePropertyName(name); err != nil {
			return nil, fmt.Errorf("metadata column %q of %s: %w", name, table, err)
		}
		r.metadata = append(r.metadata, metadataColumn{name: name, typ: typ})
	}
	return r, nil
}

// ValidatePropertyName reports whether a metadata column's name can be used
// as its Weaviate property name unchanged: Weaviate accepts
// /[_A-Za-z][_0-9A-Za-z]*/ and lower-cases the first letter (so "Author"
// would silently become "author"), and the name must not clash with a
// built-in property or one Weaviate reserves.
func ValidatePropertyName(name string) error {
	if name == "" {
		return fmt.Errorf("empty property name")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return fmt.Errorf("%q cannot be a Weaviate property name (a letter or _, then letters, digits or _); leave the column out of metadata or expose it under another name through a view", name)
		}
	}
	if c := name[0]; c >= 'A' && c <= 'Z' {
		return fmt.Errorf("%q starts with an upper-case letter, which Weaviate lower-cases in property names; use a lower-case column name", name)
	}
	if slices.Contains(builtinProperties, name) {
		return fmt.Errorf("%q clashes with the built-in property of the same name", name)
	}
	if slices.Contains(reservedProperties, name) {
		return fmt.Errorf("%q is a property name Weaviate reserves", name)
	}
	return nil
}

// Table returns the source table in contract form (quote_ident parts).
func (r *Renderer) Table() string { return r.table }

// Collection returns the Weaviate collection the table maps to.
func (r *Renderer) Collection() string { return r.collection }

// ModelID returns the embedding model id the content hash includes.
func (r *Renderer) ModelID() string { return r.modelID }

// Columns reports which columns rendering reads: those the template names
// plus the metadata columns, sorted. all is true when the template uses the
// row in a way that may read any column (e.g. {{range .}} or
// {{index . $name}}); cols then still lists the statically known ones.
// Rendering needs the real value of every such column, so an unchanged
// TOASTed one must be fetched first.
func (r *Renderer) Columns() (cols []string, all bool) {
	set := make(map[string]bool, len(r.used)+len(r.metadata))
	for _, c := range r.used {
		set[c] = true
	}
	for _, m := range r.metadata {
		set[m.name] = true
	}
	if r.tenant != "" {
		set[r.tenant] = true
	}
	return slices.Sorted(maps.Keys(set)), r.dynamic
}

// MetadataFields returns the metadata columns, in configured order, with the
// property kind each lands as.
func (r *Renderer) MetadataFields() []MetadataField {
	out := make([]MetadataField, len(r.metadata))
	for i, m := range r.metadata {
		out[i] = MetadataField{Name: m.name, Kind: m.typ.kind()}
	}
	return out
}

// Render renders one row into a Document (without chunks).
//
// Template values follow the contract: text as itself; int2/int4/int8 as
// int64; float4/float8 as float64; bool as bool; timestamp and timestamptz
// as RFC 3339 strings in UTC with the fraction trimmed (time.RFC3339Nano; a
// timestamp without time zone is taken as UTC); date, numeric, json/jsonb
// and every other type (uuid, enum, inet, interval, money, ranges, ...) as
// PostgreSQL's text form; arrays of these as []any of the element values
// (multi-dimensional arrays flattened; NULL elements ""), so {{range}}
// works. NULL, and a column absent from row, render as "". The rendered text
// is made valid UTF-8 (invalid sequences become U+FFFD) without NUL bytes.
//
// Metadata values have the Go form of their Kind: int64, float64, bool,
// RFC 3339 string (a date is midnight UTC), string, or []int64, []float64,
// []bool, []string. A NULL column, a NaN or infinite number and a date
// RFC 3339 cannot hold leave the property out; NULL or unconvertible array
// elements are skipped.
func (r *Renderer) Render(row connector.Row, key connector.Key, lsn pglogrepl.LSN) (*Document, error) {
	if err := r.checkColumns(row); err != nil {
		return nil, fmt.Errorf("render %s key %s: %w", r.table, key.String(), err)
	}
	data := r.data(row)
	var b strings.Builder
	if err := r.tmpl.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render %s key %s: %w", r.table, key.String(), err)
	}
	text := sanitize(b.String())
	tenant, err := r.TenantOf(row)
	if err != nil {
		return nil, fmt.Errorf("render %s key %s: %w", r.table, key.String(), err)
	}

	md := make(map[string]any, len(r.metadata))
	for _, m := range r.metadata {
		v, ok := row[m.name]
		if !ok {
			continue
		}
		if val, ok := metadataValue(m.typ, v); ok {
			md[m.name] = val
		}
	}
	return &Document{
		Collection:  r.collection,
		SourceTable: r.table,
		SourceKey:   key.String(),
		Text:        text,
		Metadata:    md,
		ContentHash: ContentHash(text, md, r.modelID),
		LSN:         lsn,
		Tenant:      tenant,
	}, nil
}

// ErrColumnMissing is wrapped by Render's error for a row that lacks a
// column the mapping reads.
var ErrColumnMissing = errors.New("column missing from the row")

// checkColumns refuses a row without a column the template (when it names
// its columns) or the metadata reads: the column was dropped or renamed
// while streaming, and rendering it as "" would index a blanked document.
func (r *Renderer) checkColumns(row connector.Row) error {
	missing := func(name string) error {
		return fmt.Errorf("%w: %q was dropped or renamed while streaming; update the mapping's template or metadata to the table's columns and restart, then `cdc-indexer deadletters retry`", ErrColumnMissing, name)
	}
	if !r.dynamic {
		for _, name := range r.used {
			if _, ok := row[name]; !ok {
				return missing(name)
			}
		}
	}
	for _, m := range r.metadata {
		if _, ok := row[m.name]; !ok {
			return missing(m.name)
		}
	}
	return nil
}

// data builds the template's map: the columns it reads (all of them for a
// dynamic template), each converted, "" when NULL or absent.
func (r *Renderer) data(row connector.Row) map[string]any {
	if !r.dynamic {
		data := make(map[string]any, len(r.used))
		for _, name := range r.used {
			data[name] = r.value(name, row)
		}
		return data
	}
	data := make(map[string]any, len(r.order)+len(row))
	for _, name := range r.order {
		data[name] = r.value(name, row)
	}
	for name, v := range row {
		if _, ok := data[name]; !ok {
			// A column added since the table was described.
			data[name] = templateValue(oidType(v.OID), v)
		}
	}
	return data
}

func (r *Renderer) value(name string, row connector.Row) any {
	v, ok := row[name]
	if !ok {
		return ""
	}
	typ, ok := r.types[name]
	if !ok {
		typ = oidType(v.OID)
	}
	return templateValue(typ, v)
}
