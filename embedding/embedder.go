package embedding

import "context"

// Embedder turns chunk texts into vectors. Implementations must return one
// vector per input, in input order, each of length Dimensions().
//
// When the provider permanently rejects some inputs but embeds the others
// (provider openai answering 400 for one text of a batch), Embed returns
// the vectors it has, nil at the rejected positions, together with an
// InputErrors error listing exactly those positions. Any other error means
// no vector can be used; the caller retries or gives up as it sees fit.
type Embedder interface {
	// ModelID names the vector space (provider, model, dimensions); it is part
	// of the content hash so that a model change re-embeds everything.
	ModelID() string
	Dimensions() int
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}
