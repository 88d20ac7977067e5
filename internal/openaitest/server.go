// Package openaitest is an in-process embedding server speaking the OpenAI
// embeddings protocol (POST /v1/embeddings), for tests of provider openai
// and of Weaviate's text2vec-openai module. It listens on 127.0.0.1 only,
// computes deterministic vectors (the hash embedder's), records every
// request, and injects the faults tests need: rate limiting, outages,
// inputs it refuses, slow answers, and request-size limits.
package openaitest

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// Options configure a Server. Zero values accept everything.
type Options struct {
	// Dimensions is the vector length when a request does not ask for one.
	Dimensions int
	// APIKey, when set, must be sent as "Authorization: Bearer <key>".
	APIKey string
	// MaxInputs and MaxTokens refuse (400) requests above them, as real
	// providers do, so that a test notices a client that ignores limits.
	MaxInputs int
	MaxTokens int
	// MaxInputTokens refuses (400) a request with a longer input.
	MaxInputTokens int
	// NoBase64 refuses (400) requests with encoding_format, as providers
	// that do not know the parameter do; otherwise encoding_format base64
	// gets base64 vectors, as OpenAI sends them.
	NoBase64 bool
}

// Request is one request the server received.
type Request struct {
	Time       time.Time
	Inputs     []string
	Tokens     int // cl100k_base tokens of the inputs
	Model      string
	Dimensions int // 0 when absent
	// EncodingFormat is the request's encoding_format ("" when absent).
	EncodingFormat string
	Header         http.Header
	Status         int // what the server answered
}

// Fault is a scripted answer: Status with the given headers and body.
type Fault struct {
	Status int
	Header map[string]string
	Body   string
	Delay  time.Duration // before answering
}

// Server is a running fake provider.
type Server struct {
	opts Options
	srv  *httptest.Server

	mu       sync.Mutex
	requests []Request
	script   []Fault       // answered first, in order
	down     *Fault        // answered while set
	poison   []string      // an input containing one of these is refused
	delay    time.Duration // before every answer
	hook     func(*Request) *Fault
	embedder map[int]*embedding.HashEmbedder
}

// New starts a server on 127.0.0.1; it stops when Close is called.
func New(opts Options) *Server {
	if opts.Dimensions == 0 {
		opts.Dimensions = 32
	}
	s := &Server{opts: opts, embedder: map[int]*embedding.HashEmbedder{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

// URL is the base URL (http://127.0.0.1:PORT), which provider openai and
// text2vec-openai both accept as their base URL.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// FailNext makes the next len(faults) requests get these answers.
func (s *Server) FailNext(faults ...Fault) {
	s.mu.Lock()
	s.script = append(s.script, faults...)
	s.mu.Unlock()
}

// Down makes every request get f until Up.
func (s *Server) Down(f Fault) {
	s.mu.Lock()
	s.down = &f
	s.mu.Unlock()
}

// Up ends Down.
func (s *Server) Up() {
	s.mu.Lock()
	s.down = nil
	s.mu.Unlock()
}

// Poison makes the server refuse (400) every request holding an input
// that contains marker, as a provider refuses content it cannot embed.
func (s *Server) Poison(marker string) {
	s.mu.Lock()
	s.poison = append(s.poison, marker)
	s.mu.Unlock()
}

// Delay makes every answer wait d.
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// Hook lets a test answer requests itself: a non-nil Fault is answered
// instead of embeddings.
func (s *Server) Hook(fn func(*Request) *Fault) {
	s.mu.Lock()
	s.hook = fn
	s.mu.Unlock()
}

// Requests returns a copy of every request received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Reset forgets the recorded requests.
func (s *Server) Reset() {
	s.mu.Lock()
	s.requests = nil
	s.mu.Unlock()
}

// Usage sums the inputs and tokens of the requests answered with 200: what
// a provider would bill.
func (s *Server) Usage() (requests, inputs, tokens int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.requests {
		if r.Status == http.StatusOK {
			requests++
			inputs += len(r.Inputs)
			tokens += r.Tokens
		}
	}
	return requests, inputs, tokens
}

type request struct {
	Input          any    `json:"input"`
	Model          string `json:"model"`
	Dimensions     int    `json:"dimensions"`
	EncodingFormat string `json:"encoding_format"`
}

type datum struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string of float32s
}

// base64Vector is v as encoding_format base64 sends it: little-endian
// float32 values, base64-encoded.
func base64Vector(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(b)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/embeddings") {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
		return
	}
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
		return
	}
	rec := Request{Time: time.Now(), Model: req.Model, Dimensions: req.Dimensions, EncodingFormat: req.EncodingFormat, Header: r.Header.Clone()}
	switch in := req.Input.(type) {
	case string:
		rec.Inputs = []string{in}
	case []any:
		for _, v := range in {
			str, ok := v.(string)
			if !ok {
				writeError(w, http.StatusBadRequest, "input must be strings")
				return
			}
			rec.Inputs = append(rec.Inputs, str)
		}
	default:
		writeError(w, http.StatusBadRequest, "'input' must be a string or a list of strings")
		return
	}
	for _, in := range rec.Inputs {
		rec.Tokens += transform.CountTokens(in)
	}

	s.mu.Lock()
	fault := s.fault(&rec)
	delay := s.delay
	s.mu.Unlock()
	if fault != nil && fault.Delay > 0 {
		delay = fault.Delay
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			s.record(rec, 499)
			return
		}
	}
	if fault != nil {
		for k, v := range fault.Header {
			w.Header().Set(k, v)
		}
		if fault.Body == "" {
			fault.Body = fmt.Sprintf(`{"error":{"message":"injected fault %d","type":"server_error"}}`, fault.Status)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(fault.Status)
		w.Write([]byte(fault.Body))
		s.record(rec, fault.Status)
		return
	}

	dims := req.Dimensions
	if dims == 0 {
		dims = s.opts.Dimensions
	}
	s.mu.Lock()
	e := s.embedder[dims]
	if e == nil {
		e = embedding.NewHashEmbedder(dims)
		s.embedder[dims] = e
	}
	s.mu.Unlock()
	vecs, err := e.Embed(context.Background(), rec.Inputs)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		s.record(rec, http.StatusInternalServerError)
		return
	}
	resp := struct {
		Object string  `json:"object"`
		Data   []datum `json:"data"`
		Model  string  `json:"model"`
		Usage  struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}{Object: "list", Model: req.Model}
	// Answer in reverse order: clients must match by index.
	for i := len(vecs) - 1; i >= 0; i-- {
		var emb any = vecs[i]
		if req.EncodingFormat == "base64" {
			emb = base64Vector(vecs[i])
		}
		resp.Data = append(resp.Data, datum{Object: "embedding", Index: i, Embedding: emb})
	}
	resp.Usage.PromptTokens, resp.Usage.TotalTokens = rec.Tokens, rec.Tokens
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
	s.record(rec, http.StatusOK)
}

