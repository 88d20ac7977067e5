package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"

	pb "github.com/weaviate/weaviate/grpc/generated/protocol/v1"
	"google.golang.org/grpc/status"
)

// The sink reads Weaviate only over gRPC (Search, Aggregate) and REST,
// never GraphQL: Weaviate deprecated GraphQL and new Weaviate Cloud
// clusters run without it.

// errQueryMaximum is a query whose limit and offset exceed the server's
// QUERY_MAXIMUM_RESULTS.
var errQueryMaximum = errors.New("query maximum results exceeded")

func propertyTarget(name string) *pb.FilterTarget {
	return &pb.FilterTarget{Target: &pb.FilterTarget_Property{Property: name}}
}

// tableFilter is the filter source_table == table.
func tableFilter(table string) *pb.Filters {
	return &pb.Filters{
		Operator:  pb.Filters_OPERATOR_EQUAL,
		Target:    propertyTarget(PropSourceTable),
		TestValue: &pb.Filters_ValueText{ValueText: table},
	}
}

// keysFilter is source_table == table AND source_key ContainsAny keys.
func keysFilter(table string, keys []string) *pb.Filters {
	return allOf(tableFilter(table), &pb.Filters{
		Operator:  pb.Filters_OPERATOR_CONTAINS_ANY,
		Target:    propertyTarget(PropSourceKey),
		TestValue: &pb.Filters_ValueTextArray{ValueTextArray: &pb.TextArray{Values: keys}},
	})
}

// chunksFromFilter is chunk_index >= from.
func chunksFromFilter(from int) *pb.Filters {
	return &pb.Filters{
		Operator:  pb.Filters_OPERATOR_GREATER_THAN_EQUAL,
		Target:    propertyTarget(PropChunkIndex),
		TestValue: &pb.Filters_ValueInt{ValueInt: int64(from)},
	}
}

// idsFilter is id ContainsAny ids.
func idsFilter(ids []string) *pb.Filters {
	return &pb.Filters{
		Operator:  pb.Filters_OPERATOR_CONTAINS_ANY,
		Target:    propertyTarget("_id"),
		TestValue: &pb.Filters_ValueTextArray{ValueTextArray: &pb.TextArray{Values: ids}},
	}
}

func allOf(fs ...*pb.Filters) *pb.Filters {
	return &pb.Filters{Operator: pb.Filters_OPERATOR_AND, Filters: fs}
}

// queryErr turns a failed search or aggregate into the sink's errors: a
// missing collection is errNoCollection, a page past the server's
// QUERY_MAXIMUM_RESULTS is errQueryMaximum.
func (w *Weaviate) queryErr(ctx context.Context, collection string, err error) error {
	if strings.Contains(status.Convert(err).Message(), "query maximum results exceeded") {
		return fmt.Errorf("%w: %s", errQueryMaximum, status.Convert(err).Message())
	}
	if _, gerr := w.getClass(ctx, collection); errors.Is(gerr, errNoCollection) {
		return gerr
	}
	return err
}

// retryRead runs a read, retrying transient failures a bounded number of
// times.
func (w *Weaviate) retryRead(ctx context.Context, read func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		callCtx, cancel := w.rpc.call(ctx)
		err := read(callCtx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !transientRequest(err) || attempt >= w.attempts {
			return err
		}
		if err := sleep(ctx, w.backoffFor(attempt)); err != nil {
			return err
		}
	}
}

type keyID struct{ key, id string }

// matching reads up to limit objects matching where, after skipping offset,
// with their source_key and ID, in Weaviate's internal ID order.
func (w *Weaviate) matching(ctx context.Context, collection, tenant string, where *pb.Filters, limit, offset int) ([]keyID, error) {
	req := &pb.SearchRequest{
		Collection:       collection,
		Tenant:           tenant,
		Filters:          where,
		Limit:            uint32(limit),
		Offset:           uint32(offset),
		ConsistencyLevel: w.consistency,
		Properties:       &pb.PropertiesRequest{NonRefProperties: []string{PropSourceKey}},
		Metadata:         &pb.MetadataRequest{Uuid: true},
		Uses_127Api:      true,
	}
	var reply *pb.SearchReply
	err := w.retryRead(ctx, func(ctx context.Context) (err error) {
		reply, err = w.rpc.client.Search(ctx, req)
		return err
	})
	if err != nil {
		return nil, w.queryErr(ctx, collection, err)
	}
	out := make([]keyID, 0, len(reply.GetResults()))
	for _, r := range reply.GetResults() {
		id := r.GetMetadata().GetId()
		if id == "" {
			return nil, fmt.Errorf("search of %s answered an object without id", collection)
		}
		key := r.GetProperties().GetNonRefProps().GetFields()[PropSourceKey].GetTextValue()
		out = append(out, keyID{key: key, id: id})
	}
	return out, nil
}

// Count is the number of objects of sourceTable in collection, or of all
// its objects when sourceTable is empty, over every tenant (0 when the
// collection does not exist).
func (w *Weaviate) Count(ctx context.Context, collection, sourceTable string) (int, error) {
	total := 0
	err := w.forTenants(ctx, collection, "", func(tenant string) error {
		req := &pb.AggregateRequest{Collection: collection, Tenant: tenant, ObjectsCount: true}
		if sourceTable != "" {
			req.Filters = tableFilter(sourceTable)
		}
		var reply *pb.AggregateReply
		err := w.retryRead(ctx, func(ctx context.Context) (err error) {
			reply, err = w.rpc.client.Aggregate(ctx, req)
			return err
		})
		if err != nil {
			if err = w.queryErr(ctx, collection, err); errors.Is(err, errNoCollection) {
				return nil
			}
			return err
		}
		total += int(reply.GetSingleResult().GetObjectsCount())
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sink: count %s in %s: %w", sourceTable, collection, err)
	}
	return total, nil
}
