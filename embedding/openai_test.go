package embedding_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/openaitest"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// observer counts an embedder's events.
type observer struct {
	mu        sync.Mutex
	outcomes  map[string]int
	retries   map[string]int
	opened    int
	closed    int
	truncated int
}

func newObserver() *observer {
	return &observer{outcomes: map[string]int{}, retries: map[string]int{}}
}

func (o *observer) EmbedRequest(model, outcome string, inputs, tokens int) {
	o.mu.Lock()
	o.outcomes[outcome]++
	o.mu.Unlock()
}

func (o *observer) EmbedRetry(model, reason string) {
	o.mu.Lock()
	o.retries[reason]++
	o.mu.Unlock()
}

func (o *observer) EmbedCircuit(model string, open bool) {
	o.mu.Lock()
	if open {
		o.opened++
	} else {
		o.closed++
	}
	o.mu.Unlock()
}

func (o *observer) EmbedTruncated(model string) {
	o.mu.Lock()
	o.truncated++
	o.mu.Unlock()
}

func (o *observer) get(f func(o *observer) int) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return f(o)
}

const testDims = 16

// fastConfig is a configuration with short waits, for tests.
func fastConfig(srv *openaitest.Server) embedding.OpenAIConfig {
	return embedding.OpenAIConfig{
		BaseURL: srv.URL(), Model: "test-embed", Dimensions: testDims, SendDimensions: true, APIKey: "sk-test",
		InitialBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		BreakerFailures: 3, BreakerCooldown: 300 * time.Millisecond, Timeout: 5 * time.Second,
	}
}

func newEmbedder(t *testing.T, cfg embedding.OpenAIConfig) (*embedding.OpenAIEmbedder, *observer) {
	t.Helper()
	e, err := embedding.NewOpenAIEmbedder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := newObserver()
	e.SetObserver(o)
	return e, o
}

func newServer(t *testing.T, opts openaitest.Options) *openaitest.Server {
	srv := openaitest.New(opts)
	t.Cleanup(srv.Close)
	return srv
}

// wantVectors checks vectors against the hash embedder the server uses.
func wantVectors(t *testing.T, texts []string, got [][]float32, skip ...int) {
	t.Helper()
	if len(got) != len(texts) {
		t.Fatalf("%d vectors for %d texts", len(got), len(texts))
	}
	ref := embedding.NewHashEmbedder(testDims)
	skipped := map[int]bool{}
	for _, i := range skip {
		skipped[i] = true
	}
	for i, text := range texts {
		if skipped[i] {
			if got[i] != nil {
				t.Errorf("text %d: want no vector, got one", i)
			}
			continue
		}
		if text == "" {
			text = " "
		}
		want, _ := ref.Embed(context.Background(), []string{text})
		if !reflect.DeepEqual(got[i], want[0]) {
			t.Fatalf("text %d (%q): vector is not this text's (answers matched to the wrong inputs?)", i, text)
		}
	}
}

func texts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("text number %d %s", i, strings.Repeat("word ", i%9))
	}
	return out
}

