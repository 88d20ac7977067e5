package sink

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	pb "github.com/weaviate/weaviate/grpc/generated/protocol/v1"
)

// Reads for comparing a collection with its table (verify): every object of
// some rows, found by key over gRPC; and every object of a collection,
// page by page, in bounded memory.

// KeyObjects returns every object of the given rows of sourceTable in one
// tenant of collection, or in every tenant for "" (also a collection
// without tenants), whatever their chunk index or id: surplus chunks and
// duplicates included. With withVector each object carries its vector. A
// collection that does not exist has none.
func (w *Weaviate) KeyObjects(ctx context.Context, collection, tenant, sourceTable string, keys []string, withVector bool) ([]StoredObject, error) {
	types, err := w.propertyTypes(ctx, collection)
	if errors.Is(err, errNoCollection) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []StoredObject
	err = w.forTenants(ctx, collection, tenant, func(tenant string) error {
		objs, err := w.tenantKeyObjects(ctx, collection, tenant, sourceTable, keys, withVector, types)
		out = append(out, objs...)
		return err
	})
	return out, err
}

func (w *Weaviate) tenantKeyObjects(ctx context.Context, collection, tenant, sourceTable string, keys []string, withVector bool, types map[string]string) ([]StoredObject, error) {
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	limit := w.capLimit(defaultProbeLimit)
	var out []StoredObject
	for offset := 0; ; {
		req := &pb.SearchRequest{
			Collection:       collection,
			Tenant:           tenant,
			Filters:          keysFilter(sourceTable, keys),
			Limit:            uint32(limit),
			Offset:           uint32(offset),
			ConsistencyLevel: w.consistency,
			Properties:       &pb.PropertiesRequest{ReturnAllNonrefProperties: true},
			Metadata:         &pb.MetadataRequest{Uuid: true, Vector: withVector},
			Uses_127Api:      true,
		}
		var reply *pb.SearchReply
		err := w.retryRead(ctx, func(ctx context.Context) (err error) {
			reply, err = w.rpc.client.Search(ctx, req)
			return err
		})
		if err != nil {
			err = w.queryErr(ctx, collection, err)
			if errors.Is(err, errNoCollection) {
				return nil, nil
			}
			if errors.Is(err, errQueryMaximum) && limit > 1 {
				limit = w.lowerLimit(limit)
				continue
			}
			return nil, fmt.Errorf("sink: read %d rows of %s from %s: %w", len(keys), sourceTable, collection, err)
		}
		for _, r := range reply.GetResults() {
			o, err := storedFromResult(r, types)
			if err != nil {
				return nil, fmt.Errorf("sink: read %s: %w", collection, err)
			}
			// The field-tokenized key filter also matches whitespace
			// variants of a key: keep exact keys only.
			if want[o.SourceKey] && o.SourceTable == sourceTable {
				o.Tenant = tenant
				out = append(out, o)
			}
		}
		if len(reply.GetResults()) < limit {
			return out, nil
		}
		offset += limit
	}
}

// EachObjectPage calls fn with every object of collection (every tenant of
// a multi-tenant one), a cursor page at a time, without vectors. Memory is
// bounded by the page size, whatever the collection's size.
func (w *Weaviate) EachObjectPage(ctx context.Context, collection string, fn func(page []StoredObject) error) error {
	return w.eachPage(ctx, collection, false, fn)
}

// eachPage walks every object of collection with the cursor API, tenant by
// tenant (in name order), and calls fn with each page. A page may not
// exceed the server's QUERY_MAXIMUM_RESULTS: a refused size is lowered. A
// collection that does not exist has no pages.
func (w *Weaviate) eachPage(ctx context.Context, collection string, withVector bool, fn func(page []StoredObject) error) error {
	types, err := w.propertyTypes(ctx, collection)
	if errors.Is(err, errNoCollection) {
		return nil
	}
	if err != nil {
		return err
	}
	return w.forTenants(ctx, collection, "", func(tenant string) error {
		after := ""
		size := w.capLimit(listPageSize)
		for {
			raw, last, err := w.listPage(ctx, collection, tenant, after, size, withVector)
			if err != nil {
				if size > 1 && strings.Contains(err.Error(), "query maximum results exceeded") {
					size = w.lowerLimit(size)
					continue
				}
				return fmt.Errorf("sink: list %s: %w", collection, err)
			}
			page := make([]StoredObject, 0, len(raw))
			for i := range raw {
				o, err := raw[i].stored(types)
				if err != nil {
					return fmt.Errorf("sink: list %s: object %s: %w", collection, raw[i].ID, err)
				}
				o.Tenant = tenant
				page = append(page, o)
			}
			if err := fn(page); err != nil {
				return err
			}
			if len(raw) < size {
				return nil
			}
			after = last
		}
	})
}

