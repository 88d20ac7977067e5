// Package embedding turns chunk texts into vectors: the Embedder interface
// the pipeline calls, the built-in offline embedder (HashEmbedder), and the
// client of OpenAI-compatible embedding APIs (OpenAIEmbedder: batching by
// count and tokens, rate limits, retries with backoff, a circuit breaker,
// base64 vectors, inputs the provider rejects reported per input as
// InputErrors). It is separate from package transform (row -> document ->
// chunks) so that each stage knows only its job; the embedding cache that
// sits in front of a provider is internal/embedcache.
//
// # Hash embedder
//
// HashEmbedder is lexical, not semantic: it places texts that share words
// and spellings near each other, but knows nothing of meaning (synonyms and
// translations are not close). It exists so the indexer works offline and
// deterministically; use a real embedding model for semantic search.
package embedding
