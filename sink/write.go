package sink

import (
	"context"
	"fmt"
	"sync"

	"github.com/weaviate/weaviate/entities/models"

	"github.com/cdc-indexer/cdc-indexer/transform"
)

// objRef ties a batched object back to its document and chunk.
type objRef struct {
	doc   int32 // index into the deduplicated documents
	chunk int32 // index into the document's Chunks
}

// batch is a run of objects sent together.
type batch struct {
	objs []*models.Object
	refs []objRef
}

// Write upserts every chunk of every document as one object under its
// deterministic ID: Replace for rows that had no objects before.
func (w *Weaviate) Write(ctx context.Context, docs []*transform.Document) error {
	return w.Replace(ctx, docs, nil)
}

// Replace upserts every chunk of every document as one object under its
// deterministic ID, then removes the objects of chunks past each document's
// new chunk count: previous[i] is how many chunks docs[i]'s row had before
// (0 when previous is nil), transform.UnknownChunkCount when that is not
// known (the row's objects are then looked up). The upserts go first so
// that a row never has no objects.
//
// Objects Weaviate rejects are returned as a *WriteError listing each
// rejected object; everything else is stored. A request that keeps failing
// (Weaviate unreachable) returns a wrapped error after bounded retries;
// Replace is idempotent, so the caller may simply call it again.
func (w *Weaviate) Replace(ctx context.Context, docs []*transform.Document, previous []int) error {
	if previous != nil && len(previous) != len(docs) {
		return fmt.Errorf("sink: %d previous chunk counts for %d documents", len(previous), len(docs))
	}
	docs, prev := dedupe(docs, previous)
	if len(docs) == 0 {
		return nil
	}

	var g idGen
	ptrs, refs := w.build(docs, &g)
	n := len(ptrs)

	// Sub-batches: at most batchSize objects and about maxBatchBytes each,
	// sent with up to w.parallel requests in flight.
	var spans [][2]int
	for start := 0; start < n; {
		end := w.cut(ptrs, start, n)
		spans = append(spans, [2]int{start, end})
		start = end
	}
	results := make([][]refErr, len(spans))
	if err := w.forEach(ctx, len(spans), func(ctx context.Context, i int) error {
		sp := spans[i]
		errs, err := w.send(ctx, batch{objs: ptrs[sp[0]:sp[1]], refs: refs[sp[0]:sp[1]]}, docs)
		results[i] = errs
		return err
	}); err != nil {
		return err
	}
	failed := make([]bool, len(docs))
	var rejected []*ObjectError
	for _, errs := range results {
		for _, e := range errs {
			failed[e.ref.doc] = true
			rejected = append(rejected, e.err)
		}
	}

	if err := w.removeExtraChunks(ctx, docs, prev, failed, &g); err != nil {
		return err
	}
	if len(rejected) > 0 {
		return &WriteError{Objects: rejected}
	}
	return nil
}

// build makes one object per chunk, in document order, with refs saying
// which document and chunk each object is.
func (w *Weaviate) build(docs []*transform.Document, g *idGen) ([]*models.Object, []objRef) {
	total := 0
	for _, d := range docs {
		total += len(d.Chunks)
	}
	store := make([]models.Object, total)
	ptrs := make([]*models.Object, total)
	refs := make([]objRef, total)

	n := 0
	var lastColl string
	var kinds map[string]kindInfo
	for di, d := range docs {
		if di == 0 || d.Collection != lastColl {
			lastColl = d.Collection
			kinds = w.kindsOf(d.Collection)
		}
		// Values shared by every chunk of the document, boxed once.
		var (
			table  any = d.SourceTable
			key    any = d.SourceKey
			hash   any = d.ContentHash
			lsn    any = d.LSN.String()
			count  any = int64(len(d.Chunks))
			nprops     = 7 + len(d.Metadata)
			meta       = make([]metaProp, 0, len(d.Metadata))
		)
		for col, v := range d.Metadata {
			val, ok := propValue(v, kinds[col])
			if !ok {
				continue
			}
			meta = append(meta, metaProp{name: PropertyName(col), value: val})
		}
		for ci := range d.Chunks {
			c := &d.Chunks[ci]
			props := make(map[string]any, nprops)
			props[PropSourceTable] = table
			props[PropSourceKey] = key
			props[PropChunkIndex] = int64(c.Index)
			props[PropChunkCount] = count
			props[PropText] = c.Text
			props[PropContentHash] = hash
			props[PropSourceLSN] = lsn
			for _, m := range meta {
				props[m.name] = m.value
			}
			o := &store[n]
			o.Class = d.Collection
			o.Tenant = d.Tenant
			o.ID = g.id(w.ServedName(d.Collection), d.SourceTable, d.SourceKey, c.Index)
			o.Properties = props
			if len(c.Vector) > 0 {
				o.Vector = c.Vector
			}
			ptrs[n] = o
			refs[n] = objRef{doc: int32(di), chunk: int32(ci)}
			n++
		}
	}
	return ptrs, refs
}