// DeleteObjectsAt removes objects by id from one tenant ("" without
// tenants), but only those still at source_lsn: an object the connector
// rewrote since it was read (a newer source_lsn) stays. This is how a
// repair deletes while a connector streams into the same collection.
func (w *Weaviate) DeleteObjectsAt(ctx context.Context, collection, tenant, sourceLSN string, ids []string) error {
	for start := 0; start < len(ids); start += idChunk {
		end := min(start+idChunk, len(ids))
		where := allOf(idsFilter(ids[start:end]), &pb.Filters{
			Operator:  pb.Filters_OPERATOR_EQUAL,
			Target:    propertyTarget(PropSourceLSN),
			TestValue: &pb.Filters_ValueText{ValueText: sourceLSN},
		})
		if err := w.deleteWhere(ctx, collection, tenant, where); err != nil {
			return fmt.Errorf("sink: delete %d objects at %s from %s: %w", end-start, sourceLSN, collection, err)
		}
	}
	return nil
}

// propertyTypes are the collection's property data types, by name.
func (w *Weaviate) propertyTypes(ctx context.Context, collection string) (map[string]string, error) {
	class, err := w.getClass(ctx, collection)
	if err != nil {
		return nil, err
	}
	types := make(map[string]string, len(class.Properties))
	for _, p := range class.Properties {
		types[p.Name] = strings.Join(p.DataType, ",")
	}
	return types, nil
}

// storedFromResult turns a gRPC search result into a StoredObject, through
// the JSON forms the REST reads decode to (so both type alike).
func storedFromResult(r *pb.SearchResult, types map[string]string) (StoredObject, error) {
	raw := rawObject{ID: r.GetMetadata().GetId(), Properties: map[string]any{}}
	if raw.ID == "" {
		return StoredObject{}, errors.New("search answered an object without id")
	}
	for name, v := range r.GetProperties().GetNonRefProps().GetFields() {
		raw.Properties[name] = jsonForm(v)
	}
	raw.vector = vectorOf(r.GetMetadata())
	o, err := raw.stored(types)
	if err != nil {
		return o, fmt.Errorf("object %s: %w", raw.ID, err)
	}
	return o, nil
}

// jsonForm is a gRPC property value as encoding/json (UseNumber) decodes
// the same value from REST.
func jsonForm(v *pb.Value) any {
	switch k := v.GetKind().(type) {
	case *pb.Value_TextValue:
		return k.TextValue
	case *pb.Value_DateValue:
		return k.DateValue
	case *pb.Value_UuidValue:
		return k.UuidValue
	case *pb.Value_IntValue:
		return json.Number(strconv.FormatInt(k.IntValue, 10))
	case *pb.Value_NumberValue:
		return json.Number(strconv.FormatFloat(k.NumberValue, 'g', -1, 64))
	case *pb.Value_BoolValue:
		return k.BoolValue
	case *pb.Value_ListValue:
		return listForm(k.ListValue)
	default:
		return nil
	}
}

func listForm(l *pb.ListValue) []any {
	var out []any
	switch k := l.GetKind().(type) {
	case *pb.ListValue_TextValues:
		for _, s := range k.TextValues.GetValues() {
			out = append(out, s)
		}
	case *pb.ListValue_DateValues:
		for _, s := range k.DateValues.GetValues() {
			out = append(out, s)
		}
	case *pb.ListValue_UuidValues:
		for _, s := range k.UuidValues.GetValues() {
			out = append(out, s)
		}
	case *pb.ListValue_BoolValues:
		for _, b := range k.BoolValues.GetValues() {
			out = append(out, b)
		}
	case *pb.ListValue_IntValues:
		b := k.IntValues.GetValues()
		for i := 0; i+8 <= len(b); i += 8 {
			out = append(out, json.Number(strconv.FormatInt(int64(binary.LittleEndian.Uint64(b[i:])), 10)))
		}
	case *pb.ListValue_NumberValues:
		b := k.NumberValues.GetValues()
		for i := 0; i+8 <= len(b); i += 8 {
			f := math.Float64frombits(binary.LittleEndian.Uint64(b[i:]))
			out = append(out, json.Number(strconv.FormatFloat(f, 'g', -1, 64)))
		}
	}
	if out == nil {
		out = []any{}
	}
	return out
}

// vectorOf decodes the default vector of a search result (float32, little
// endian), from vector_bytes or the first of vectors.
func vectorOf(m *pb.MetadataResult) []float32 {
	b := m.GetVectorBytes()
	if len(b) == 0 {
		for _, v := range m.GetVectors() {
			if len(v.GetVectorBytes()) > 0 {
				b = v.GetVectorBytes()
				break
			}
		}
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}
