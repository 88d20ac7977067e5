package e2e

import (
	"context"
	bin "encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	pb "github.com/weaviate/weaviate/grpc/generated/protocol/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cdc-indexer/cdc-indexer/internal/openaitest"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// Contract section 7: a changed mapping is rebuilt into a new version
// while the old one keeps answering; the alias moves in one step.

// TestReindexOnTemplateChangeWithoutDowntime: 20,000 rows under a steady
// update workload, a reader querying the configured name (BM25 and
// nearVector) all along; the template changes and `run` restarts. The
// reindex fills a new version, the alias moves, the old version is
// deleted; the reader never saw an error, an empty answer for a term every
// row has, a vector of the wrong length or the two templates in one
// answer, and never the old template after the new one; at the end the
// collection is exactly the new template's rendering.
func TestReindexOnTemplateChangeWithoutDowntime(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	c := h.start()
	seedArticles(h, 20000)
	h.requireInSync("seed")
	name := h.maps[0].Collection
	if got := h.aliasTarget(name); got != name+"_v1" {
		t.Fatalf("a new deployment serves %s through alias -> %q, want %s_v1", name, got, name)
	}

	stopWriter := h.updateWorkload(20000)
	reader := h.startReader(name, h.cfg.Embedding.Dimensions, "[")
	c.stop(t)
	h.setTemplate(0, "[{{.author}}] {{.title}}\n\n{{.body}}",
		"'[' || coalesce(author, '') || '] ' || coalesce(title, '') || E'\\n\\n' || coalesce(body, '')")
	h.start()
	h.waitServing(name, name+"_v2", 5*time.Minute)
	h.waitGone(name+"_v1", time.Minute)
	time.Sleep(time.Second) // a few queries after the switch
	stopWriter()
	report := reader.stop()
	report.require(t)
	if !report.sawNew {
		t.Fatal("the reader never saw the new template")
	}
	h.requireInSync("after the reindex")
	if got := h.aliasTarget(name); got != name+"_v2" {
		t.Fatalf("alias %s -> %q, want %s_v2", name, got, name)
	}
}

// TestPlainCollectionMovesBehindAnAlias: a deployment from before
// versions indexes into a plain collection of the configured name. It is
// adopted as it is; its first reindex deletes it and creates the alias in
// its place, the one moment the name does not resolve (logged, with how
// long it lasted); afterwards everything is exact.
func TestPlainCollectionMovesBehindAnAlias(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	name := h.maps[0].Collection
	spec := sink.CollectionSpec{Name: name, Vectorizer: "none", Metadata: []transform.MetadataField{
		{Name: "author", Kind: transform.KindText}, {Name: "views", Kind: transform.KindInt}}}
	if _, err := h.weaviate.EnsureCollection(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	c := h.start()
	seedArticles(h, 3000)
	h.requireInSync("seed into the plain collection")
	if got := h.aliasTarget(name); got != "" {
		t.Fatalf("the plain collection was put behind alias -> %q before any reindex", got)
	}

	reader := h.startReader(name, h.cfg.Embedding.Dimensions, "")
	c.stop(t)
	h.setTemplate(0, "{{.title}}\n\n{{.body}}\n\n{{.author}}",
		"coalesce(title, '') || E'\\n\\n' || coalesce(body, '') || E'\\n\\n' || coalesce(author, '')")
	h.start()
	h.waitServing(name, name+"_v1", 3*time.Minute)
	time.Sleep(time.Second)
	report := reader.stop()
	if report.queries < 20 {
		t.Fatalf("the reader made only %d queries", report.queries)
	}
	t.Logf("the name did not resolve for %s (%d of %d queries failed: %v)", report.unresolved, len(report.problems), report.queries, first(report.problems))
	h.requireInSync("after the move behind an alias")
}

func first(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return s[0]
}

// TestReindexOnDimensionsChange: embedding.dimensions 128 -> 256 (a model
// change) is rebuilt the same way; no answer ever mixes vector lengths,
// and once 256 was seen 128 never comes back.
func TestReindexOnDimensionsChange(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	h.setSection("embedding", map[string]any{"dimensions": 128})
	c := h.start()
	seedArticles(h, 5000)
	h.requireInSync("seed")
	name := h.maps[0].Collection

	stopWriter := h.updateWorkload(5000)
	reader := h.startReader(name, 0, "")
	c.stop(t)
	h.setSection("embedding", map[string]any{"dimensions": 256})
	h.start()
	h.waitServing(name, name+"_v2", 5*time.Minute)
	h.waitGone(name+"_v1", time.Minute)
	time.Sleep(time.Second)
	stopWriter()
	report := reader.stop()
	report.require(t)
	if !slices.Equal(report.lengths, []int{128, 256}) {
		t.Fatalf("vector lengths seen in order: %v, want 128 then 256", report.lengths)
	}
	h.requireInSync("after the reindex")
}

// TestReindexResumesAfterKill: kill -9 while the new version fills and
// again when it is nearly full; each start resumes the fill, and the end
// is exact.
func TestReindexResumesAfterKill(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	h.setSection("pipeline", map[string]any{"workers": 1})
	cmd := h.startProcess()
	seedArticles(h, 20000)
	h.requireInSync("seed")
	_ = cmd.Process.Kill()
	_, _ = cmd.Process.Wait()
	name := h.maps[0].Collection

	stopWriter := h.updateWorkload(20000)
	defer stopWriter()
	h.setTemplate(0, "{{.title}} by {{.author}}\n\n{{.body}}",
		"coalesce(title, '') || ' by ' || coalesce(author, '') || E'\\n\\n' || coalesce(body, '')")
	for _, at := range []float64{0.2, 0.9} {
		cmd = h.startProcess()
		h.waitFillProgress(name+"_v2", at)
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if got := h.aliasTarget(name); got != name+"_v1" {
			t.Fatalf("killed at %.0f%% of the fill, yet alias %s -> %q", at*100, name, got)
		}
	}
	h.startProcess()
	h.waitServing(name, name+"_v2", 5*time.Minute)
	stopWriter()
	h.requireConverges("after two kills during the reindex")
}

// TestReindexCommand: `cdc-indexer reindex --dry-run` counts every row as
// one to index and changes nothing; `cdc-indexer reindex` while `run`
// streams rebuilds the collection with the same configuration and exits 0
// once the new version serves.
func TestReindexCommand(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	h.start()
	seedArticles(h, 2000)
	h.requireInSync("seed")
	name := h.maps[0].Collection
	dry := h.startCommand("reindex", "--dry-run")
	if err := dry.wait(time.Minute); err != nil {
		t.Fatalf("reindex --dry-run: %v\n%s", err, dry.log())
	}
	// Every row counts: a new version holds nothing yet.
	if out := strings.Join(strings.Fields(dry.log()), " "); !strings.Contains(out, "public.articles "+name+" 2000 2000 0") || !strings.Contains(out, "nothing was written") {
		t.Fatalf("reindex --dry-run does not report the 2000 rows as to index:\n%s", dry.log())
	}
	if got := h.aliasTarget(name); got != name+"_v1" {
		t.Fatalf("the dry run moved alias %s -> %q", name, got)
	}
	p := h.startCommand("reindex")
	if err := p.wait(3 * time.Minute); err != nil {
		t.Fatalf("reindex: %v\n%s", err, p.log())
	}
	if !strings.Contains(p.log(), name+"_v2 serves") {
		t.Fatalf("reindex output does not say the new version serves:\n%s", p.log())
	}
	if got := h.aliasTarget(name); got != name+"_v2" {
		t.Fatalf("alias %s -> %q after reindex, want %s_v2", name, got, name)
	}
	h.waitGone(name+"_v1", time.Minute)
	h.exec(`UPDATE articles SET title = 'after ' || id WHERE id <= 10`)
	h.requireInSync("after the reindex command")
}

// TestReindexReusesUnchangedChunks: a template change that leaves most
// chunk texts as they were sends only the changed chunks to the embedding
// provider: the others come from the embedding cache.
func TestReindexReusesUnchangedChunks(t *testing.T) {
	srv := openaitest.New(openaitest.Options{Dimensions: 64})
	defer srv.Close()
	h := newHarness(t, articlesSchema, articles())
	h.useOpenAI(srv.URL(), 64, nil)
	h.setTemplate(0, "{{.body}}\n\n{{.title}}", "coalesce(body, '') || E'\\n\\n' || coalesce(title, '')")
	c := h.start()
	const rows = 200
	h.exec(`INSERT INTO articles SELECT g, 'title ' || g, repeat('lorem ipsum dolor sit amet ' || g || ' ', 300), 'a', 1, NULL
		FROM generate_series(1, $1::int) g`, rows)
	h.requireInSync("seed")
	_, _, initialTokens := srv.Usage()
	old := h.chunkTexts()
	c.stop(t)

	srv.Reset()
	h.setTemplate(0, "{{.body}}\n\n{{.title}} (revised)", "coalesce(body, '') || E'\\n\\n' || coalesce(title, '') || ' (revised)'")
	h.start()
	name := h.maps[0].Collection
	h.waitServing(name, name+"_v2", 3*time.Minute)
	h.requireInSync("after the reindex")

	// Chunk by chunk: identical texts within a row count once each.
	oldTexts := map[string]bool{}
	for _, texts := range old {
		for _, text := range texts {
			oldTexts[text] = true
		}
	}
	changed, changedTokens, total, allTokens := 0, 0, 0, 0
	for key, texts := range h.chunkTexts() {
		for i, text := range texts {
			total++
			allTokens += transform.CountTokens(text)
			if i >= len(old[key]) || old[key][i] != text {
				changed++
				changedTokens += transform.CountTokens(text)
			}
		}
	}
	sent := map[string]bool{}
	for _, r := range srv.Requests() {
		for _, in := range r.Inputs {
			sent[in] = true
		}
	}
	_, inputs, tokens := srv.Usage()
	for text := range sent {
		if oldTexts[text] {
			t.Errorf("an unchanged chunk was embedded again: %q", abbreviate(text))
		}
	}
	if tokens > changedTokens {
		t.Errorf("the reindex sent %d tokens, the changed chunks have %d", tokens, changedTokens)
	}
	if changed*10 > total {
		t.Fatalf("the template change altered %d of %d chunk texts; the test wants most unchanged", changed, total)
	}
	t.Logf("reindex embedded %d of %d chunks: %d tokens, %.1f%% of the %d a full re-embedding sends (the first indexing sent %d)",
		inputs, total, tokens, 100*float64(tokens)/float64(allTokens), allTokens, initialTokens)
}

// chunkTexts is the chunk texts of every row, in chunk order.
func (h *harness) chunkTexts() map[string][]string {
	h.t.Helper()
	out := map[string][]string{}
	for key, chunks := range h.indexed(h.maps[0]) {
		for _, c := range chunks {
			out[key] = append(out[key], c.Text)
		}
	}
	return out
}

// aliasTarget is the collection the alias name points at ("" for none).
func (h *harness) aliasTarget(name string) string {
	h.t.Helper()
	target, err := h.weaviate.Alias(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return target
}

// waitServing waits until the state records physical as the serving
// version of collection and the alias points at it.
func (h *harness) waitServing(collection, physical string, timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var serving string
		err := h.db.QueryRow(context.Background(), `SELECT physical FROM cdc_indexer.collection_versions
WHERE collection = $1 AND phase = 'serving'`, collection).Scan(&serving)
		if err != nil && err != pgx.ErrNoRows {
			h.t.Fatal(err)
		}
		if serving == physical && h.aliasTarget(collection) == physical {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s still served by %q after %s, want %s", collection, serving, timeout, physical)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitGone waits until Weaviate no longer has the collection.
func (h *harness) waitGone(collection string, timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for h.hasCollection(collection) {
		if time.Now().After(deadline) {
			h.t.Fatalf("collection %s still exists after %s", collection, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFillProgress waits until the backfills of a filling version have
// read at least share of their rows.
func (h *harness) waitFillProgress(physical string, share float64) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var done, total int64
		err := h.db.QueryRow(context.Background(), `SELECT coalesce(sum(rows_done), 0), coalesce(sum(rows_total), 0)
FROM cdc_indexer.backfill_requests WHERE collection = $1 AND status = 'running'`, physical).Scan(&done, &total)
		if err != nil && !strings.Contains(err.Error(), "does not exist") {
			h.t.Fatal(err)
		}
		if total > 0 && float64(done) >= share*float64(total) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the fill of %s did not reach %.0f%% (%d of %d rows)", physical, share*100, done, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// updateWorkload updates random rows of articles (ids 1..n) on a
// connection of its own until the returned stop is called.
func (h *harness) updateWorkload(n int) (stop func()) {
	h.t.Helper()
	writer, err := pgx.Connect(context.Background(), h.dsn)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			id := 1 + (i*7919)%n
			_, err := writer.Exec(ctx, `UPDATE articles SET body = body || ' more', views = views + 1 WHERE id = $1`, id)
			if err != nil && ctx.Err() == nil {
				h.t.Errorf("writer: %v", err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			writer.Close(context.Background())
		})
	}
	h.t.Cleanup(stop)
	return stop
}

// reader queries a collection as an application does, over gRPC, until
// stopped, and records what it saw.
type reader struct {
	cancel context.CancelFunc
	done   chan readReport
}

type readReport struct {
	queries  int
	problems []string
	lengths  []int // vector lengths, in the order first seen
	sawNew   bool  // a chunk 0 with the new template's marker
	// unresolved is the longest time from the last answered query before
	// a failure to the first answered one after it (0 when none failed):
	// how long the name did not resolve, as a reader saw it.
	unresolved time.Duration
}

func (r readReport) require(t *testing.T) {
	t.Helper()
	if r.queries < 20 {
		t.Fatalf("the reader made only %d queries", r.queries)
	}
	if len(r.problems) > 0 {
		if len(r.problems) > 20 {
			r.problems = append(r.problems[:20], fmt.Sprintf("... and %d more", len(r.problems)-20))
		}
		t.Fatalf("the reader saw problems in %d queries:\n  %s", r.queries, strings.Join(r.problems, "\n  "))
	}
	t.Logf("reader: %d queries, no problem", r.queries)
}

// startReader queries collection with BM25 for a term every row has and,
// when dims > 0, with nearVector; every answer must be non-empty and
// carry vectors of one length (dims, when given). With marker set, the
// chunk 0 texts of one answer must agree on whether they start with it
// (one template), and once one did, no later answer may go back.
func (h *harness) startReader(collection string, dims int, marker string) *reader {
	h.t.Helper()
	conn, err := grpc.NewClient(h.cfg.Weaviate.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		h.t.Fatal(err)
	}
	client := pb.NewWeaviateClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	r := &reader{cancel: cancel, done: make(chan readReport, 1)}
	query := make([]float32, dims)
	for i := range query {
		query[i] = float32(math.Sin(float64(i)))
	}
	go func() {
		defer conn.Close()
		var rep readReport
		lastOK, failing := time.Now(), false
		for ctx.Err() == nil {
			reqs := []*pb.SearchRequest{{Collection: collection, Bm25Search: &pb.BM25{Query: "article", Properties: []string{"text"}}}}
			if dims > 0 {
				reqs = append(reqs, &pb.SearchRequest{Collection: collection, NearVector: &pb.NearVector{VectorBytes: vectorBytes(query)}})
			}
			for _, req := range reqs {
				req.Limit = 50
				req.Uses_127Api = true
				req.Metadata = &pb.MetadataRequest{Uuid: true, Vector: true}
				req.Properties = &pb.PropertiesRequest{NonRefProperties: []string{"text", "chunk_index"}}
				callCtx, cancelCall := context.WithTimeout(ctx, 30*time.Second)
				reply, err := client.Search(callCtx, req)
				cancelCall()
				if ctx.Err() != nil {
					break
				}
				rep.queries++
				kind := "bm25"
				if req.NearVector != nil {
					kind = "nearVector"
				}
				if err != nil {
					rep.problems = append(rep.problems, fmt.Sprintf("%s: %v", kind, err))
					failing = true
					continue
				}
				if failing {
					failing = false
					rep.unresolved = max(rep.unresolved, time.Since(lastOK))
				}
				lastOK = time.Now()
				if len(reply.GetResults()) == 0 {
					rep.problems = append(rep.problems, kind+": no result")
					continue
				}
				length, newer, older := -1, 0, 0
				for _, res := range reply.GetResults() {
					n := len(res.GetMetadata().GetVectorBytes()) / 4
					if n == 0 {
						for _, v := range res.GetMetadata().GetVectors() {
							n = len(v.GetVectorBytes()) / 4
						}
					}
					if length >= 0 && n != length {
						rep.problems = append(rep.problems, fmt.Sprintf("%s: vectors of lengths %d and %d in one answer", kind, length, n))
					}
					length = n
					fields := res.GetProperties().GetNonRefProps().GetFields()
					if marker != "" && fields["chunk_index"].GetIntValue() == 0 {
						if strings.HasPrefix(fields["text"].GetTextValue(), marker) {
							newer++
						} else {
							older++
						}
					}
				}
				if dims > 0 && length != dims {
					rep.problems = append(rep.problems, fmt.Sprintf("%s: vectors of length %d, want %d", kind, length, dims))
				}
				if len(rep.lengths) == 0 || rep.lengths[len(rep.lengths)-1] != length {
					rep.lengths = append(rep.lengths, length)
				}
				switch {
				case newer > 0 && older > 0:
					rep.problems = append(rep.problems, fmt.Sprintf("%s: both templates in one answer (%d new, %d old)", kind, newer, older))
				case older > 0 && rep.sawNew:
					rep.problems = append(rep.problems, kind+": the old template came back after the new one was served")
				case newer > 0:
					rep.sawNew = true
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		r.done <- rep
	}()
	return r
}

func (r *reader) stop() readReport {
	r.cancel()
	return <-r.done
}

func vectorBytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		bin.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}
