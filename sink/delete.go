package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	pb "github.com/weaviate/weaviate/grpc/generated/protocol/v1"
)

// deleteChunk is how many keys one filter lists.
const deleteChunk = 1000

// idChunk is how many object IDs one batch delete filter lists.
const idChunk = 5000

// defaultProbeLimit is how many matching objects Delete reads per query;
// Weaviate caps it at QUERY_MAXIMUM_RESULTS (10,000 by default).
const defaultProbeLimit = 10000

// maxDeleteRounds bounds the repetitions of one batch delete; each round
// removes up to Weaviate's QUERY_MAXIMUM_RESULTS objects.
const maxDeleteRounds = 1 << 20

// Delete removes every object of the given rows (all their chunks), and no
// object of any other row, from tenant, or from every tenant when tenant is
// "" (a collection without tenants has the one, unnamed).
//
// source_key uses field tokenization, so a filter for key "1" never matches
// "11" or ["a","1"]. Field tokenization does trim surrounding whitespace,
// though: a filter for "a" also matches " a" and "a ". So Delete first reads
// the matching objects' keys and IDs, then deletes exactly the objects whose
// key is one of keys, by ID. A collection that does not exist has nothing
// to delete.
func (w *Weaviate) Delete(ctx context.Context, collection, tenant, sourceTable string, keys []string) error {
	keys = unique(keys)
	err := w.forTenants(ctx, collection, tenant, func(tenant string) error {
		for start := 0; start < len(keys); start += deleteChunk {
			end := min(start+deleteChunk, len(keys))
			if err := w.deleteKeys(ctx, collection, tenant, sourceTable, keys[start:end]); err != nil {
				return fmt.Errorf("%d rows: %w", end-start, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sink: delete rows of %s from %s: %w", sourceTable, collection, err)
	}
	return nil
}

// deleteKeys deletes the objects of keys (at most deleteChunk of them).
func (w *Weaviate) deleteKeys(ctx context.Context, collection, tenant, sourceTable string, keys []string) error {
	return w.deleteMatchingKeys(ctx, collection, tenant, keysFilter(sourceTable, keys), keys)
}

// deleteMatchingKeys deletes the objects matching where whose source_key is
// exactly one of keys; where's field-tokenized key filter also matches
// whitespace variants, which are kept.
func (w *Weaviate) deleteMatchingKeys(ctx context.Context, collection, tenant string, where *pb.Filters, keys []string) error {
	want := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		want[k] = struct{}{}
	}
	limit := w.probeLimit
	if limit <= 0 {
		limit = defaultProbeLimit
	}
	limit = w.capLimit(limit)
	others := 0 // matching objects of other keys (whitespace variants)
	for round := 0; round < maxDeleteRounds; round++ {
		objs, err := w.matching(ctx, collection, tenant, where, limit, others)
		if err != nil {
			if errors.Is(err, errNoCollection) {
				return nil
			}
			if errors.Is(err, errQueryMaximum) && limit > 1 {
				if others == 0 {
					limit = w.lowerLimit(limit)
				} else {
					limit = max(1, limit/4) // limit+offset was too large
				}
				continue
			}
			return err
		}
		var ids []string
		for _, o := range objs {
			if _, ok := want[o.key]; ok {
				ids = append(ids, o.id)
			} else {
				others++
			}
		}
		if err := w.deleteIDs(ctx, collection, tenant, ids); err != nil {
			return err
		}
		// The results are in internal ID order, so the objects of other
		// keys seen so far come first in the next round: skip them.
		if len(objs) < limit {
			return nil
		}
	}
	return fmt.Errorf("objects still matching after %d rounds", maxDeleteRounds)
}

// DeleteTable removes every object of sourceTable from collection, in every
// tenant.
func (w *Weaviate) DeleteTable(ctx context.Context, collection, sourceTable string) error {
	err := w.forTenants(ctx, collection, "", func(tenant string) error {
		return w.deleteWhere(ctx, collection, tenant, tableFilter(sourceTable))
	})
	if err != nil {
		return fmt.Errorf("sink: delete table %s from %s: %w", sourceTable, collection, err)
	}
	return nil
}

// deleteIDs removes the objects with the given IDs from a tenant.
func (w *Weaviate) deleteIDs(ctx context.Context, collection, tenant string, ids []string) error {
	for start := 0; start < len(ids); start += idChunk {
		end := min(start+idChunk, len(ids))
		if err := w.deleteWhere(ctx, collection, tenant, idsFilter(ids[start:end])); err != nil {
			return fmt.Errorf("delete %d objects by ID from %s: %w", end-start, collection, err)
		}
	}
	return nil
}

// deleteWhere runs a batch delete until no object matches any more: one
// call deletes at most QUERY_MAXIMUM_RESULTS objects. Transient failures
// are retried a bounded number of times.
//
// It goes over gRPC, not REST, for what a replicated collection needs: a
// gRPC batch delete stamps each deletion with the coordinator's time, a
// REST one without deletionTimeUnixMilli leaves a tombstone without one.
// Weaviate's asynchronous replication then cannot tell that the deletion
// is newer than the copy a returning replica still holds, and copies the
// deleted object back onto every node.
func (w *Weaviate) deleteWhere(ctx context.Context, collection, tenant string, where *pb.Filters) error {
	req := &pb.BatchDeleteRequest{Collection: collection, Filters: where, ConsistencyLevel: w.consistency}
	if tenant != "" {
		req.Tenant = &tenant
	}
	failures := 0
	for round := 0; round < maxDeleteRounds; round++ {
		callCtx, cancel := w.rpc.call(ctx)
		reply, err := w.rpc.client.BatchDelete(callCtx, req)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A batch delete on a missing collection is an error: nothing
			// to delete then.
			if _, gerr := w.getClass(ctx, collection); errors.Is(gerr, errNoCollection) {
				return nil
			}
			failures++
			if !transientRequest(err) || failures >= w.attempts {
				return err
			}
			if err := sleep(ctx, w.backoffFor(failures)); err != nil {
				return err
			}
			continue
		}
		if reply.GetFailed() > 0 {
			failures++
			req.Verbose = true // the next answer names the failed objects
			if failures >= w.attempts {
				return fmt.Errorf("weaviate failed to delete %d of %d matching objects: %s", reply.GetFailed(), reply.GetMatches(), deleteFailures(reply))
			}
			if err := sleep(ctx, w.backoffFor(failures)); err != nil {
				return err
			}
			continue
		}
		// Matches counts every matching object, Successful those this call
		// deleted (at most QUERY_MAXIMUM_RESULTS).
		if reply.GetSuccessful() >= reply.GetMatches() {
			return nil
		}
	}
	return fmt.Errorf("batch delete still matching after %d rounds", maxDeleteRounds)
}

// deleteFailures names up to three failed objects of a verbose reply.
func deleteFailures(r *pb.BatchDeleteReply) string {
	var msgs []string
	for _, o := range r.GetObjects() {
		if !o.GetSuccessful() && o.GetError() != "" {
			id, _ := uuid.FromBytes(o.GetUuid())
			msgs = append(msgs, fmt.Sprintf("%s: %s", id, o.GetError()))
		}
		if len(msgs) >= 3 {
			break
		}
	}
	if len(msgs) == 0 {
		return "no message"
	}
	return strings.Join(msgs, "; ")
}

func unique(keys []string) []string {
	if len(keys) < 2 {
		return keys
	}
	seen := make(map[string]struct{}, len(keys))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, k)
	}
	return out
}
