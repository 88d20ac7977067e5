package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// StoredObject is one object as Weaviate holds it.
type StoredObject struct {
	ID          string
	SourceTable string
	SourceKey   string
	ChunkIndex  int
	ChunkCount  int
	Text        string
	ContentHash string
	SourceLSN   string
	// Metadata holds every other property, keyed by property name, typed by
	// the collection's schema: int → int64, number → float64, boolean →
	// bool, text and date → string, arrays → []int64, []float64, []bool,
	// []string. A property without a value is absent.
	Metadata map[string]any
	Vector   []float32
	Tenant   string // "" in a collection without tenants
}

// listPageSize is the cursor page size of Objects.
const listPageSize = 1000

// Objects lists every object of sourceTable in collection with its vector,
// walking the whole collection (every tenant of a multi-tenant one, in name
// order) with Weaviate's cursor API, so it is not capped by
// QUERY_MAXIMUM_RESULTS. Order is by tenant, then object ID. A collection
// that does not exist has no objects.
func (w *Weaviate) Objects(ctx context.Context, collection, sourceTable string) ([]StoredObject, error) {
	var out []StoredObject
	err := w.eachPage(ctx, collection, true, func(page []StoredObject) error {
		for _, o := range page {
			if o.SourceTable == sourceTable {
				out = append(out, o)
			}
		}
		return nil
	})
	return out, err
}

type rawObject struct {
	ID         string                     `json:"id"`
	Properties map[string]any             `json:"properties"`
	Vector     []float32                  `json:"vector"`
	Vectors    map[string]json.RawMessage `json:"vectors"`
	vector     []float32
}

// listPage reads one cursor page; last is the ID to continue after.
func (w *Weaviate) listPage(ctx context.Context, collection, tenant, after string, limit int, withVector bool) ([]rawObject, string, error) {
	q := url.Values{}
	q.Set("class", collection)
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	q.Set("limit", strconv.Itoa(limit))
	if after != "" {
		q.Set("after", after)
	}
	if withVector {
		q.Set("include", "vector")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.baseURL+"/v1/objects?"+q.Encode(), nil)
	if err != nil {
		return nil, "", err
	}
	w.setHeaders(req)
	resp, err := w.http.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(string(body))
		if resp.StatusCode == http.StatusNotFound || (resp.StatusCode == http.StatusUnprocessableEntity && strings.Contains(strings.ToLower(msg), "class")) {
			if _, gerr := w.getClass(ctx, collection); errors.Is(gerr, errNoCollection) {
				return nil, "", gerr
			}
		}
		return nil, "", fmt.Errorf("GET /v1/objects answered %s: %s", resp.Status, msg)
	}
	var body struct {
		Objects []rawObject `json:"objects"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, "", fmt.Errorf("decode /v1/objects: %w", err)
	}
	for i := range body.Objects {
		o := &body.Objects[i]
		o.vector = o.Vector
		if len(o.vector) == 0 && len(o.Vectors) > 0 {
			for _, raw := range o.Vectors {
				var v []float32
				if json.Unmarshal(raw, &v) == nil && len(v) > 0 {
					o.vector = v
					break
				}
			}
		}
	}
	last := ""
	if n := len(body.Objects); n > 0 {
		last = body.Objects[n-1].ID
	}
	return body.Objects, last, nil
}

func (r *rawObject) stored(types map[string]string) (StoredObject, error) {
	o := StoredObject{ID: r.ID, Vector: r.vector}
	for name, v := range r.Properties {
		var err error
		switch name {
		case PropSourceTable:
			o.SourceTable, _ = v.(string)
		case PropSourceKey:
			o.SourceKey, _ = v.(string)
		case PropText:
			o.Text, _ = v.(string)
		case PropContentHash:
			o.ContentHash, _ = v.(string)
		case PropSourceLSN:
			o.SourceLSN, _ = v.(string)
		case PropChunkIndex:
			o.ChunkIndex, err = jsonInt(v)
		case PropChunkCount:
			o.ChunkCount, err = jsonInt(v)
		default:
			if v == nil {
				continue
			}
			if o.Metadata == nil {
				o.Metadata = map[string]any{}
			}
			o.Metadata[name], err = typed(v, types[name])
		}
		if err != nil {
			return o, fmt.Errorf("property %s: %w", name, err)
		}
	}
	return o, nil
}

func jsonInt(v any) (int, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("not a number: %v", v)
	}
	i, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64()
		if ferr != nil {
			return 0, err
		}
		i = int64(f)
	}
	return int(i), nil
}

// typed converts a JSON-decoded property value to the Go form of dataType.
func typed(v any, dataType string) (any, error) {
	scalar := func(x any, dt string) (any, error) {
		switch dt {
		case "int":
			n, ok := x.(json.Number)
			if !ok {
				return nil, fmt.Errorf("int property holds %T", x)
			}
			i, err := n.Int64()
			if err != nil {
				f, ferr := n.Float64()
				if ferr != nil {
					return nil, err
				}
				return int64(f), nil
			}
			return i, nil
		case "number":
			n, ok := x.(json.Number)
			if !ok {
				return nil, fmt.Errorf("number property holds %T", x)
			}
			return n.Float64()
		case "boolean":
			b, ok := x.(bool)
			if !ok {
				return nil, fmt.Errorf("boolean property holds %T", x)
			}
			return b, nil
		default:
			if n, ok := x.(json.Number); ok {
				return n.String(), nil
			}
			return x, nil
		}
	}
	if !strings.HasSuffix(dataType, "[]") {
		return scalar(v, dataType)
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s property holds %T", dataType, v)
	}
	elem := strings.TrimSuffix(dataType, "[]")
	switch elem {
	case "int":
		out := make([]int64, len(arr))
		for i, x := range arr {
			e, err := scalar(x, elem)
			if err != nil {
				return nil, err
			}
			out[i] = e.(int64)
		}
		return out, nil
	case "number":
		out := make([]float64, len(arr))
		for i, x := range arr {
			e, err := scalar(x, elem)
			if err != nil {
				return nil, err
			}
			out[i] = e.(float64)
		}
		return out, nil
	case "boolean":
		out := make([]bool, len(arr))
		for i, x := range arr {
			e, err := scalar(x, elem)
			if err != nil {
				return nil, err
			}
			out[i] = e.(bool)
		}
		return out, nil
	default:
		out := make([]string, len(arr))
		for i, x := range arr {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("%s property holds %T element", dataType, x)
			}
			out[i] = s
		}
		return out, nil
	}
}
