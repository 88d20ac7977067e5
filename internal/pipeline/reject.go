package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// embedIsolating chunks and embeds writes. When the provider rejects some
// inputs (embedding.InputErrors), it finds the documents they belong to by
// embedding halves of the batch, records those in failed and returns the
// others, embedded. Any other error is returned as it is.
func (p *Pipeline) embedIsolating(ctx context.Context, t *Table, writes []*transform.Document, writeAt []int, failed rowFailures) ([]*transform.Document, []int, error) {
	err := p.chunkAndEmbed(ctx, t, writes)
	if err == nil {
		return writes, writeAt, nil
	}
	if _, ok := embedding.AsInputErrors(err); !ok {
		return nil, nil, err
	}
	bad, ok := docsOfRejectedChunks(writes, err, p.encoding(t).Embedder != nil)
	if !ok {
		bad = map[int]error{}
		if len(writes) == 1 {
			bad[0] = err
		} else if err := p.bisectEmbed(ctx, t, writes, 0, bad); err != nil {
			return nil, nil, err
		}
	}
	keep, keepAt := writes[:0:0], writeAt[:0:0]
	for j, d := range writes {
		if e, ok := bad[j]; ok {
			failed[writeAt[j]] = fmt.Errorf("embed %s key %s: %w", d.SourceTable, d.SourceKey, e)
			continue
		}
		keep, keepAt = append(keep, d), append(keepAt, writeAt[j])
	}
	return keep, keepAt, nil
}

// docsOfRejectedChunks maps the rejected inputs of err (their indexes count
// the chunks of docs in order) to the documents they belong to, by index in
// docs. ok is false when that does not add up (an index out of range, or a
// document that is neither rejected nor fully embedded); the caller then
// finds the documents by bisection.
func docsOfRejectedChunks(docs []*transform.Document, err error, vectors bool) (map[int]error, bool) {
	ie, ok := embedding.AsInputErrors(err)
	if !ok || len(ie) == 0 {
		return nil, false
	}
	bad := map[int]error{}
	for _, in := range ie {
		offset, found := 0, false
		for j, d := range docs {
			if in.Index >= offset && in.Index < offset+len(d.Chunks) {
				if _, dup := bad[j]; !dup {
					bad[j] = in
				}
				found = true
				break
			}
			offset += len(d.Chunks)
		}
		if !found {
			return nil, false
		}
	}
	for j, d := range docs {
		if _, rejected := bad[j]; rejected || !vectors {
			continue
		}
		for _, c := range d.Chunks {
			if len(c.Vector) == 0 {
				return nil, false
			}
		}
	}
	return bad, true
}

// bisectEmbed embeds each half of docs (offset is docs' position in the
// batch) and descends into the halves the provider rejects an input of,
// down to single documents, which it records in bad.
func (p *Pipeline) bisectEmbed(ctx context.Context, t *Table, docs []*transform.Document, offset int, bad map[int]error) error {
	mid := len(docs) / 2
	for _, part := range [][2]int{{0, mid}, {mid, len(docs)}} {
		half := docs[part[0]:part[1]]
		if len(half) == 0 {
			continue
		}
		err := p.chunkAndEmbed(ctx, t, half)
		if err == nil {
			continue
		}
		if _, ok := embedding.AsInputErrors(err); !ok {
			return err
		}
		if len(half) == 1 {
			bad[offset+part[0]] = err
			continue
		}
		if err := p.bisectEmbed(ctx, t, half, offset+part[0], bad); err != nil {
			return err
		}
	}
	return nil
}

// RowRejections is how a Sink's Write error reports that it stored some
// documents and refused the objects of others (*sink.WriteError has it):
// the rows refused, each with the reason, and whether every refusal is
// permanent (else some may pass when retried).
type RowRejections interface {
	error
	EachRejectedRow(fn func(collection, sourceTable, sourceKey string, reason error))
	Permanent() bool
}

// rejectedWrites handles Weaviate's refusal of some objects: the rows they
// belong to go to failed and the documents Weaviate stored are returned.
// A rejection that looked temporary is isolated too when Weaviate stored
// other rows of the same write: Weaviate answers, and a row it keeps
// refusing alone must not hold up the rest forever (it is retried with its
// batch and dead-lettered after DeadLetterAttempts). When every row was
// refused for a reason that may pass, err is returned and the whole write
// is retried.
func rejectedWrites(err error, writes []*transform.Document, writeAt []int, failed rowFailures) ([]*transform.Document, []int, error) {
	var we RowRejections
	if !errors.As(err, &we) {
		return writes, writeAt, err
	}
	type rowKey struct{ collection, table, key string }
	rejected := map[rowKey]error{}
	we.EachRejectedRow(func(collection, sourceTable, sourceKey string, reason error) {
		rejected[rowKey{collection, sourceTable, sourceKey}] = reason
	})
	keep, keepAt := writes[:0:0], writeAt[:0:0]
	for j, d := range writes {
		if o, ok := rejected[rowKey{d.Collection, d.SourceTable, d.SourceKey}]; ok {
			failed[writeAt[j]] = permanent(o)
			continue
		}
		keep, keepAt = append(keep, d), append(keepAt, writeAt[j])
	}
	if len(keep) == len(writes) {
		return writes, writeAt, err // none of ours: cannot isolate
	}
	if len(keep) == 0 && !we.Permanent() {
		for _, at := range writeAt {
			delete(failed, at)
		}
		return writes, writeAt, err // Weaviate took nothing: wait for it
	}
	return keep, keepAt, nil
}
