package pipeline

import (
	"context"
	"fmt"

	"github.com/cdc-indexer/cdc-indexer/transform"
)

// chunkAndEmbed splits each document and fills in its vectors, sending the
// embedder at most EmbedBatch texts per call.
func (p *Pipeline) chunkAndEmbed(ctx context.Context, docs []*transform.Document) error {
	var texts []string
	var slots []*transform.Chunk
	for _, d := range docs {
		parts := p.chunker.Split(d.Text)
		d.Chunks = make([]transform.Chunk, len(parts))
		for i, s := range parts {
			d.Chunks[i] = transform.Chunk{Index: i, Text: s}
		}
		if p.embedder == nil {
			continue
		}
		for i := range d.Chunks {
			texts = append(texts, d.Chunks[i].Text)
			slots = append(slots, &d.Chunks[i])
		}
	}
	for start := 0; start < len(texts); start += p.cfg.EmbedBatch {
		end := min(start+p.cfg.EmbedBatch, len(texts))
		vecs, err := p.embedder.Embed(ctx, texts[start:end])
		if err != nil {
			return fmt.Errorf("embed %d chunks with %s: %w", end-start, p.embedder.ModelID(), err)
		}
		if len(vecs) != end-start {
			return fmt.Errorf("embedder %s returned %d vectors for %d texts", p.embedder.ModelID(), len(vecs), end-start)
		}
		for i, v := range vecs {
			slots[start+i].Vector = v
		}
	}
	return nil
}