func TestOpenAIBatchesByCountAndTokens(t *testing.T) {
	srv := newServer(t, openaitest.Options{MaxInputs: 5, MaxTokens: 40})
	cfg := fastConfig(srv)
	cfg.BatchSize, cfg.MaxBatchTokens = 5, 40
	e, _ := newEmbedder(t, cfg)
	in := texts(37)
	in = append(in, "", strings.Repeat("long input ", 15)) // empty and one near the token budget
	got, err := e.Embed(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	wantVectors(t, in, got)
	reqs := srv.Requests()
	total := 0
	for i, r := range reqs {
		if r.Status != http.StatusOK {
			t.Errorf("request %d answered %d", i, r.Status)
		}
		if len(r.Inputs) > 5 || r.Tokens > 40 {
			t.Errorf("request %d has %d inputs, %d tokens; limits 5 and 40", i, len(r.Inputs), r.Tokens)
		}
		if r.Model != "test-embed" || r.Dimensions != testDims || r.Header.Get("Authorization") != "Bearer sk-test" {
			t.Errorf("request %d: model %q dimensions %d auth %q", i, r.Model, r.Dimensions, r.Header.Get("Authorization"))
		}
		total += len(r.Inputs)
	}
	if total != len(in) {
		t.Errorf("sent %d inputs for %d texts", total, len(in))
	}
	// Greedy packing: no two neighbouring requests could have been one.
	for i := 1; i < len(reqs); i++ {
		a, b := reqs[i-1], reqs[i]
		if len(a.Inputs)+1 <= 5 && a.Tokens+transform.CountTokens(b.Inputs[0]) <= 40 {
			t.Errorf("request %d (%d inputs, %d tokens) had room for the next input", i-1, len(a.Inputs), a.Tokens)
		}
	}
	t.Logf("%d texts in %d requests", len(in), len(reqs))
}

func TestOpenAIHeadersAndOptionalDimensions(t *testing.T) {
	srv := newServer(t, openaitest.Options{Dimensions: testDims})
	cfg := fastConfig(srv)
	cfg.SendDimensions = false
	cfg.APIKey = ""
	cfg.Headers = map[string]string{"api-key": "azure-style", "X-Team": "search"}
	cfg.BaseURL = srv.URL() + "/v1/"
	e, _ := newEmbedder(t, cfg)
	if _, err := e.Embed(context.Background(), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	r := srv.Requests()[0]
	if r.Dimensions != 0 || r.Header.Get("Authorization") != "" || r.Header.Get("Api-Key") != "azure-style" || r.Header.Get("X-Team") != "search" {
		t.Errorf("dimensions %d, headers %v", r.Dimensions, r.Header)
	}
	if e.ModelID() != "openai/test-embed/16" {
		t.Errorf("ModelID %q", e.ModelID())
	}
}

func TestEmbeddingsURL(t *testing.T) {
	for base, want := range map[string]string{
		"https://api.openai.com/v1":                 "https://api.openai.com/v1/embeddings",
		"https://api.openai.com/v1/":                "https://api.openai.com/v1/embeddings",
		"https://api.openai.com":                    "https://api.openai.com/v1/embeddings",
		"http://127.0.0.1:8000/":                    "http://127.0.0.1:8000/v1/embeddings",
		"https://host/openai/deployments/x":         "https://host/openai/deployments/x/embeddings",
		"https://host/v1/embeddings":                "https://host/v1/embeddings",
		"https://host/v1/embeddings?api-version=24": "https://host/v1/embeddings?api-version=24",
	} {
		got, err := embedding.EmbeddingsURL(base)
		if err != nil || got != want {
			t.Errorf("EmbeddingsURL(%q) = %q, %v; want %q", base, got, err, want)
		}
	}
	for _, bad := range []string{"", "api.openai.com", "ftp://x/v1"} {
		if _, err := embedding.EmbeddingsURL(bad); err == nil {
			t.Errorf("EmbeddingsURL(%q): no error", bad)
		}
	}
}

func TestOpenAIHonoursRetryAfter(t *testing.T) {
	srv := newServer(t, openaitest.Options{})
	e, o := newEmbedder(t, fastConfig(srv))
	srv.FailNext(openaitest.RetryAfter(time.Second))
	in := texts(3)
	got, err := e.Embed(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	wantVectors(t, in, got)
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[0].Status != 429 || reqs[1].Status != 200 {
		t.Fatalf("requests: %v", statuses(reqs))
	}
	// The backoff alone would have waited at most 10ms.
	if gap := reqs[1].Time.Sub(reqs[0].Time); gap < time.Second {
		t.Errorf("retried %s after a 429 with Retry-After: 1", gap)
	}
	if o.get(func(o *observer) int { return o.retries["429"] }) != 1 {
		t.Errorf("retries: %v", o.retries)
	}
	if e.CircuitOpen() {
		t.Error("a 429 opened the circuit")
	}
}

// A 429's Retry-After holds back every caller, not only the one that got it.
func TestOpenAIRetryAfterPausesOtherCallers(t *testing.T) {
	srv := newServer(t, openaitest.Options{})
	e, _ := newEmbedder(t, fastConfig(srv))
	srv.FailNext(openaitest.RetryAfter(time.Second))
	if _, err := e.Embed(context.Background(), []string{"first"}); err != nil {
		t.Fatal(err)
	}
	srv.FailNext(openaitest.RetryAfter(time.Second))
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.Embed(context.Background(), []string{"second"})
	}()
	time.Sleep(100 * time.Millisecond) // the 429 has arrived
	if _, err := e.Embed(context.Background(), []string{"third"}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("another caller went through %s after a 429 asking for 1s", d)
	}
}

func TestOpenAIRetries5xx(t *testing.T) {
	srv := newServer(t, openaitest.Options{})
	cfg := fastConfig(srv)
	cfg.BreakerFailures = 10
	e, o := newEmbedder(t, cfg)
	srv.FailNext(openaitest.Fault{Status: 500}, openaitest.Fault{Status: 502}, openaitest.Fault{Status: 503, Body: "upstream gone"})
	in := texts(4)
	got, err := e.Embed(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	wantVectors(t, in, got)
	if s := statuses(srv.Requests()); !reflect.DeepEqual(s, []int{500, 502, 503, 200}) {
		t.Errorf("statuses %v", s)
	}
	if n := o.get(func(o *observer) int { return o.retries["500"] + o.retries["502"] + o.retries["503"] }); n != 3 {
		t.Errorf("retries %v", o.retries)
	}
}

func TestOpenAITimeoutIsRetried(t *testing.T) {
	srv := newServer(t, openaitest.Options{})
	cfg := fastConfig(srv)
	cfg.Timeout = 200 * time.Millisecond
	e, o := newEmbedder(t, cfg)
	srv.FailNext(openaitest.Fault{Status: 200, Delay: 2 * time.Second})
	in := texts(2)
	got, err := e.Embed(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	wantVectors(t, in, got)
	if o.get(func(o *observer) int { return o.outcomes["timeout"] }) != 1 {
		t.Errorf("outcomes %v", o.outcomes)
	}
}

// The server refuses any request holding a poisoned input: the embedder
// bisects, reports exactly the poisoned inputs, and embeds all others.
func TestOpenAIIsolatesRejectedInputs(t *testing.T) {
	srv := newServer(t, openaitest.Options{})
	e, o := newEmbedder(t, fastConfig(srv))
	srv.Poison("POISON")
	in := texts(20)
	in[3] += " POISON"
	in[17] = "POISON alone"
	got, err := e.Embed(context.Background(), in)
	ie, ok := embedding.AsInputErrors(err)
	if !ok {
		t.Fatalf("error %v, want InputErrors", err)
	}
	if !reflect.DeepEqual(ie.Indexes(), []int{3, 17}) {
		t.Fatalf("rejected %v, want [3 17]", ie.Indexes())
	}
	if !ie.Permanent() || !strings.Contains(ie[0].Error(), "cannot be embedded") {
		t.Errorf("error %q", ie[0].Error())
	}
	var one *embedding.InputError
	if !errors.As(err, &one) || one.Index != 3 {
		t.Errorf("errors.As InputError: %v", one)
	}
	wantVectors(t, in, got, 3, 17)
	if e.CircuitOpen() || o.get(func(o *observer) int { return o.opened }) != 0 {
		t.Error("refused inputs opened the circuit")
	}
	t.Logf("%d requests to isolate 2 inputs among 20", len(srv.Requests()))
}

// A self-hosted model that answers 500 for one input forever (its own
// tokenizer chokes on it) and answers everything else: after
// IsolateAttempts failures the probe is answered, the request is bisected,
// and only that input is reported; the circuit never opens.
func TestOpenAIIsolatesInputsThatFailWith5xx(t *testing.T) {
	srv := newServer(t, openaitest.Options{})
	srv.Hook(func(r *openaitest.Request) *openaitest.Fault {
		for _, in := range r.Inputs {
			if strings.Contains(in, "CRASH") {
				return &openaitest.Fault{Status: 500, Body: `{"error":{"message":"tokenizer panic"}}`}
			}
		}
		return nil
	})
	cfg := fastConfig(srv)
	cfg.IsolateAttempts = cfg.BreakerFailures
	e, o := newEmbedder(t, cfg)
	in := texts(16)
	in[9] += " CRASH"
	got, err := e.Embed(context.Background(), in)
	ie, ok := embedding.AsInputErrors(err)
	if !ok {
		t.Fatalf("error %v, want InputErrors", err)
	}
	if !reflect.DeepEqual(ie.Indexes(), []int{9}) || !ie.Permanent() || !strings.Contains(ie[0].Error(), "500") {
		t.Fatalf("rejected %v (%v), want [9] naming the 500", ie.Indexes(), err)
	}
	wantVectors(t, in, got, 9)
	if e.CircuitOpen() || o.get(func(o *observer) int { return o.opened }) != 0 {
		t.Error("one failing input opened the circuit")
	}
	t.Logf("%d requests to isolate 1 input among 16", len(srv.Requests()))
}

// A provider that answers 500 to everything, the probe included, is down:
// no input is blamed, Embed waits until its context ends.
func TestOpenAIOutageIsNotBlamedOnInputs(t *testing.T) {
	srv := newServer(t, openaitest.Options{})
	srv.Hook(func(r *openaitest.Request) *openaitest.Fault { return &openaitest.Fault{Status: 500} })
	e, _ := newEmbedder(t, fastConfig(srv))
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := e.Embed(ctx, texts(4))
	if _, ok := embedding.AsInputErrors(err); ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v; want the context's deadline", err)
	}
}

// A provider that refuses everything (here: an unknown model) is a
// configuration problem, not bad data: no input is reported as rejected;
// Embed keeps trying until its context ends.
func TestOpenAIRefusingEverythingIsNotBlamedOnInputs(t *testing.T) {
	srv := newServer(t, openaitest.Options{})
	srv.Hook(func(r *openaitest.Request) *openaitest.Fault {
		return &openaitest.Fault{Status: 400, Body: `{"error":{"message":"model 'nope' does not exist"}}`}
	})
	e, _ := newEmbedder(t, fastConfig(srv))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := e.Embed(ctx, texts(4))
	if _, ok := embedding.AsInputErrors(err); ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v; want the context's deadline", err)
	}
}

func TestOpenAIChecksAnswers(t *testing.T) {
	srv := newServer(t, openaitest.Options{Dimensions: 8})
	cfg := fastConfig(srv)
	cfg.SendDimensions = false // the server answers 8, the config says 16
	e, o := newEmbedder(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := e.Embed(ctx, texts(2)); err == nil {
		t.Fatal("vectors of the wrong length accepted")
	}
	if o.get(func(o *observer) int { return o.retries["invalid_response"] }) == 0 {
		t.Errorf("retries %v", o.retries)
	}
	vec := "[" + strings.Repeat("1,", testDims-1) + "1]"
	for _, body := range []string{
		// one vector for two inputs
		`{"data":[{"index":0,"embedding":[1]}]}`,
		// an index twice
		`{"data":[{"index":0,"embedding":` + vec + `},{"index":0,"embedding":` + vec + `}]}`,
		// an index out of range
		`{"data":[{"index":5,"embedding":` + vec + `},{"index":0,"embedding":` + vec + `}]}`,
		`not json`,
	} {
		srv2 := newServer(t, openaitest.Options{})
		srv2.Hook(func(*openaitest.Request) *openaitest.Fault { return &openaitest.Fault{Status: 200, Body: body} })
		e2, _ := newEmbedder(t, fastConfig(srv2))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := e2.Embed(ctx, []string{"a", "b"})
		cancel()
		if err == nil {
			t.Errorf("answer %s accepted", body)
		}
	}
}

// The provider goes down: the circuit opens, Embed waits without hammering
// it, and once the provider is back everything is embedded.
func TestOpenAICircuitBreakerPausesAndResumes(t *testing.T) {
	srv := newServer(t, openaitest.Options{})
	cfg := fastConfig(srv)
	cfg.BreakerCooldown = 200 * time.Millisecond
	cfg.MaxBackoff = 400 * time.Millisecond
	e, o := newEmbedder(t, cfg)
	srv.Down(openaitest.Fault{Status: 503})
	var wg sync.WaitGroup
	var failed atomic.Int32
	in := texts(6)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := e.Embed(context.Background(), in)
			if err != nil {
				failed.Add(1)
				t.Error(err)
				return
			}
			wantVectors(t, in, got)
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if !e.CircuitOpen() {
		t.Error("circuit not open while the provider is down")
	}
	during := len(srv.Requests())
	// Four callers with a 10ms initial backoff would send well over 100
	// requests in 1.5s; the open circuit lets through one trial at a time.
	if during > 30 {
		t.Errorf("%d requests while the provider was down", during)
	}
	srv.Up()
	wg.Wait()
	if e.CircuitOpen() {
		t.Error("circuit still open after recovery")
	}
	if o.get(func(o *observer) int { return o.opened }) < 1 || o.get(func(o *observer) int { return o.closed }) < 1 {
		t.Errorf("opened %d closed %d", o.opened, o.closed)
	}
	t.Logf("%d requests during a 1.5s outage", during)
}

func TestOpenAIRateLimits(t *testing.T) {
	srv := newServer(t, openaitest.Options{})
	cfg := fastConfig(srv)
	cfg.BatchSize = 1
	cfg.RequestsPerMinute = 240 // 4 per second, a burst of 4
	e, _ := newEmbedder(t, cfg)
	start := time.Now()
	if _, err := e.Embed(context.Background(), texts(10)); err != nil {
		t.Fatal(err)
	}
	// 4 at once, then 6 more at 4/s.
	if d := time.Since(start); d < 1400*time.Millisecond {
		t.Errorf("10 requests at 240/min took %s", d)
	}

	srv.Reset()
	cfg = fastConfig(srv)
	cfg.TokensPerMinute = 1200 // 20 per second, and a bucket of one request
	cfg.MaxBatchTokens = 20
	e, _ = newEmbedder(t, cfg)
	in := make([]string, 8)
	for i := range in {
		in[i] = strings.Repeat("token ", 10) // 10 tokens each
	}
	start = time.Now()
	if _, err := e.Embed(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	// 20 tokens at once, the other 60 at 20/s.
	if d := time.Since(start); d < 2800*time.Millisecond {
		t.Errorf("80 tokens at 1200/min took %s", d)
	}
}

func TestOpenAITruncatesOverlongInputs(t *testing.T) {
	srv := newServer(t, openaitest.Options{MaxInputTokens: 10})
	cfg := fastConfig(srv)
	cfg.MaxInputTokens = 10
	e, o := newEmbedder(t, cfg)
	long := strings.Repeat("alpha beta ", 20)
	if _, err := e.Embed(context.Background(), []string{long, "short"}); err != nil {
		t.Fatal(err)
	}
	r := srv.Requests()[0]
	if r.Inputs[0] != transform.TruncateTokens(long, 10) || transform.CountTokens(r.Inputs[0]) != 10 || r.Inputs[1] != "short" {
		t.Errorf("sent %q", r.Inputs)
	}
	if o.get(func(o *observer) int { return o.truncated }) != 1 {
		t.Errorf("truncated %d", o.truncated)
	}
	if got := transform.TruncateTokens("héllo wörld", 2); !strings.HasPrefix("héllo wörld", got) || transform.CountTokens(got) > 2 {
		t.Errorf("TruncateTokens: %q", got)
	}
}

func statuses(reqs []openaitest.Request) []int {
	out := make([]int, len(reqs))
	for i, r := range reqs {
		out[i] = r.Status
	}
	return out
}

// A provider's error message that quotes the key is masked before it is
// logged or returned.
func TestOpenAINeverLogsTheKey(t *testing.T) {
	srv := newServer(t, openaitest.Options{})
	srv.Hook(func(r *openaitest.Request) *openaitest.Fault {
		return &openaitest.Fault{Status: 401, Body: `{"error":{"message":"Incorrect API key provided: sk-test-secret-key."}}`}
	})
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	cfg := fastConfig(srv)
	cfg.APIKey = "sk-test-secret-key"
	cfg.Logger = &log
	e, _ := newEmbedder(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := e.Embed(ctx, []string{"a"}); err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(buf.String(), "sk-test-secret-key") || !strings.Contains(buf.String(), "Incorrect API key provided: xxxxx") {
		t.Errorf("log: %s", buf.String())
	}
}

// Vectors travel as base64 by default, as float arrays from a provider that
// refuses the parameter (after one refusal, for good), and decode to the
// same values either way.
func TestOpenAIEncodingFormat(t *testing.T) {
	for _, c := range []struct {
		name     string
		noBase64 bool
		format   string
		sent     []string // encoding_format of each request
	}{
		{"auto, provider takes base64", false, embedding.EncodingAuto, []string{"base64", "base64"}},
		{"auto, provider refuses base64", true, embedding.EncodingAuto, []string{"base64", "", ""}},
		{"float", false, embedding.EncodingFloat, []string{"", ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := openaitest.New(openaitest.Options{Dimensions: 8, NoBase64: c.noBase64})
			defer srv.Close()
			e, err := embedding.NewOpenAIEmbedder(embedding.OpenAIConfig{BaseURL: srv.URL(), Model: "m", Dimensions: 8,
				EncodingFormat: c.format, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			want, _ := embedding.NewHashEmbedder(8).Embed(context.Background(), []string{"a", "b"})
			for range 2 {
				got, err := e.Embed(context.Background(), []string{"a", "b"})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("vectors %v, want %v", got, want)
				}
			}
			var sent []string
			for _, r := range srv.Requests() {
				sent = append(sent, r.EncodingFormat)
			}
			if !reflect.DeepEqual(sent, c.sent) {
				t.Fatalf("encoding_format of the requests %q, want %q", sent, c.sent)
			}
		})
	}
}

// With Concurrency, the requests of one Embed call go out together.
func TestOpenAIConcurrency(t *testing.T) {
	var inFlight, most atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		if n >= 3 {
			once.Do(func() { close(release) })
		}
		select {
		case <-release: // three at once: the client sends concurrently
		case <-time.After(2 * time.Second): // a sequential client gets here
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"data":[{"index":0,"embedding":[1,0,0,0]}]}`)
	}))
	defer srv.Close()
	e, err := embedding.NewOpenAIEmbedder(embedding.OpenAIConfig{BaseURL: srv.URL, Model: "m", Dimensions: 4, BatchSize: 1, Concurrency: 3, EncodingFormat: embedding.EncodingFloat})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Embed(context.Background(), []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	if most.Load() < 3 {
		t.Fatalf("at most %d requests in flight, want 3", most.Load())
	}
}