// fault decides whether rec gets something other than embeddings; s.mu is
// held.
func (s *Server) fault(rec *Request) *Fault {
	if s.hook != nil {
		if f := s.hook(rec); f != nil {
			return f
		}
	}
	if len(s.script) > 0 {
		f := s.script[0]
		s.script = s.script[1:]
		return &f
	}
	if s.down != nil {
		f := *s.down
		return &f
	}
	if k := s.opts.APIKey; k != "" && rec.Header.Get("Authorization") != "Bearer "+k {
		return badRequest(http.StatusUnauthorized, "invalid_api_key", "Incorrect API key provided.")
	}
	if len(rec.Inputs) == 0 {
		return badRequest(http.StatusBadRequest, "invalid_request_error", "'input' is empty")
	}
	if s.opts.NoBase64 && rec.EncodingFormat != "" {
		return badRequest(http.StatusBadRequest, "invalid_request_error", "Unrecognized request argument supplied: encoding_format")
	}
	if s.opts.MaxInputs > 0 && len(rec.Inputs) > s.opts.MaxInputs {
		return badRequest(http.StatusBadRequest, "invalid_request_error",
			fmt.Sprintf("too many inputs: %d, at most %d", len(rec.Inputs), s.opts.MaxInputs))
	}
	if s.opts.MaxTokens > 0 && rec.Tokens > s.opts.MaxTokens {
		return badRequest(http.StatusBadRequest, "invalid_request_error",
			fmt.Sprintf("too many tokens: %d, at most %d per request", rec.Tokens, s.opts.MaxTokens))
	}
	for i, in := range rec.Inputs {
		if in == "" {
			return badRequest(http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("input[%d] is empty", i))
		}
		if s.opts.MaxInputTokens > 0 {
			if n := transform.CountTokens(in); n > s.opts.MaxInputTokens {
				return badRequest(http.StatusBadRequest, "invalid_request_error",
					fmt.Sprintf("input[%d] has %d tokens, the model takes at most %d", i, n, s.opts.MaxInputTokens))
			}
		}
		for _, p := range s.poison {
			if strings.Contains(in, p) {
				return badRequest(http.StatusBadRequest, "invalid_request_error",
					fmt.Sprintf("input[%d] cannot be embedded", i))
			}
		}
	}
	return nil
}

func badRequest(status int, typ, msg string) *Fault {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ}})
	return &Fault{Status: status, Body: string(b)}
}

func (s *Server) record(rec Request, status int) {
	rec.Status = status
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg}})
	w.Write(b)
}

// RetryAfter is a 429 asking to wait d.
func RetryAfter(d time.Duration) Fault {
	return Fault{
		Status: http.StatusTooManyRequests,
		Header: map[string]string{"Retry-After": strconv.FormatFloat(d.Seconds(), 'f', -1, 64)},
		Body:   `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`,
	}
}
