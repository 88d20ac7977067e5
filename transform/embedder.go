package transform

import "context"

// Embedder turns chunk texts into vectors. Implementations must return one
// vector per input, in input order, each of length Dimensions().
type Embedder interface {
	// ModelID names the vector space (provider, model, dimensions); it is part
	// of the content hash so that a model change re-embeds everything.
	ModelID() string
	Dimensions() int
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}
