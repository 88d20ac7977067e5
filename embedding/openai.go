package embedding

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/cdc-indexer/cdc-indexer/internal/backoff"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// Defaults of OpenAIConfig's zero values.
const (
	DefaultOpenAIBatchSize       = 128
	DefaultOpenAIMaxBatchTokens  = 100_000
	DefaultOpenAIMaxInputTokens  = 8191
	DefaultOpenAITimeout         = 30 * time.Second
	DefaultOpenAIInitialBackoff  = 500 * time.Millisecond
	DefaultOpenAIMaxBackoff      = time.Minute
	DefaultOpenAIBreakerFailures = 5
	DefaultOpenAIBreakerCooldown = 30 * time.Second
	DefaultOpenAIIsolateAttempts = 5
	// maxRetryAfter caps how long one Retry-After answer can pause requests.
	maxRetryAfter = 10 * time.Minute
	// probeText is sent alone to tell a rejected input from a provider
	// that rejects everything (a wrong model name, say).
	probeText = "ping"
	// probeValid is how long a successful probe vouches for the provider.
	probeValid = time.Minute
)

// OpenAIConfig configures an OpenAIEmbedder. Zero values take the defaults
// above.
type OpenAIConfig struct {
	// BaseURL is the API root: requests go to BaseURL + "/embeddings" when
	// its path ends in a version ("https://api.openai.com/v1"), to
	// BaseURL + "/v1/embeddings" when it has no path
	// ("http://127.0.0.1:8000"), and to BaseURL itself when its path already
	// ends in "/embeddings".
	BaseURL    string
	Model      string
	Dimensions int
	// SendDimensions puts "dimensions" in each request, asking the model to
	// shorten its vectors (text-embedding-3 models support it; many others
	// reject the field).
	SendDimensions bool
	// APIKey is sent as "Authorization: Bearer <key>" when not empty.
	APIKey string
	// Headers are added to every request (and may replace Authorization,
	// e.g. with Azure's "api-key").
	Headers map[string]string

	BatchSize      int // most inputs per request
	MaxBatchTokens int // most cl100k_base tokens per request
	// MaxInputTokens is the model's input limit; a longer input is
	// truncated to its first MaxInputTokens tokens (see Embed).
	MaxInputTokens int

	RequestsPerMinute int // 0: unlimited
	TokensPerMinute   int // 0: unlimited

	Timeout         time.Duration // per request
	InitialBackoff  time.Duration // first wait after a failed request
	MaxBackoff      time.Duration // longest wait between attempts, and longest breaker cooldown
	BreakerFailures int           // consecutive failures that open the circuit
	BreakerCooldown time.Duration // how long an open circuit waits before a trial request
	// IsolateAttempts is how many times in a row one request may fail
	// (5xx, timeout, malformed answer; a 429 does not count) before the
	// provider is asked a one-word probe: if the probe is answered, the
	// request's content is at fault, not the provider. Default: 5, or
	// BreakerFailures if lower, which keeps a request failing by its
	// content from opening the circuit for all when nothing else is sent.
	IsolateAttempts int

	// Concurrency is how many requests one Embed call sends at once when
	// its inputs take several (default 1): raise it to keep a fleet of
	// inference servers behind one endpoint busy.
	Concurrency int
	// EncodingFormat is how vectors travel: EncodingAuto (the default),
	// EncodingBase64 or EncodingFloat (openai_wire.go).
	EncodingFormat string

	HTTPClient *http.Client // default: a client without overall timeout (Timeout bounds each request)
	Logger     *zerolog.Logger
}

// EmbedObserver is told what an embedder does, for metrics. model is the
// embedder's ModelID. Methods are called concurrently and must not block.
type EmbedObserver interface {
	// EmbedRequest reports one HTTP attempt: its outcome ("200", "429",
	// "500", ..., "timeout" or "error") and the inputs and tokens it carried.
	EmbedRequest(model, outcome string, inputs, tokens int)
	// EmbedRetry reports a wait before another attempt, with its reason
	// (an HTTP status, "timeout", "error", "invalid_response").
	EmbedRetry(model, reason string)
	// EmbedCircuit reports the circuit breaker opening or closing.
	EmbedCircuit(model string, open bool)
	// EmbedTruncated reports an input cut to the model's input limit.
	EmbedTruncated(model string)
}

