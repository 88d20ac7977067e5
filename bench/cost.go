package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// countingEmbedder counts the texts and cl100k_base tokens the pipeline
// hands to the embedder.
type countingEmbedder struct {
	embedding.Embedder
	texts, tokens atomic.Int64
}

func (c *countingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	for _, t := range texts {
		c.tokens.Add(int64(transform.CountTokens(t)))
	}
	c.texts.Add(int64(len(texts)))
	return c.Embedder.Embed(ctx, texts)
}

type costResult struct {
	Documents       int     `json:"documents"`
	ChunksPerDoc    float64 `json:"chunks_per_document"`
	TokensPerDoc    float64 `json:"tokens_per_document"`
	Updates         int     `json:"updates"`
	Edited          int     `json:"updates_editing_a_paragraph"`
	InitialTokens   int64   `json:"initial_load_tokens_sent"`
	InitialFull     int64   `json:"initial_load_tokens_all_chunks"`
	UpdateTokens    int64   `json:"update_tokens_sent"`
	UpdateTexts     int64   `json:"update_chunks_sent"`
	Source          string  `json:"counted_by"`
	MetricTokens    float64 `json:"update_tokens_in_metric"` // cdc_indexer_embedding_tokens_total delta; -1 when not exported
	FullReembed     int64   `json:"update_tokens_full_reembedding"`
	DocumentSkip    int64   `json:"update_tokens_document_level_skip"`
	ChunkReuse      int64   `json:"update_tokens_changed_chunks_only"`
	Ratio           float64 `json:"ratio_sent_to_full"`
	ChunkReuseShare float64 `json:"ratio_changed_chunks_to_full"`
	Verdict         string  `json:"verdict"`
}

func (c *costResult) rows() []row {
	return []row{{
		Section: "cost",
		Measure: fmt.Sprintf("embedding tokens for %s updates of %s long docs (%.1f chunks each; %.0f%% no-op, %.0f%% one paragraph edited)",
			thousands(int64(c.Updates)), thousands(int64(c.Documents)), c.ChunksPerDoc, 100*noopShare, 100*(1-noopShare)),
		Value:    fmt.Sprintf("%s tokens (%s chunks)", thousands(c.UpdateTokens), thousands(c.UpdateTexts)),
		Baseline: thousands(c.FullReembed) + " tokens full re-embedding",
		Ratio:    ratioStr(c.Ratio),
		Target:   fmt.Sprintf("changed chunks only: %s tokens (%s)", thousands(c.ChunkReuse), ratioStr(c.ChunkReuseShare)),
		Status:   c.Verdict,
	}}
}

