package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// fakeOpenAI is an OpenAI-compatible /v1/embeddings endpoint on loopback
// that answers with hash-embedder vectors and counts what it is sent: the
// cost section's ground truth of "tokens sent to the provider".
type fakeOpenAI struct {
	srv      *http.Server
	ln       net.Listener
	emb      *embedding.HashEmbedder
	requests atomic.Int64
	inputs   atomic.Int64
	tokens   atomic.Int64 // cl100k_base tokens of the inputs
}

func startFakeOpenAI(dims int) (*fakeOpenAI, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &fakeOpenAI{ln: ln, emb: embedding.NewHashEmbedder(dims)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/embeddings", f.embeddings)
	f.srv = &http.Server{Handler: mux}
	go f.srv.Serve(ln)
	return f, nil
}

// BaseURL is what embedding.base_url should be.
func (f *fakeOpenAI) BaseURL() string { return fmt.Sprintf("http://%s/v1", f.ln.Addr()) }

func (f *fakeOpenAI) Close() { f.srv.Close() }

func (f *fakeOpenAI) counts() (requests, inputs, tokens int64) {
	return f.requests.Load(), f.inputs.Load(), f.tokens.Load()
}

func (f *fakeOpenAI) embeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad request body"}}`, http.StatusBadRequest)
		return
	}
	var inputs []string
	if err := json.Unmarshal(req.Input, &inputs); err != nil {
		var one string
		if err := json.Unmarshal(req.Input, &one); err != nil {
			http.Error(w, `{"error":{"message":"input must be a string or a list of strings"}}`, http.StatusBadRequest)
			return
		}
		inputs = []string{one}
	}
	tokens := 0
	for _, s := range inputs {
		tokens += transform.CountTokens(s)
	}
	vecs, err := f.emb.Embed(r.Context(), inputs)
	if err != nil {
		http.Error(w, `{"error":{"message":"embedding failed"}}`, http.StatusInternalServerError)
		return
	}
	f.requests.Add(1)
	f.inputs.Add(int64(len(inputs)))
	f.tokens.Add(int64(tokens))
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	resp := struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
		Usage  struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}{Object: "list", Model: req.Model}
	for i, v := range vecs {
		resp.Data = append(resp.Data, item{Object: "embedding", Index: i, Embedding: v})
	}
	resp.Usage.PromptTokens, resp.Usage.TotalTokens = tokens, tokens
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}