// OpenAIEmbedder embeds through any OpenAI-compatible /v1/embeddings
// endpoint (provider openai).
//
// Each Embed call cuts its inputs into requests of at most BatchSize inputs
// and MaxBatchTokens tokens (counted with cl100k_base, which is what
// OpenAI's embedding models use; other providers' tokenizers differ a
// little, so leave them some headroom). An input longer than
// MaxInputTokens is truncated to its first MaxInputTokens tokens at a
// token boundary; the chunker keeps chunks below that limit, so this only
// guards against a misconfiguration. An empty input is sent as a single
// space, since OpenAI rejects empty strings.
//
// Requests wait for the requests-per-minute and tokens-per-minute limiters.
// A 429 is retried after its Retry-After (or retry-after-ms) and pauses
// every request of this embedder until then; 5xx answers, timeouts,
// connection errors, authentication failures and malformed answers are
// retried with jittered exponential backoff. After BreakerFailures
// consecutive failures the circuit opens: every Embed call waits, sending
// nothing, until BreakerCooldown has passed; then one trial request goes
// out, and its success closes the circuit while its failure reopens it for
// twice as long (at most MaxBackoff). So Embed blocks, and the pipeline
// behind it pauses, for as long as the provider is down, and resumes by
// itself; only ctx ends the wait.
//
// A 400, 413 or 422 answer means the provider refuses an input. The
// request is split in halves, recursively, until the refused inputs stand
// alone; a refused single input is then checked against a one-word probe
// request: if the probe succeeds the input is at fault and is reported in
// an InputErrors error while every other input gets its vector; if the
// probe is refused too, the provider refuses everything (a wrong model
// name, unsupported dimensions), which is retried like an outage.
//
// Some inputs fail without a 4xx: a self-hosted model whose own tokenizer
// chokes on one text answers 500, or times out, for that text forever. A
// request that failed IsolateAttempts times in a row is checked the same
// way: if the one-word probe is answered, the request is split in halves
// (each tried a couple of times), down to the inputs that fail alone, which
// are reported in InputErrors once they failed IsolateAttempts times
// themselves; if the probe fails too, the provider is down and the request
// keeps being retried.
//
// Answers are matched to inputs by their "index" and must hold exactly one
// vector of length Dimensions per input.
type OpenAIEmbedder struct {
	cfg      OpenAIConfig
	endpoint string
	client   *http.Client
	log      zerolog.Logger
	rpm      *rate.Limiter // nil when unlimited
	tpm      *rate.Limiter // nil when unlimited
	budget   int           // token budget of one request
	breaker  *breaker

	observer  observerBox
	probeMu   sync.Mutex
	probeOKAt time.Time
	floats    atomic.Bool // ask for float arrays, not base64 (EncodingFormat)
}

type observerBox struct {
	mu sync.RWMutex
	o  EmbedObserver
}

func (b *observerBox) get() EmbedObserver {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.o
}