// cost runs the chunk-reuse workload through the in-process connector and
// counts what is sent to the embedder.
func (b *bench) cost(ctx context.Context) error {
	const db, coll = "bench_cost", "BenchCost"
	dsn, err := b.database(ctx, db)
	if err != nil {
		return err
	}
	defer b.dropDatabase(db)
	defer b.weav.settle(context.WithoutCancel(ctx), coll)
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	// The provider is an OpenAI-compatible endpoint on loopback that counts
	// what it receives, so that the embedding cache (which serves provider
	// openai) is in the path. A build without provider openai falls back
	// to the hash embedder with a counting wrapper.
	provider, err := startFakeOpenAI(384)
	if err != nil {
		return err
	}
	defer provider.Close()
	res := &costResult{Documents: b.o.CostDocs, Source: "requests received by an OpenAI-compatible endpoint (provider openai)"}
	cfgPath, err := b.writeConfig(db, scenario{DSN: dsn, Slot: db, Publication: db, Collection: coll, ObsPort: port, MaxTokens: 512, OpenAIBaseURL: provider.BaseURL()})
	if err != nil {
		return err
	}
	var counter *countingEmbedder
	wrap := func(e embedding.Embedder) embedding.Embedder {
		counter = &countingEmbedder{Embedder: e}
		return counter
	}
	ip, err := startInproc(ctx, cfgPath, nil)
	if err != nil && strings.Contains(err.Error(), "embedding.provider") {
		logf("cost: provider openai unavailable (%v); using hash with a counting wrapper", err)
		res.Source = "counting wrapper around the hash embedder (provider openai not available)"
		if cfgPath, err = b.writeConfig(db, scenario{DSN: dsn, Slot: db, Publication: db, Collection: coll, ObsPort: port, MaxTokens: 512}); err != nil {
			return err
		}
		ip, err = startInproc(ctx, cfgPath, wrap)
	}
	if err != nil {
		return err
	}
	defer ip.close()
	// sent is what reached the provider so far.
	sent := func() (tokens, texts int64) {
		if counter != nil {
			return counter.tokens.Load(), counter.texts.Load()
		}
		_, texts, tokens = provider.counts()
		return tokens, texts
	}
	chunker, err := transform.NewChunker(512, 0)
	if err != nil {
		return err
	}
	tokensOf := func(texts []string) (n int64) {
		for _, t := range texts {
			n += int64(transform.CountTokens(t))
		}
		return n
	}

	docs := make([]longDoc, res.Documents)
	chunks := 0
	for i := range docs {
		docs[i] = makeLongDoc(int64(i + 1))
		parts := chunker.Split(docs[i].text())
		chunks += len(parts)
		res.InitialFull += tokensOf(parts)
	}
	res.ChunksPerDoc = float64(chunks) / float64(len(docs))
	res.TokensPerDoc = float64(res.InitialFull) / float64(len(docs))

	// Initial load: one transaction.
	logf("cost: inserting %d long documents (%.1f chunks, %.0f tokens each)", len(docs), res.ChunksPerDoc, res.TokensPerDoc)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rows := make([][]any, len(docs))
	for i, d := range docs {
		rows[i] = []any{d.ID, d.Title, d.body(), "author" + fmt.Sprint(d.ID%7), "cat" + fmt.Sprint(d.ID%3)}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"public", "docs"}, docsColumns, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	acked := int64(len(docs))
	if err := waitAcks(ctx, ip, acked, 10*time.Minute); err != nil {
		return err
	}
	res.InitialTokens, _ = sent()
	metric0 := ip.counterSum("cdc_indexer_embedding_tokens_total")

	// Updates, one transaction each.
	tokens0, texts0 := sent()
	logf("cost: %d updates", len(docs))
	for _, d := range docs {
		u := makeUpdate(d)
		after := chunker.Split(u.After.text())
		res.FullReembed += tokensOf(after)
		if u.Edited {
			res.Edited++
			res.DocumentSkip += tokensOf(after)
			before := chunker.Split(u.Before.text())
			for _, c := range after {
				if !slices.Contains(before, c) {
					res.ChunkReuse += int64(transform.CountTokens(c))
				}
			}
			_, err = conn.Exec(ctx, "UPDATE public.docs SET body = $2, updated_at = now() WHERE id = $1", d.ID, u.After.body())
		} else {
			_, err = conn.Exec(ctx, "UPDATE public.docs SET updated_at = now() WHERE id = $1", d.ID)
		}
		if err != nil {
			return err
		}
		res.Updates++
	}
	acked += int64(res.Updates)
	if err := waitAcks(ctx, ip, acked, 10*time.Minute); err != nil {
		return err
	}
	tokens1, texts1 := sent()
	res.UpdateTokens, res.UpdateTexts = tokens1-tokens0, texts1-texts0
	res.MetricTokens = -1
	if m1 := ip.counterSum("cdc_indexer_embedding_tokens_total"); m1 >= 0 && metric0 >= 0 {
		res.MetricTokens = m1 - metric0
	}
	res.Ratio = float64(res.UpdateTokens) / float64(res.FullReembed)
	res.ChunkReuseShare = float64(res.ChunkReuse) / float64(res.FullReembed)
	switch {
	case float64(res.UpdateTokens) <= 1.15*float64(res.ChunkReuse):
		res.Verdict = "chunk reuse effective"
	case float64(res.UpdateTokens) <= 1.05*float64(res.DocumentSkip):
		res.Verdict = "document-level no-op skip only (no chunk reuse yet)"
	default:
		res.Verdict = "more than the edited documents' chunks"
	}
	b.res.Cost = res
	logf("cost: updates sent %s tokens in %d chunks; full re-embedding %s, edited documents %s, changed chunks %s (%s)",
		thousands(res.UpdateTokens), res.UpdateTexts, thousands(res.FullReembed), thousands(res.DocumentSkip), thousands(res.ChunkReuse), res.Verdict)
	return nil
}