// forEach runs fn for 0..n-1 with up to w.parallel calls at a time and
// returns the first error; after an error it starts no further call.
func (w *Weaviate) forEach(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	par := w.parallel
	if par < 1 {
		par = 1
	}
	if n == 1 || par == 1 {
		for i := 0; i < n; i++ {
			if err := fn(ctx, i); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, par)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel()
			}
		}(i)
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

type metaProp struct {
	name  string
	value any
}

// cut returns the end of the sub-batch starting at start: at most
// batchSize objects and about maxBatchBytes of payload.
func (w *Weaviate) cut(objs []*models.Object, start, n int) int {
	end := start + w.batchSize
	if end > n {
		end = n
	}
	size := 0
	for i := start; i < end; i++ {
		size += estimateSize(objs[i])
		if size > maxBatchBytes && i > start {
			return i
		}
	}
	return end
}

// estimateSize is a rough upper bound of an object's encoded size.
func estimateSize(o *models.Object) int {
	size := 256 + 8*len(o.Vector) // the client sends the vector twice
	if p, ok := o.Properties.(map[string]any); ok {
		for k, v := range p {
			size += len(k) + 16
			switch x := v.(type) {
			case string:
				size += len(x)
			case []string:
				for _, s := range x {
					size += len(s) + 4
				}
			case []int64:
				size += 10 * len(x)
			case []float64:
				size += 8 * len(x)
			case []bool:
				size += len(x)
			}
		}
	}
	return size
}

type refErr struct {
	ref objRef
	err *ObjectError
}

// send writes one sub-batch, retrying the whole request on transport errors
// and the failed objects on transient per-object errors, and returns the
// objects that did not get through.
func (w *Weaviate) send(ctx context.Context, b batch, docs []*transform.Document) ([]refErr, error) {
	var out []refErr
	for attempt := 1; ; attempt++ {
		resp, err := w.batchObjects(ctx, b.objs)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("sink: write %d objects to %s: %w", len(b.objs), b.objs[0].Class, ctx.Err())
			}
			if !transientRequest(err) || attempt >= w.attempts {
				return nil, fmt.Errorf("sink: write %d objects to %s (attempt %d): %w", len(b.objs), b.objs[0].Class, attempt, err)
			}
			if err := sleep(ctx, w.backoffFor(attempt)); err != nil {
				return nil, fmt.Errorf("sink: write %d objects to %s: %w", len(b.objs), b.objs[0].Class, err)
			}
			continue
		}
		if len(resp) != len(b.objs) {
			return nil, fmt.Errorf("sink: write %d objects to %s: weaviate answered %d results", len(b.objs), b.objs[0].Class, len(resp))
		}
		var retry batch
		for i := range resp {
			msg, failed := objectFailure(&resp[i])
			if !failed {
				continue
			}
			ref := b.refs[i]
			transient := transientMessage(msg)
			if transient && attempt < w.attempts {
				retry.objs = append(retry.objs, b.objs[i])
				retry.refs = append(retry.refs, ref)
				continue
			}
			d := docs[ref.doc]
			out = append(out, refErr{ref: ref, err: &ObjectError{
				Collection:  d.Collection,
				SourceTable: d.SourceTable,
				SourceKey:   d.SourceKey,
				Chunk:       d.Chunks[ref.chunk].Index,
				Message:     msg,
				Transient:   transient,
			}})
		}
		if len(retry.objs) == 0 {
			return out, nil
		}
		if err := sleep(ctx, w.backoffFor(attempt)); err != nil {
			return nil, fmt.Errorf("sink: write %d objects to %s: %w", len(retry.objs), retry.objs[0].Class, err)
		}
		b = retry
	}
}

