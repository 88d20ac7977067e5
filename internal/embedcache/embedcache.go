// Package embedcache keeps the vectors of chunk texts so that a text is
// embedded once per model, however often it is written: a metadata-only
// change, a replay after a crash, or an update that leaves most chunks of a
// long document as they were reuses the vectors it already has, and only
// chunks whose text changed go to the provider.
//
// Vectors are keyed by the embedder's model id and the SHA-256 of the
// chunk text. They are kept in two layers: an in-memory LRU bounded in
// bytes, and a table in the state schema (embedding_cache) that survives
// restarts, bounded in rows and pruned least recently used first. One Embed
// call looks up all its texts missing from memory in a single query.
package embedcache

import (
	"container/list"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// Key is the SHA-256 of a chunk text.
type Key = [32]byte

// KeyOf hashes a text.
func KeyOf(text string) Key { return sha256.Sum256([]byte(text)) }

// Store is the persistent layer; *state.Store implements it.
type Store interface {
	// LookupEmbeddings returns the stored vectors of model among keys.
	LookupEmbeddings(ctx context.Context, model string, keys []Key) (map[Key][]float32, error)
	// SaveEmbeddings stores vectors (keys[i] -> vecs[i]) of model.
	SaveEmbeddings(ctx context.Context, model string, keys []Key, vecs [][]float32) error
	// PruneEmbeddings deletes the least recently used entries beyond keep
	// and returns how many it deleted.
	PruneEmbeddings(ctx context.Context, keep int64) (int64, error)
}

// Options configure Wrap.
type Options struct {
	// MemoryBytes bounds the in-memory layer (vector bytes plus a small
	// overhead per entry); 0 disables it.
	MemoryBytes int64
	// Store is the persistent layer; nil keeps vectors in memory only.
	Store Store
	// MaxStored bounds the persistent layer's rows; 0 means unbounded.
	MaxStored int64
	// PruneEvery is the least time between two prunings of the persistent
	// layer; default 5 minutes.
	PruneEvery time.Duration
	// PricePerMillionTokens turns tokens into Usage.Cost.
	PricePerMillionTokens float64
	Log                   zerolog.Logger
}

// Usage is what one Embed call cost.
type Usage struct {
	Texts  int     // distinct texts sent to the provider
	Tokens int     // their cl100k_base tokens
	Cost   float64 // Tokens at the configured price
	Hits   int     // inputs answered from the cache (memory or store) or by a duplicate in the same call
	Stored int     // of Hits, those found in the persistent layer
}

// Embedder is a embedding.Embedder that answers from the cache what it can
// and sends the rest to the embedder it wraps.
type Embedder struct {
	inner embedding.Embedder
	opts  Options
	mem   *lru

	lastPrune atomic.Int64 // unix nanoseconds
	pruning   atomic.Bool
}

// Wrap puts a cache in front of inner.
func Wrap(inner embedding.Embedder, opts Options) *Embedder {
	if opts.PruneEvery <= 0 {
		opts.PruneEvery = 5 * time.Minute
	}
	e := &Embedder{inner: inner, opts: opts}
	if opts.MemoryBytes > 0 {
		e.mem = newLRU(opts.MemoryBytes)
	}
	return e
}

// Inner is the wrapped embedder.
func (e *Embedder) Inner() embedding.Embedder { return e.inner }

// ModelID is the wrapped embedder's.
func (e *Embedder) ModelID() string { return e.inner.ModelID() }

// Dimensions is the wrapped embedder's.
func (e *Embedder) Dimensions() int { return e.inner.Dimensions() }

// SetObserver passes o to the wrapped embedder when it takes one.
func (e *Embedder) SetObserver(o embedding.EmbedObserver) {
	if s, ok := e.inner.(interface{ SetObserver(embedding.EmbedObserver) }); ok {
		s.SetObserver(o)
	}
}

// Embed is EmbedUsage without the usage.
func (e *Embedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	v, _, err := e.EmbedUsage(ctx, texts)
	return v, err
}

// EmbedUsage returns one vector per text like embedding.Embedder.Embed,
// and what it cost. Texts the provider rejects come back as
// embedding.InputErrors with their positions in texts (every position of a
// text that occurs more than once); the others are embedded and cached.
func (e *Embedder) EmbedUsage(ctx context.Context, texts []string) ([][]float32, Usage, error) {
	var u Usage
	model := e.inner.ModelID()
	out := make([][]float32, len(texts))
	keys := make([]Key, len(texts))
	first := make(map[Key]int, len(texts)) // key -> first position
	var missing []Key                      // distinct keys not in memory
	for i, t := range texts {
		k := KeyOf(t)
		keys[i] = k
		if _, seen := first[k]; seen {
			continue
		}
		first[k] = i
		if v, ok := e.mem.get(k); ok {
			out[i] = v
			continue
		}
		missing = append(missing, k)
	}
	if len(missing) > 0 && e.opts.Store != nil {
		found, err := e.opts.Store.LookupEmbeddings(ctx, model, missing)
		if err != nil {
			return nil, u, fmt.Errorf("look up cached embeddings: %w", err)
		}
		rest := missing[:0]
		for _, k := range missing {
			v, ok := found[k]
			if ok && len(v) == e.inner.Dimensions() {
				out[first[k]] = v
				e.mem.put(k, v)
				u.Stored++
				continue
			}
			rest = append(rest, k)
		}
		missing = rest
	}

	var rejected embedding.InputErrors
	if len(missing) > 0 {
		send := make([]string, len(missing))
		for j, k := range missing {
			send[j] = texts[first[k]]
			u.Tokens += transform.CountTokens(send[j])
		}
		vecs, err := e.inner.Embed(ctx, send)
		inputErrs, partial := embedding.AsInputErrors(err)
		if err != nil && !partial {
			return nil, u, err
		}
		if len(vecs) != len(send) {
			return nil, u, fmt.Errorf("embedder %s returned %d vectors for %d texts", model, len(vecs), len(send))
		}
		bad := map[int]error{}
		for _, ie := range inputErrs {
			bad[ie.Index] = ie.Err
			u.Tokens -= transform.CountTokens(send[ie.Index]) // refused: not billed
		}
		saveKeys := make([]Key, 0, len(missing))
		saveVecs := make([][]float32, 0, len(missing))
		for j, k := range missing {
			if _, refused := bad[j]; refused {
				continue
			}
			out[first[k]] = vecs[j]
			e.mem.put(k, vecs[j])
			saveKeys, saveVecs = append(saveKeys, k), append(saveVecs, vecs[j])
		}
		u.Texts = len(saveKeys)
		e.save(ctx, model, saveKeys, saveVecs)
		if len(bad) > 0 {
			badKeys := make(map[Key]error, len(bad))
			for j, err := range bad {
				badKeys[missing[j]] = err
			}
			for i, k := range keys {
				if err, ok := badKeys[k]; ok {
					rejected = append(rejected, &embedding.InputError{Index: i, Err: err})
				}
			}
		}
	}
	u.Cost = float64(u.Tokens) * e.opts.PricePerMillionTokens / 1e6
	for i, k := range keys {
		if out[i] == nil {
			out[i] = out[first[k]]
		}
	}
	u.Hits = len(texts) - u.Texts - len(rejected)
	if len(rejected) > 0 {
		return out, u, rejected
	}
	return out, u, nil
}

// save writes new vectors to the persistent layer. A failure costs only
// future savings, so it is logged, not returned: the vectors are in
// memory, and the write to Weaviate goes on.
func (e *Embedder) save(ctx context.Context, model string, keys []Key, vecs [][]float32) {
	if e.opts.Store == nil || len(keys) == 0 {
		return
	}
	if err := e.opts.Store.SaveEmbeddings(ctx, model, keys, vecs); err != nil {
		e.opts.Log.Warn().Err(err).Int("vectors", len(keys)).Msg("could not store embeddings in the cache; they are kept in memory only")
		return
	}
	e.maybePrune(ctx)
}

// maybePrune bounds the persistent layer, at most once per PruneEvery.
func (e *Embedder) maybePrune(ctx context.Context) {
	if e.opts.MaxStored <= 0 {
		return
	}
	now := time.Now().UnixNano()
	last := e.lastPrune.Load()
	if now-last < int64(e.opts.PruneEvery) || !e.lastPrune.CompareAndSwap(last, now) {
		return
	}
	if !e.pruning.CompareAndSwap(false, true) {
		return
	}
	defer e.pruning.Store(false)
	n, err := e.opts.Store.PruneEmbeddings(ctx, e.opts.MaxStored)
	if err != nil {
		e.opts.Log.Warn().Err(err).Msg("could not prune the embedding cache")
		return
	}
	if n > 0 {
		e.opts.Log.Info().Int64("deleted", n).Int64("kept", e.opts.MaxStored).Msg("pruned the embedding cache")
	}
}

// MemoryEntries is how many vectors the memory layer holds.
func (e *Embedder) MemoryEntries() int { return e.mem.len() }

// lru is a byte-bounded least-recently-used map; a nil *lru holds nothing.
type lru struct {
	mu    sync.Mutex
	max   int64
	bytes int64
	order *list.List // front: most recently used
	items map[Key]*list.Element
}

type entry struct {
	key Key
	vec []float32
}

// entryOverhead approximates an entry's memory beyond its vector: the key,
// the list element and the map slot.
const entryOverhead = 128

func newLRU(maxBytes int64) *lru {
	return &lru{max: maxBytes, order: list.New(), items: map[Key]*list.Element{}}
}

func (c *lru) get(k Key) ([]float32, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*entry).vec, true
}

func (c *lru) put(k Key, v []float32) {
	if c == nil {
		return
	}
	size := int64(4*len(v) + entryOverhead)
	if size > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.order.MoveToFront(el)
		return
	}
	c.items[k] = c.order.PushFront(&entry{k, v})
	c.bytes += size
	for c.bytes > c.max {
		el := c.order.Back()
		old := el.Value.(*entry)
		c.order.Remove(el)
		delete(c.items, old.key)
		c.bytes -= int64(4*len(old.vec) + entryOverhead)
	}
}

func (c *lru) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