// NewOpenAIEmbedder checks cfg and returns the embedder. It sends nothing.
func NewOpenAIEmbedder(cfg OpenAIConfig) (*OpenAIEmbedder, error) {
	if cfg.Model == "" {
		return nil, errors.New("openai embedder: model is empty")
	}
	if cfg.Dimensions < 1 {
		return nil, fmt.Errorf("openai embedder: dimensions must be positive, got %d", cfg.Dimensions)
	}
	endpoint, err := EmbeddingsURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("openai embedder: %w", err)
	}
	setDefault(&cfg.BatchSize, DefaultOpenAIBatchSize)
	setDefault(&cfg.MaxBatchTokens, DefaultOpenAIMaxBatchTokens)
	setDefault(&cfg.MaxInputTokens, DefaultOpenAIMaxInputTokens)
	setDefault(&cfg.BreakerFailures, DefaultOpenAIBreakerFailures)
	setDefault(&cfg.Timeout, DefaultOpenAITimeout)
	setDefault(&cfg.InitialBackoff, DefaultOpenAIInitialBackoff)
	setDefault(&cfg.MaxBackoff, DefaultOpenAIMaxBackoff)
	setDefault(&cfg.BreakerCooldown, DefaultOpenAIBreakerCooldown)
	setDefault(&cfg.IsolateAttempts, min(DefaultOpenAIIsolateAttempts, cfg.BreakerFailures))
	if cfg.InitialBackoff > cfg.MaxBackoff {
		cfg.InitialBackoff = cfg.MaxBackoff
	}
	setDefault(&cfg.Concurrency, 1)
	setDefault(&cfg.EncodingFormat, EncodingAuto)
	switch cfg.EncodingFormat {
	case EncodingAuto, EncodingBase64, EncodingFloat:
	default:
		return nil, fmt.Errorf("openai embedder: encoding format %q: want auto, base64 or float", cfg.EncodingFormat)
	}
	e := &OpenAIEmbedder{cfg: cfg, endpoint: endpoint, client: cfg.HTTPClient, log: zerolog.Nop()}
	if e.client == nil {
		e.client = &http.Client{Transport: newTransport(cfg.Concurrency)}
	}
	e.floats.Store(cfg.EncodingFormat == EncodingFloat)
	if cfg.Logger != nil {
		e.log = *cfg.Logger
	}
	e.budget = max(cfg.MaxBatchTokens, 1)
	if cfg.RequestsPerMinute > 0 {
		// One second's worth may go at once.
		e.rpm = rate.NewLimiter(rate.Limit(float64(cfg.RequestsPerMinute)/60), max(1, cfg.RequestsPerMinute/60))
	}
	if cfg.TokensPerMinute > 0 {
		// A request must fit in the bucket: the budget shrinks to a minute's
		// worth, and the bucket holds at least one full request.
		e.budget = min(e.budget, cfg.TokensPerMinute)
		e.tpm = rate.NewLimiter(rate.Limit(float64(cfg.TokensPerMinute)/60), max(e.budget, cfg.TokensPerMinute/60))
	}
	e.breaker = newBreaker(cfg.BreakerFailures, cfg.BreakerCooldown, cfg.MaxBackoff, func(open bool) {
		if open {
			e.log.Error().Str("model", cfg.Model).Dur("cooldown", cfg.BreakerCooldown).
				Msg("embedding provider keeps failing: circuit open, embedding paused")
		} else {
			e.log.Info().Str("model", cfg.Model).Msg("embedding provider answers again: circuit closed, embedding resumed")
		}
		if o := e.observer.get(); o != nil {
			o.EmbedCircuit(e.ModelID(), open)
		}
	})
	return e, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// EmbeddingsURL resolves a base_url to the embeddings endpoint (see