// objectFailure reports whether a batch result is a failure, and its message.
func objectFailure(r *models.ObjectsGetResponse) (string, bool) {
	res := r.Result
	if res == nil {
		return "", false
	}
	failed := res.Status != nil && *res.Status == models.ObjectsGetResponseAO2ResultStatusFAILED
	var msg string
	if res.Errors != nil {
		for _, e := range res.Errors.Error {
			if e == nil || e.Message == "" {
				continue
			}
			if msg != "" {
				msg += "; "
			}
			msg += e.Message
		}
	}
	if msg != "" {
		return msg, true
	}
	if failed {
		return "failed without a message", true
	}
	return "", false
}

// dedupe keeps the last of several documents of the same row, and returns
// for each kept document how many chunks the row may have had before this
// call (so that chunks written by an earlier duplicate are removed too).
func dedupe(docs []*transform.Document, previous []int) ([]*transform.Document, []int) {
	before := func(i int) int {
		if previous == nil {
			return 0
		}
		return previous[i]
	}
	prev := make([]int, 0, len(docs))
	type key struct{ c, t, k string }
	var idx map[key]int
	if len(docs) > 1 {
		idx = make(map[key]int, len(docs))
	}
	out := docs[:0:0]
	for j, d := range docs {
		if d == nil {
			continue
		}
		if idx == nil {
			out = append(out, d)
			prev = append(prev, before(j))
			continue
		}
		k := key{d.Collection, d.SourceTable, d.SourceKey}
		if i, ok := idx[k]; ok {
			p := max(prev[i], len(out[i].Chunks), before(j))
			if prev[i] == transform.UnknownChunkCount || before(j) == transform.UnknownChunkCount {
				p = transform.UnknownChunkCount
			}
			out[i] = d
			prev[i] = p
			continue
		}
		idx[k] = len(out)
		out = append(out, d)
		prev = append(prev, before(j))
	}
	return out, prev
}

// removeExtraChunks deletes, for each fully stored document, the objects of
// chunk indexes [len(Chunks), prev); where prev is unknown, it finds them
// by query (prune.go).
func (w *Weaviate) removeExtraChunks(ctx context.Context, docs []*transform.Document, prev []int, failed []bool, g *idGen) error {
	type scope struct{ collection, tenant string }
	var byColl map[scope][]string
	var unknown []*transform.Document
	for i, d := range docs {
		if !failed[i] && prev[i] == transform.UnknownChunkCount {
			unknown = append(unknown, d)
			continue
		}
		if failed[i] || prev[i] <= len(d.Chunks) {
			continue
		}
		if byColl == nil {
			byColl = map[scope][]string{}
		}
		s := scope{d.Collection, d.Tenant}
		ids := byColl[s]
		for c := len(d.Chunks); c < prev[i]; c++ {
			ids = append(ids, string(g.id(w.ServedName(d.Collection), d.SourceTable, d.SourceKey, c)))
		}
		byColl[s] = ids
	}
	for s, ids := range byColl {
		if err := w.deleteIDs(ctx, s.collection, s.tenant, ids); err != nil {
			return fmt.Errorf("sink: remove surplus chunks: %w", err)
		}
	}
	if err := w.pruneChunks(ctx, unknown); err != nil {
		return fmt.Errorf("sink: remove surplus chunks: %w", err)
	}
	return nil
}
