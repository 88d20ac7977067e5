package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/weaviate/weaviate/entities/models"
)

// errQueryMaximum is a query whose limit and offset exceed the server's
// QUERY_MAXIMUM_RESULTS.
var errQueryMaximum = errors.New("query maximum results exceeded")

// gqlString quotes s as a GraphQL string literal. JSON string syntax is a
// subset of GraphQL's, so JSON encoding escapes every character correctly
// (Go's %q does not: it may produce \x and \U escapes).
func gqlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// tableFilter is the GraphQL where filter source_table == table.
func tableFilter(table string) string {
	return fmt.Sprintf(`{path:["%s"],operator:Equal,valueText:%s}`, PropSourceTable, gqlString(table))
}

// keysFilter is source_table == table AND source_key ContainsAny keys.
func keysFilter(table string, keys []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{operator:And,operands:[%s,{path:["%s"],operator:ContainsAny,valueText:[`, tableFilter(table), PropSourceKey)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(gqlString(k))
	}
	b.WriteString(`]}]}`)
	return b.String()
}

// graphQL runs a query and returns its data; a missing collection is
// errNoCollection.
func (w *Weaviate) graphQL(ctx context.Context, collection, query string) (map[string]any, error) {
	var resp *models.GraphQLResponse
	for attempt := 1; ; attempt++ {
		var err error
		resp, err = w.client.GraphQL().Raw().WithQuery(query).Do(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !transientRequest(err) || attempt >= w.attempts {
			return nil, err
		}
		if err := sleep(ctx, w.backoffFor(attempt)); err != nil {
			return nil, err
		}
	}
	if len(resp.Errors) > 0 {
		msg := resp.Errors[0].Message
		if strings.Contains(msg, "query maximum results exceeded") {
			return nil, fmt.Errorf("%w: %s", errQueryMaximum, msg)
		}
		if _, gerr := w.getClass(ctx, collection); errors.Is(gerr, errNoCollection) {
			return nil, gerr
		}
		return nil, fmt.Errorf("graphql: %s", msg)
	}
	data := make(map[string]any, len(resp.Data))
	for k, v := range resp.Data {
		data[k] = v
	}
	return data, nil
}

type keyID struct{ key, id string }

// matching reads up to limit objects matching where, after skipping offset,
// with their source_key and ID.
func (w *Weaviate) matching(ctx context.Context, collection, where string, limit, offset int) ([]keyID, error) {
	q := fmt.Sprintf(`{Get{%s(where:%s,limit:%d,offset:%d){%s _additional{id}}}}`, collection, where, limit, offset, PropSourceKey)
	data, err := w.graphQL(ctx, collection, q)
	if err != nil {
		return nil, err
	}
	get, _ := data["Get"].(map[string]any)
	rows, _ := get[collection].([]any)
	out := make([]keyID, 0, len(rows))
	for _, r := range rows {
		m, _ := r.(map[string]any)
		add, _ := m["_additional"].(map[string]any)
		id, _ := add["id"].(string)
		key, _ := m[PropSourceKey].(string)
		if id == "" {
			return nil, fmt.Errorf("graphql: object without id in %s", collection)
		}
		out = append(out, keyID{key: key, id: id})
	}
	return out, nil
}