// OpenAIConfig.BaseURL).
func EmbeddingsURL(base string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil {
		return "", fmt.Errorf("base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("base URL %q: want http(s)://host[:port][/path]", base)
	}
	p := strings.TrimRight(u.Path, "/")
	switch {
	case strings.HasSuffix(p, "/embeddings"):
	case p == "":
		p = "/v1/embeddings"
	default:
		p += "/embeddings"
	}
	u.Path, u.RawPath = p, ""
	return u.String(), nil
}

// SetObserver directs the embedder's events to o (nil: nowhere).
func (e *OpenAIEmbedder) SetObserver(o EmbedObserver) {
	e.observer.mu.Lock()
	e.observer.o = o
	e.observer.mu.Unlock()
}

// ModelID is "openai/<model>/<dimensions>".
func (e *OpenAIEmbedder) ModelID() string {
	return fmt.Sprintf("openai/%s/%d", e.cfg.Model, e.cfg.Dimensions)
}

// Dimensions returns the vector length.
func (e *OpenAIEmbedder) Dimensions() int { return e.cfg.Dimensions }

// Model is the provider's model name.
func (e *OpenAIEmbedder) Model() string { return e.cfg.Model }

// CircuitOpen reports whether embedding is paused because the provider
// keeps failing.
func (e *OpenAIEmbedder) CircuitOpen() bool { return e.breaker.isOpen() }

// embedInput is one text of an Embed call as it is sent.
type embedInput struct {
	index  int // position in Embed's texts
	text   string
	tokens int
}

// Embed returns one vector per text, in order; see OpenAIEmbedder for
// batching, retries and rejected inputs.
func (e *OpenAIEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	inputs := make([]embedInput, len(texts))
	for i, t := range texts {
		if t == "" {
			t = " "
		}
		n := transform.CountTokens(t)
		if n > e.cfg.MaxInputTokens {
			t = transform.TruncateTokens(t, e.cfg.MaxInputTokens)
			n = transform.CountTokens(t)
			e.log.Warn().Str("model", e.cfg.Model).Int("max_input_tokens", e.cfg.MaxInputTokens).
				Msg("input longer than the model's limit truncated")
			if o := e.observer.get(); o != nil {
				o.EmbedTruncated(e.ModelID())
			}
		}
		inputs[i] = embedInput{index: i, text: t, tokens: n}
	}
	out := make([][]float32, len(texts))
	var rejected InputErrors
	batches := e.plan(inputs)
	if e.cfg.Concurrency <= 1 || len(batches) == 1 {
		for _, batch := range batches {
			if err := e.embedBatch(ctx, batch, out, &rejected, e.cfg.IsolateAttempts); err != nil {
				return nil, err
			}
		}
	} else {
		// Batches fill disjoint entries of out; each collects its own
		// rejections.
		var mu sync.Mutex
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(e.cfg.Concurrency)
		for _, batch := range batches {
			g.Go(func() error {
				var mine InputErrors
				if err := e.embedBatch(gctx, batch, out, &mine, e.cfg.IsolateAttempts); err != nil {
					return err
				}
				mu.Lock()
				rejected = append(rejected, mine...)
				mu.Unlock()
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	if len(rejected) > 0 {
		sortInputErrors(rejected)
		return out, rejected
	}
	return out, nil
}

func sortInputErrors(e InputErrors) {
	for i := 1; i < len(e); i++ {
		for j := i; j > 0 && e[j].Index < e[j-1].Index; j-- {
			e[j], e[j-1] = e[j-1], e[j]
		}
	}
}

// plan cuts inputs, in order, into requests within the count and token
// limits. An input above the token budget goes alone.
func (e *OpenAIEmbedder) plan(inputs []embedInput) [][]embedInput {
	var out [][]embedInput
	start, tokens := 0, 0
	for i, in := range inputs {
		if i > start && (i-start == e.cfg.BatchSize || tokens+in.tokens > e.budget) {
			out = append(out, inputs[start:i])
			start, tokens = i, 0
		}
		tokens += in.tokens
	}
	if start < len(inputs) {
		out = append(out, inputs[start:])
	}
	return out
}

// embedBatch embeds batch into out, bisecting on rejected inputs and on
// requests that keep failing while the provider answers (isolate: see send).
func (e *OpenAIEmbedder) embedBatch(ctx context.Context, batch []embedInput, out [][]float32, rejected *InputErrors, isolate int) error {
	vecs, err := e.send(ctx, batch, isolate)
	if err == nil {
		for i, v := range vecs {
			out[batch[i].index] = v
		}
		return nil
	}
	var bad *badRequestError
	var failing *failingInputError
	if !errors.As(err, &bad) && !errors.As(err, &failing) {
		return err
	}
	if len(batch) > 1 {
		// Halves of a request known to fail get a couple of attempts
		// each; an input alone gets the full IsolateAttempts before it
		// is blamed.
		mid := len(batch) / 2
		for _, half := range [][]embedInput{batch[:mid], batch[mid:]} {
			n := min(2, e.cfg.IsolateAttempts)
			if len(half) == 1 {
				n = e.cfg.IsolateAttempts
			}
			if err := e.embedBatch(ctx, half, out, rejected, n); err != nil {
				return err
			}
		}
		return nil
	}
	if failing != nil {
		// send has already seen the probe answered.
		e.log.Warn().Str("model", e.cfg.Model).Int("attempts", failing.attempts).Err(failing.last).
			Msg("embedding provider keeps failing on an input it answers otherwise")
		*rejected = append(*rejected, &InputError{Index: batch[0].index, Err: failing})
		return nil
	}
	// One input refused: its fault, or does the provider refuse anything?
	if err := e.probe(ctx); err != nil {
		return err
	}
	e.log.Warn().Str("model", e.cfg.Model).Int("status", bad.status).Str("error", bad.message).
		Msg("embedding provider rejected an input")
	*rejected = append(*rejected, &InputError{Index: batch[0].index, Err: bad})
	return nil
}

// probe checks that the provider embeds a harmless text; a success is
// trusted for probeValid.
func (e *OpenAIEmbedder) probe(ctx context.Context) error {
	e.probeMu.Lock()
	defer e.probeMu.Unlock()
	if time.Since(e.probeOKAt) < probeValid {
		return nil
	}
	for attempt := 1; ; attempt++ {
		_, err := e.send(ctx, []embedInput{{text: probeText, tokens: transform.CountTokens(probeText)}}, 0)
		if err == nil {
			e.probeOKAt = time.Now()
			return nil
		}
		var bad *badRequestError
		if !errors.As(err, &bad) {
			return err
		}
		// The provider refuses a one-word input: the configuration (model,
		// dimensions, ...) is wrong, not the data. Nothing is dropped;
		// embedding waits like during an outage until it is accepted.
		e.log.Error().Str("model", e.cfg.Model).Int("status", bad.status).Str("error", bad.message).
			Msg("embedding provider rejects every input, even a one-word probe: check embedding.model, embedding.dimensions and embedding.send_dimensions")
		e.breaker.failure(false)
		if err := sleepCtx(ctx, e.backoff(attempt)); err != nil {
			return err
		}
	}
}

// answersProbe sends the one-word probe once, outside the breaker (which
// this request's own failures may be about to open), and reports whether
// the provider answered it.
func (e *OpenAIEmbedder) answersProbe(ctx context.Context) bool {
	_, err := e.do(ctx, []embedInput{{text: probeText, tokens: transform.CountTokens(probeText)}}, transform.CountTokens(probeText))
	return err == nil
}

// backoff is the jittered wait after the attempt-th consecutive failure:
// between half and all of InitialBackoff*2^(attempt-1), at most MaxBackoff.
func (e *OpenAIEmbedder) backoff(attempt int) time.Duration {
	return backoff.Policy{Initial: e.cfg.InitialBackoff / 2, Max: e.cfg.MaxBackoff / 2, Jitter: 1}.Delay(attempt)
}

// badRequestError is the provider refusing a request's content (400, 413,
// 422).
type badRequestError struct {
	status  int
	message string
}

func (e *badRequestError) Error() string {
	return fmt.Sprintf("embedding provider answered %d: %s", e.status, e.message)
}

// Permanent reports that sending the same input again cannot help.
func (e *badRequestError) Permanent() bool { return true }

// attemptError is a failed attempt that may succeed later.
type attemptError struct {
	reason     string // status code, "timeout", "error", "invalid_response"
	err        error
	retryAfter time.Duration // from a 429's headers
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

// failingInputError is a request that failed attempts times in a row while
// the provider answered a one-word probe: its content is at fault.
type failingInputError struct {
	attempts int
	last     error
}

func (e *failingInputError) Error() string {
	return fmt.Sprintf("embedding provider failed %d times in a row on this input while it answered a probe: %v", e.attempts, e.last)
}

// Permanent reports that sending the same input again does not help.
func (e *failingInputError) Permanent() bool { return true }

// send embeds one request's inputs, retrying until it succeeds, the
// provider refuses the content (badRequestError), or ctx ends. With
// isolate > 0, after every isolate failed attempts in a row the provider is
// probed; if it answers, send gives up with a failingInputError.
func (e *OpenAIEmbedder) send(ctx context.Context, batch []embedInput, isolate int) ([][]float32, error) {
	tokens := 0
	for _, in := range batch {
		tokens += in.tokens
	}
	failures := 0 // in a row, not counting rate limits
	for attempt := 1; ; attempt++ {
		probe, err := e.breaker.acquire(ctx)
		if err != nil {
			return nil, err
		}
		if err := e.limit(ctx, tokens); err != nil {
			e.breaker.release(probe)
			return nil, err
		}
		vecs, err := e.do(ctx, batch, tokens)
		if err == nil {
			e.breaker.success(probe)
			return vecs, nil
		}
		var bad *badRequestError
		if errors.As(err, &bad) {
			e.breaker.success(probe) // the provider is up; it just refuses this
			return nil, err
		}
		if ctx.Err() != nil {
			e.breaker.release(probe)
			return nil, ctx.Err()
		}
		var ae *attemptError
		if !errors.As(err, &ae) {
			ae = &attemptError{reason: "error", err: err}
		}
		wait := e.backoff(attempt)
		if ae.reason == "429" {
			// Rate limited: the provider is up, and said how long to wait.
			e.breaker.release(probe)
			if ae.retryAfter > 0 {
				wait = ae.retryAfter + time.Duration(rand.Int64N(int64(ae.retryAfter)/10+1))
				e.breaker.pause(time.Now().Add(ae.retryAfter))
			}
		} else if failures++; isolate > 0 && failures%isolate == 0 && e.answersProbe(ctx) {
			e.breaker.success(probe) // the provider is up; this content fails
			return nil, &failingInputError{attempts: failures, last: ae.err}
		} else {
			e.breaker.failure(probe)
		}
		if o := e.observer.get(); o != nil {
			o.EmbedRetry(e.ModelID(), ae.reason)
		}
		ev := e.log.Warn()
		if attempt > 1 && attempt%10 == 0 {
			ev = e.log.Error()
		}
		ev.Err(ae.err).Str("model", e.cfg.Model).Int("inputs", len(batch)).Int("attempt", attempt).
			Dur("wait", wait).Msg("embedding request failed; retrying")
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// limit waits for the rate limiters.
func (e *OpenAIEmbedder) limit(ctx context.Context, tokens int) error {
	if e.rpm != nil {
		if err := e.rpm.Wait(ctx); err != nil {
			return waitErr(ctx, err)
		}
	}
	if e.tpm != nil {
		if err := e.tpm.WaitN(ctx, min(tokens, e.tpm.Burst())); err != nil {
			return waitErr(ctx, err)
		}
	}
	return nil
}

// waitErr turns a limiter's "would exceed context deadline" into the
// context's own error once it is done.
func waitErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

type embeddingsRequest struct {
	Input          []string `json:"input"`
	Model          string   `json:"model"`
	Dimensions     int      `json:"dimensions,omitempty"`
	EncodingFormat string   `json:"encoding_format,omitempty"`
}

type embeddingsResponse struct {
	Data []struct {
		Index     *int   `json:"index"`
		Embedding vector `json:"embedding"`
	} `json:"data"`
}

type errorResponse struct {
	Error struct {
		Message string `json:"message"`
	} `json:"error"`
	Message string `json:"message"`
	Detail  any    `json:"detail"`
}

// do makes one HTTP attempt.
func (e *OpenAIEmbedder) do(ctx context.Context, batch []embedInput, tokens int) ([][]float32, error) {
	req := embeddingsRequest{Input: make([]string, len(batch)), Model: e.cfg.Model}
	for i, in := range batch {
		req.Input[i] = in.text
	}
	if e.cfg.SendDimensions {
		req.Dimensions = e.cfg.Dimensions
	}
	base64Asked := !e.floats.Load()
	if base64Asked {
		req.EncodingFormat = EncodingBase64
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(actx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	if e.cfg.APIKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+e.cfg.APIKey)
	}
	for k, v := range e.cfg.Headers {
		hreq.Header.Set(k, v)
	}
	observe := func(outcome string) {
		if o := e.observer.get(); o != nil {
			o.EmbedRequest(e.ModelID(), outcome, len(batch), tokens)
		}
	}
	resp, err := e.client.Do(hreq)
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			observe("timeout")
			return nil, &attemptError{reason: "timeout", err: fmt.Errorf("embedding request to %s timed out after %s", e.endpoint, e.cfg.Timeout)}
		}
		observe("error")
		return nil, &attemptError{reason: "error", err: fmt.Errorf("embedding request to %s: %w", e.endpoint, err)}
	}
	defer resp.Body.Close()
	limit := maxAnswerBytes(len(batch), e.cfg.Dimensions)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err == nil && int64(len(raw)) > limit {
		observe("invalid_response")
		return nil, &attemptError{reason: "invalid_response", err: fmt.Errorf("embedding provider's answer to %d inputs is larger than %d bytes: not an embeddings answer", len(batch), limit)}
	}
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			observe("timeout")
			return nil, &attemptError{reason: "timeout", err: fmt.Errorf("embedding request to %s timed out after %s reading the answer", e.endpoint, e.cfg.Timeout)}
		}
		observe("error")
		return nil, &attemptError{reason: "error", err: fmt.Errorf("embedding request to %s: read answer: %w", e.endpoint, err)}
	}
	status := strconv.Itoa(resp.StatusCode)
	observe(status)
	switch {
	case resp.StatusCode == http.StatusOK:
	case base64Asked && e.cfg.EncodingFormat == EncodingAuto && (resp.StatusCode == http.StatusBadRequest ||
		resp.StatusCode == http.StatusUnprocessableEntity) && refusesEncodingFormat(errorMessage(raw)):
		// A provider that does not know base64 answers: ask for floats
		// from now on, and send this request again at once.
		e.floats.Store(true)
		e.log.Info().Str("model", e.cfg.Model).Msg("the embedding provider does not take encoding_format base64: asking for float arrays")
		return e.do(ctx, batch, tokens)
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusRequestEntityTooLarge ||
		resp.StatusCode == http.StatusUnprocessableEntity:
		return nil, &badRequestError{status: resp.StatusCode, message: e.scrub(errorMessage(raw))}
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, &attemptError{reason: status, retryAfter: retryAfter(resp.Header, time.Now()),
			err: fmt.Errorf("embedding provider rate-limited the request (429): %s", e.scrub(errorMessage(raw)))}
	default:
		return nil, &attemptError{reason: status, err: fmt.Errorf("embedding provider answered %d: %s", resp.StatusCode, e.scrub(errorMessage(raw)))}
	}
	vecs, err := e.parse(raw, len(batch))
	if err != nil {
		return nil, &attemptError{reason: "invalid_response", err: err}
	}
	return vecs, nil
}

// parse checks an answer against the request: one vector per input, each
// index once, each of the configured length.
func (e *OpenAIEmbedder) parse(raw []byte, n int) ([][]float32, error) {
	var r embeddingsResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("embedding provider's answer is not an embeddings response: %w", err)
	}
	if len(r.Data) != n {
		return nil, fmt.Errorf("embedding provider answered %d embeddings for %d inputs", len(r.Data), n)
	}
	out := make([][]float32, n)
	for i, d := range r.Data {
		idx := i
		if d.Index != nil {
			idx = *d.Index
		}
		if idx < 0 || idx >= n {
			return nil, fmt.Errorf("embedding provider answered index %d for %d inputs", idx, n)
		}
		if out[idx] != nil {
			return nil, fmt.Errorf("embedding provider answered index %d twice", idx)
		}
		if len(d.Embedding) != e.cfg.Dimensions {
			return nil, fmt.Errorf("model %s returned vectors of length %d, but embedding.dimensions is %d: set embedding.dimensions to %d, or let the model shorten its vectors (embedding.send_dimensions)",
				e.cfg.Model, len(d.Embedding), e.cfg.Dimensions, len(d.Embedding))
		}
		out[idx] = []float32(d.Embedding)
	}
	return out, nil
}

// scrub masks the API key and header values in a provider's message (a
// 401 may quote the key it got): secrets are never logged.
func (e *OpenAIEmbedder) scrub(msg string) string {
	secrets := []string{e.cfg.APIKey}
	for _, v := range e.cfg.Headers {
		secrets = append(secrets, v)
	}
	for _, sec := range secrets {
		if len(sec) >= 4 {
			msg = strings.ReplaceAll(msg, sec, "xxxxx")
		}
	}
	return msg
}

// errorMessage extracts a provider's error text, shortened.
func errorMessage(raw []byte) string {
	var er errorResponse
	msg := ""
	if json.Unmarshal(raw, &er) == nil {
		switch {
		case er.Error.Message != "":
			msg = er.Error.Message
		case er.Message != "":
			msg = er.Message
		case er.Detail != nil:
			msg = fmt.Sprint(er.Detail)
		}
	}
	if msg == "" {
		msg = strings.TrimSpace(string(raw))
	}
	if msg == "" {
		return "(no message)"
	}
	if len(msg) > 500 {
		msg = strings.ToValidUTF8(msg[:500], "") + "..." // no half character
	}
	return msg
}

// retryAfter reads how long a 429 asks to wait: retry-after-ms, or
// Retry-After in seconds or as an HTTP date; 0 when absent.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return min(time.Duration(ms*float64(time.Millisecond)), maxRetryAfter)
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return min(time.Duration(s*float64(time.Second)), maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error { return backoff.Sleep(ctx, d) }
