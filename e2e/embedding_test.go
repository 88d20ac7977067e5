package e2e

import (
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tiktokenassets "github.com/pkoukk/tiktoken-go-loader/assets"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/openaitest"
	docload "github.com/cdc-indexer/cdc-indexer/internal/workload"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

const fakeDims = 16

// fakeProvider is an in-process OpenAI-compatible embedding server.
func fakeProvider(t *testing.T, opts openaitest.Options) *openaitest.Server {
	t.Helper()
	if opts.Dimensions == 0 {
		opts.Dimensions = fakeDims
	}
	srv := openaitest.New(opts)
	t.Cleanup(srv.Close)
	return srv
}

// requireProviderVectors checks that every object of m carries the vector
// the fake provider computes for its text.
func (h *harness) requireProviderVectors(m mapping) {
	h.t.Helper()
	ref := embedding.NewHashEmbedder(fakeDims)
	n := 0
	for key, chunks := range h.indexed(m) {
		for _, c := range chunks {
			text := c.Text
			if text == "" {
				text = " "
			}
			want, _ := ref.Embed(context.Background(), []string{text})
			if len(c.Vector) != fakeDims {
				h.t.Fatalf("row %s chunk %d: vector of length %d", key, c.ChunkIndex, len(c.Vector))
			}
			for i := range c.Vector {
				if math.Abs(float64(c.Vector[i]-want[0][i])) > 1e-5 {
					h.t.Fatalf("row %s chunk %d: the vector is not the provider's vector of the chunk's text", key, c.ChunkIndex)
				}
			}
			n++
		}
	}
	if n == 0 {
		h.t.Fatal("no objects")
	}
}

const openAIModel = `model="openai/test-embed/16"`

// Provider openai: batches within the limits, the provider's vectors land,
// a metadata-only change sends nothing, and 429 (with Retry-After) and 5xx
// answers are retried.
func TestOpenAIProviderStreams(t *testing.T) {
	srv := fakeProvider(t, openaitest.Options{MaxInputs: 8, MaxTokens: 400})
	h := newHarness(t, articlesSchema, articles())
	h.useOpenAI(srv.URL(), fakeDims, map[string]any{"batch_size": 8, "max_batch_tokens": 400, "price_per_million_tokens": 0.02})
	h.start()
	m := h.maps[0]

	var values []string
	for i := 1; i <= 40; i++ {
		body := strings.Repeat(fmt.Sprintf("Sentence %d of a longer article body. ", i), 1+i%12)
		values = append(values, fmt.Sprintf("(%d, 'Title %d', '%s', 'author%d', %d, 'n')", i, i, body, i%3, i))
	}
	h.exec("INSERT INTO articles VALUES " + strings.Join(values, ", "))
	h.requireInSync("insert")
	h.requireProviderVectors(m)

	reqs, _, tokens := srv.Usage()
	for i, r := range srv.Requests() {
		if len(r.Inputs) > 8 || r.Tokens > 400 || r.Model != "test-embed" || r.Dimensions != fakeDims {
			t.Errorf("request %d: %d inputs, %d tokens, model %q, dimensions %d", i, len(r.Inputs), r.Tokens, r.Model, r.Dimensions)
		}
	}
	if got := h.metric("cdc_indexer_embedding_tokens_total", openAIModel, `table="public.articles"`); got != float64(tokens) {
		t.Errorf("tokens metric %v, provider received %d", got, tokens)
	}
	if got := h.metric("cdc_indexer_embedding_requests_total", openAIModel, `outcome="200"`); got != float64(reqs) {
		t.Errorf("requests metric %v, provider answered %d", got, reqs)
	}
	if got, want := h.metric("cdc_indexer_embedding_cost_total", openAIModel), float64(tokens)*0.02/1e6; math.Abs(got-want) > 1e-12 {
		t.Errorf("cost metric %v, want %v", got, want)
	}
	var stTokens int64
	if err := h.db.QueryRow(context.Background(), `SELECT tokens FROM cdc_indexer.embedding_usage WHERE source_table = 'public.articles'`).Scan(&stTokens); err != nil || stTokens != int64(tokens) {
		t.Errorf("embedding_usage tokens %d (%v), want %d", stTokens, err, tokens)
	}

	// Metadata only: properties rewritten, vectors reused, nothing sent.
	before := len(srv.Requests())
	h.exec(`UPDATE articles SET author = 'someone else' WHERE id <= 10`)
	h.requireInSync("metadata-only update")
	if n := len(srv.Requests()) - before; n != 0 {
		t.Errorf("a metadata-only change sent %d embedding requests", n)
	}

	// Rate limited, then two server errors: retried, nothing lost.
	srv.FailNext(openaitest.RetryAfter(time.Second), openaitest.Fault{Status: 500}, openaitest.Fault{Status: 502})
	before = len(srv.Requests())
	h.exec(`INSERT INTO articles VALUES (100, 'After the storm', 'A new body that was never embedded before.', 'x', 1, 'n')`)
	h.requireInSync("insert through 429 and 5xx")
	h.requireProviderVectors(m)
	got := srv.Requests()[before:]
	if len(got) != 4 || got[0].Status != 429 || got[1].Status != 500 || got[2].Status != 502 || got[3].Status != 200 {
		t.Fatalf("answers %v", statusesOf(got))
	}
	if gap := got[1].Time.Sub(got[0].Time); gap < time.Second {
		t.Errorf("retried %s after a 429 asking for 1s", gap)
	}
	for _, reason := range []string{"429", "500", "502"} {
		if h.metric("cdc_indexer_embedding_retries_total", openAIModel, `reason="`+reason+`"`) != 1 {
			t.Errorf("no retry counted for %s", reason)
		}
	}
}

func statusesOf(reqs []openaitest.Request) []int {
	out := make([]int, len(reqs))
	for i, r := range reqs {
		out[i] = r.Status
	}
	return out
}

// The provider goes down while changes arrive: the pipeline pauses (the
// slot does not move past them, the circuit opens), and once the provider
// is back everything is indexed with nothing lost.
func TestEmbeddingOutagePausesAndResumes(t *testing.T) {
	srv := fakeProvider(t, openaitest.Options{})
	h := newHarness(t, articlesSchema, articles())
	h.useOpenAI(srv.URL(), fakeDims, nil)
	h.start()
	h.exec(`INSERT INTO articles SELECT g, 'Title ' || g, 'Body ' || g, 'a', g, 'n' FROM generate_series(1, 20) g`)
	h.requireInSync("before the outage")

	srv.Down(openaitest.Fault{Status: 503, Body: `{"error":{"message":"overloaded"}}`})
	h.exec(`INSERT INTO articles SELECT g, 'New title ' || g, 'New body ' || g, 'b', g, 'n' FROM generate_series(21, 60) g`)
	firstCommit := h.currentLSN() // at or past the insert's commit
	h.exec(`UPDATE articles SET body = 'Edited during the outage' WHERE id <= 5`)
	h.exec(`DELETE FROM articles WHERE id BETWEEN 6 AND 8`)
	h.exec(`UPDATE articles SET body = body || ' again' WHERE id BETWEEN 30 AND 40`)
	deadline := time.Now().Add(20 * time.Second)
	for h.metric("cdc_indexer_embedding_circuit_open", openAIModel) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("circuit did not open while the provider was down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Not ready while paused (checked every 5 seconds).
	for code, body := h.readyz(); code != 503; code, body = h.readyz() {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answered %d %q while the provider was down", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c := h.confirmedLSN(); c >= firstCommit {
		t.Fatalf("slot confirmed %s, past the insert committed before %s, while the provider was down", c, firstCommit)
	}
	during := len(srv.Requests())

	srv.Up()
	h.requireInSync("after the outage")
	h.requireProviderVectors(h.maps[0])
	if h.metric("cdc_indexer_embedding_circuit_open", openAIModel) != 0 {
		t.Error("circuit still open after recovery")
	}
	for code, body := h.readyz(); code != 200; code, body = h.readyz() {
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("/readyz answered %d %q after recovery", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d requests during the outage", during)
}

// The provider refuses one row's text: that row is dead-lettered with its
// key, the other rows of the same transaction are indexed, and fixing the
// row indexes it.
func TestPoisonInputIsIsolated(t *testing.T) {
	srv := fakeProvider(t, openaitest.Options{})
	srv.Poison("POISON-PILL")
	h := newHarness(t, articlesSchema, articles())
	h.useOpenAI(srv.URL(), fakeDims, nil)
	h.start()
	m := h.maps[0]

	h.exec(`INSERT INTO articles SELECT g, 'Title ' || g, CASE WHEN g = 7 THEN 'This body holds a POISON-PILL.' ELSE 'Body ' || g END, 'a', g, 'n'
FROM generate_series(1, 20) g`)
	h.waitCaughtUp()
	if p := h.diff(m); len(p) != 1 || p[0] != "missing row 7" {
		t.Fatalf("want only row 7 missing, got:\n  %s", strings.Join(p, "\n  "))
	}
	var lsn, errText string
	err := h.db.QueryRow(context.Background(),
		`SELECT lsn::text, error FROM cdc_indexer.dead_letters WHERE source_table = 'public.articles' AND source_key = '7'`).Scan(&lsn, &errText)
	if err != nil {
		t.Fatalf("dead letter of row 7: %v", err)
	}
	if !strings.Contains(errText, "cannot be embedded") {
		t.Errorf("dead letter error %q does not carry the provider's reason", errText)
	}

	h.exec(`UPDATE articles SET body = 'A harmless body now.' WHERE id = 7`)
	h.requireInSync("row fixed")
	h.requireProviderVectors(m)
}

// 1,000 long documents, then 1,000 updates of which 70% touch no template
// column and 30% edit one paragraph: only the edited chunks are embedded
// again, also across a restart (the cache is in the state schema).
func TestUpdatesReembedOnlyChangedChunks(t *testing.T) {
	const docs, updates = 1000, 1000
	w := docload.Docs{}
	srv := fakeProvider(t, openaitest.Options{})
	h := newHarness(t, w.CreateSQL(), mapping{
		Table: "public.docs", Template: w.Template(), Metadata: w.Metadata(), KeySQL: "id::text", TextSQL: w.TextSQL(),
	})
	h.useOpenAI(srv.URL(), fakeDims, nil)
	h.setSection("chunking", map[string]any{"max_tokens": docload.ChunkTokens})
	ctx := context.Background()

	c := h.start()
	if err := w.Insert(ctx, h.db, 0, docs); err != nil {
		t.Fatal(err)
	}
	h.requireInSync("load")
	_, loadInputs, loadTokens := srv.Usage()
	// The memory cache goes with the process; the stored one stays.
	c.stop(t)
	h.start()

	srv.Reset()
	changes, err := w.Updates(ctx, h.db, docs, updates, 0.3, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.requireInSync("updates")
	h.requireProviderVectors(h.maps[0])

	chunker, err := transform.NewChunker(docload.ChunkTokens, 0)
	if err != nil {
		t.Fatal(err)
	}
	full, fullChanged := 0, 0 // tokens of re-embedding each updated document whole
	kinds := map[string]int{}
	for _, ch := range changes {
		title, _ := w.Document(ch.ID)
		n := 0
		for _, chunk := range chunker.Split(title + "\n\n" + docload.Body(ch.Paragraphs)) {
			n += transform.CountTokens(chunk)
		}
		full += n
		if ch.Kind != docload.Untracked {
			fullChanged += n
		}
		kinds[ch.Kind]++
	}
	_, inputs, sent := srv.Usage()
	ratio := float64(sent) / float64(full)
	t.Logf("load: %d chunks, %d tokens; updates %v: %d chunks, %d tokens sent; re-embedding each updated document would send %d tokens (%d for those whose document changed): ratio %.4f (%.4f)",
		loadInputs, loadTokens, kinds, inputs, sent, full, fullChanged, ratio, float64(sent)/float64(fullChanged))
	if ratio >= 0.10 {
		t.Fatalf("updates sent %d tokens, %.1f%% of the %d a full re-embedding would send; want under 10%%", sent, 100*ratio, full)
	}
	if sent == 0 || inputs > kinds[docload.EditParagraph] {
		t.Errorf("%d chunks embedded for %d paragraph edits", inputs, kinds[docload.EditParagraph])
	}
	if got := h.metric("cdc_indexer_embedding_tokens_total", openAIModel, `table="public.docs"`); got != float64(sent) {
		t.Errorf("tokens metric after the restart %v, provider received %d", got, sent)
	}
	if h.metric("cdc_indexer_embedding_cache_hits_total", openAIModel) == 0 {
		t.Error("no cache hits counted")
	}
}

// Provider none without a vectorizer module: the connector writes text and
// properties only, the collection has vectorizer none, objects no vector.
func TestProviderNoneWritesTextOnly(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	h.setSection("embedding", map[string]any{"provider": "none", "dimensions": 0})
	h.start()
	h.exec(`INSERT INTO articles VALUES (1, 'Hello', 'First body', 'ann', 10, 'x'), (2, 'Second', 'Other body', 'bob', 3, 'y')`)
	h.requireInSync("insert") // every object without a vector (dimensions 0)
	h.exec(`UPDATE articles SET body = 'Changed' WHERE id = 1`)
	h.exec(`UPDATE articles SET author = 'cy' WHERE id = 2`)
	h.exec(`DELETE FROM articles WHERE id = 2`)
	h.requireInSync("update and delete")
	class, err := h.weaviate.Client().Schema().ClassGetter().WithClassName(h.maps[0].Collection).Do(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if class.Vectorizer != "none" {
		t.Errorf("collection vectorizer %q", class.Vectorizer)
	}
}

// Provider none with Weaviate's text2vec-openai module, pointed at the
// in-process provider: Weaviate makes the vectors from the text property
// alone, the connector sends none.
func TestProviderNoneWithWeaviateVectorizer(t *testing.T) {
	srv := fakeProvider(t, openaitest.Options{})
	ctx := context.Background()
	wv := privateWeaviate(t, "ENABLE_MODULES=text2vec-openai", "OPENAI_APIKEY=sk-weaviate",
		"TIKTOKEN_CACHE_DIR="+offlineTiktokenCache(t))
	h := newPrivateHarness(t, nil, wv, articlesSchema, articles())
	h.setSection("embedding", map[string]any{
		"provider": "none", "dimensions": fakeDims, "vectorizer": "text2vec-openai",
		"vectorizer_config": map[string]any{"baseURL": srv.URL(), "model": "fake-embed"},
	})
	h.start()
	h.exec(`INSERT INTO articles VALUES (1, 'Hello', 'First body', 'ann', 10, 'x'), (2, 'Second', 'Other body', 'bob', 3, 'y')`)
	h.exec(`UPDATE articles SET body = 'A changed body' WHERE id = 1`)
	h.requireInSync("insert and update")
	h.requireProviderVectors(h.maps[0])
	reqs := srv.Requests()
	if len(reqs) == 0 {
		t.Fatal("Weaviate never called the provider")
	}
	for _, r := range reqs {
		if r.Model != "fake-embed" || r.Header.Get("Authorization") != "Bearer sk-weaviate" {
			t.Errorf("request from Weaviate: model %q, authorization %q", r.Model, r.Header.Get("Authorization"))
		}
	}
	class, err := h.weaviate.Client().Schema().ClassGetter().WithClassName(h.maps[0].Collection).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if class.Vectorizer != "text2vec-openai" {
		t.Errorf("collection vectorizer %q", class.Vectorizer)
	}
}

// A start with another provider, model or dimensions rebuilds the
// collection into a new version (docs/reindex.md) instead of mixing two
// vector spaces; going back rebuilds it again.
func TestEmbeddingModelChangeReindexes(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	c := h.start()
	h.exec(`INSERT INTO articles VALUES (1, 'Hello', 'First body', 'ann', 10, 'x')`)
	h.requireInSync("insert")
	c.stop(t)
	name := h.maps[0].Collection

	srv := fakeProvider(t, openaitest.Options{Dimensions: 64})
	h.useOpenAI(srv.URL(), 64, nil)
	c = h.start()
	h.waitServing(name, name+"_v2", 2*time.Minute)
	h.exec(`INSERT INTO articles VALUES (2, 'Again', 'With the provider', 'ann', 1, 'x')`)
	h.requireInSync("after the switch to the provider's model")
	if _, inputs, _ := srv.Usage(); inputs < 2 {
		t.Fatalf("the provider embedded %d texts; want both rows re-embedded with its model", inputs)
	}
	c.stop(t)

	h.setSection("embedding", map[string]any{"provider": "hash", "dimensions": 64})
	h.start()
	h.waitServing(name, name+"_v3", 2*time.Minute)
	h.exec(`INSERT INTO articles VALUES (3, 'Back', 'Same model as at first', 'ann', 1, 'x')`)
	h.requireInSync("back to the original model")
}

// offlineTiktokenCache is a TIKTOKEN_CACHE_DIR holding cl100k_base: the
// text2vec-openai module counts tokens with tiktoken, which otherwise
// downloads the rank file on first use (and, offline, fails).
func offlineTiktokenCache(t *testing.T) string {
	t.Helper()
	ranks, err := tiktokenassets.Assets.ReadFile("cl100k_base.tiktoken")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	name := fmt.Sprintf("%x", sha1.Sum([]byte("https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken")))
	if err := os.WriteFile(filepath.Join(dir, name), ranks, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readyz returns /readyz's status and body.
func (h *harness) readyz() (int, string) {
	h.t.Helper()
	resp, err := http.Get("http://" + h.listen + "/readyz")
	if err != nil {
		h.t.Fatalf("readyz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
