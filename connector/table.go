package connector

import (
	"fmt"
	"strings"
)

// TableName is a schema-qualified table name, unquoted parts.
type TableName struct {
	Schema string
	Name   string
}

// String renders the name as PostgreSQL's quote_ident would, part by part:
// public.articles, "Odd Schema"."Mixed Case". It is the contract's source_table
// and is safe to splice into SQL.
func (t TableName) String() string {
	return QuoteIdent(t.Schema) + "." + QuoteIdent(t.Name)
}

// ParseTableName parses schema.table where either part may be double-quoted
// as in SQL ("Odd Schema"."Mixed Case"). Unquoted parts fold to lower case as
// PostgreSQL folds them. A name without a schema is in public.
func ParseTableName(s string) (TableName, error) {
	parts, err := splitIdents(s)
	if err != nil {
		return TableName{}, fmt.Errorf("table name %q: %w", s, err)
	}
	switch len(parts) {
	case 1:
		return TableName{Schema: "public", Name: parts[0]}, nil
	case 2:
		return TableName{Schema: parts[0], Name: parts[1]}, nil
	}
	return TableName{}, fmt.Errorf("table name %q: want schema.table", s)
}

func splitIdents(s string) ([]string, error) {
	var parts []string
	i := 0
	for {
		if i >= len(s) {
			return nil, fmt.Errorf("empty identifier")
		}
		var part strings.Builder
		if s[i] == '"' {
			i++
			closed := false
			for i < len(s) {
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						part.WriteByte('"')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				part.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, fmt.Errorf("unterminated quoted identifier")
			}
			if part.Len() == 0 {
				return nil, fmt.Errorf("empty quoted identifier")
			}
		} else {
			start := i
			for i < len(s) && s[i] != '.' {
				if s[i] == '"' || s[i] == ' ' {
					return nil, fmt.Errorf("unexpected %q in unquoted identifier; quote it as in SQL", s[i])
				}
				i++
			}
			if i == start {
				return nil, fmt.Errorf("empty identifier")
			}
			part.WriteString(strings.ToLower(s[start:i]))
		}
		parts = append(parts, part.String())
		if i == len(s) {
			return parts, nil
		}
		if s[i] != '.' {
			return nil, fmt.Errorf("unexpected %q after identifier", s[i])
		}
		i++
	}
}

// QuoteIdent quotes an identifier the way PostgreSQL's quote_ident does: only
// when it is not a plain identifier (a lower-case ASCII letter or underscore,
// then lower-case letters, digits and underscores; '$' and non-ASCII letters
// need quotes) or is a keyword other than an unreserved one.
func QuoteIdent(s string) string {
	if isPlainIdent(s) && !reservedKeywords[s] {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func isPlainIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case c >= '0' && c <= '9':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// reservedKeywords are the keywords quote_ident quotes (PostgreSQL 15: the
// reserved ones, plus those reserved or usable only as type/function names).
var reservedKeywords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`all analyse analyze and any array as asc asymmetric authorization
binary both case cast check collate collation column concurrently constraint create cross
current_catalog current_date current_role current_schema current_time current_timestamp
current_user default deferrable desc distinct do else end except false fetch for foreign
freeze from full grant group having ilike in initially inner intersect into is isnull join
lateral leading left like limit localtime localtimestamp natural not notnull null offset on
only or order outer overlaps placing primary references returning right select session_user
similar some symmetric table tablesample then to trailing true union unique user using
variadic verbose when where window with
between bigint bit boolean char character coalesce dec decimal exists extract float greatest
grouping inout int integer interval least national nchar none normalize nullif numeric out
overlay position precision real row setof smallint substring time timestamp treat trim values
varchar xmlattributes xmlconcat xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi
xmlroot xmlserialize xmltable`) {
		m[w] = true
	}
	return m
}()
