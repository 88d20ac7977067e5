package embedcache_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/embedcache"
	"github.com/cdc-indexer/cdc-indexer/internal/openaitest"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/migrations"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const dims = 16

func newStore(t *testing.T) *state.Store {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := migrations.Apply(ctx, pool, "cdc_indexer"); err != nil {
		t.Fatal(err)
	}
	return state.NewStore(pool, "cdc_indexer")
}

func newProvider(t *testing.T) (*openaitest.Server, *embedding.OpenAIEmbedder) {
	t.Helper()
	srv := openaitest.New(openaitest.Options{})
	t.Cleanup(srv.Close)
	e, err := embedding.NewOpenAIEmbedder(embedding.OpenAIConfig{
		BaseURL: srv.URL(), Model: "test-embed", Dimensions: dims, SendDimensions: true,
		InitialBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv, e
}

func want(t *testing.T, texts []string) [][]float32 {
	t.Helper()
	v, err := embedding.NewHashEmbedder(dims).Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCacheSendsEachTextOnce(t *testing.T) {
	srv, provider := newProvider(t)
	store := newStore(t)
	ctx := context.Background()
	c := embedcache.Wrap(provider, embedcache.Options{MemoryBytes: 1 << 20, Store: store, PricePerMillionTokens: 2})

	texts := []string{"alpha beta", "gamma", "alpha beta", "delta epsilon zeta"}
	got, u, err := c.EmbedUsage(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want(t, texts)) {
		t.Fatal("vectors differ from the provider's")
	}
	tokens := transform.CountTokens("alpha beta") + transform.CountTokens("gamma") + transform.CountTokens("delta epsilon zeta")
	if u.Texts != 3 || u.Hits != 1 || u.Tokens != tokens || u.Cost != float64(tokens)*2/1e6 {
		t.Errorf("usage %+v, want 3 texts, 1 hit (the duplicate), %d tokens", u, tokens)
	}
	if _, _, sent := srv.Usage(); sent != tokens {
		t.Errorf("provider got %d tokens, want %d", sent, tokens)
	}

	// Again, plus one new text: only that one is sent.
	srv.Reset()
	texts = append(texts, "eta")
	got, u, err = c.EmbedUsage(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want(t, texts)) {
		t.Fatal("vectors differ from the provider's")
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || !reflect.DeepEqual(reqs[0].Inputs, []string{"eta"}) || u.Texts != 1 || u.Hits != 4 || u.Stored != 0 {
		t.Errorf("sent %v, usage %+v", reqs, u)
	}

	// A new process (empty memory) finds them in the state schema, with one
	// query and no request.
	srv.Reset()
	fresh := embedcache.Wrap(provider, embedcache.Options{MemoryBytes: 1 << 20, Store: store})
	got, u, err = fresh.EmbedUsage(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want(t, texts)) {
		t.Fatal("stored vectors differ from the provider's")
	}
	if len(srv.Requests()) != 0 || u.Texts != 0 || u.Stored != 4 || u.Hits != len(texts) {
		t.Errorf("after restart: %d requests, usage %+v", len(srv.Requests()), u)
	}
	if fresh.MemoryEntries() != 4 {
		t.Errorf("memory holds %d entries, want the 4 found", fresh.MemoryEntries())
	}
}

// Rejected inputs are reported at every position they occur; the others
// are embedded and cached, so isolating the bad rows costs no tokens.
func TestCacheWithRejectedInputs(t *testing.T) {
	srv, provider := newProvider(t)
	srv.Poison("POISON")
	c := embedcache.Wrap(provider, embedcache.Options{MemoryBytes: 1 << 20})
	texts := []string{"ok one", "POISON", "ok two", "POISON"}
	got, u, err := c.EmbedUsage(context.Background(), texts)
	ie, ok := embedding.AsInputErrors(err)
	if !ok || !reflect.DeepEqual(ie.Indexes(), []int{1, 3}) {
		t.Fatalf("error %v, want inputs 1 and 3 rejected", err)
	}
	if got[1] != nil || got[3] != nil || got[0] == nil || got[2] == nil {
		t.Fatalf("vectors %v", got)
	}
	if u.Texts != 2 || u.Tokens != transform.CountTokens("ok one")+transform.CountTokens("ok two") {
		t.Errorf("usage %+v", u)
	}
	srv.Reset()
	if _, u, err := c.EmbedUsage(context.Background(), []string{"ok two", "ok one"}); err != nil || u.Texts != 0 || len(srv.Requests()) != 0 {
		t.Errorf("batch-mates not cached: %v, %+v, %d requests", err, u, len(srv.Requests()))
	}
}

func TestCacheBounds(t *testing.T) {
	_, provider := newProvider(t)
	store := newStore(t)
	ctx := context.Background()
	// Room for about 4 vectors of 16 float32s (64 bytes + 128 overhead).
	c := embedcache.Wrap(provider, embedcache.Options{MemoryBytes: 800, Store: store, MaxStored: 5, PruneEvery: time.Nanosecond})
	for i := 0; i < 12; i++ {
		if _, err := c.Embed(ctx, []string{fmt.Sprintf("text %d", i)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct last-use times
	}
	if n := c.MemoryEntries(); n != 4 {
		t.Errorf("memory holds %d entries, want 4", n)
	}
	n, err := store.CountEmbeddings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("store holds %d entries, want 5", n)
	}
	// The most recent are kept.
	found, err := store.LookupEmbeddings(ctx, provider.ModelID(), []embedcache.Key{embedcache.KeyOf("text 11"), embedcache.KeyOf("text 0")})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := found[embedcache.KeyOf("text 11")]; !ok || len(found) != 1 {
		t.Errorf("kept %d of (newest, oldest)", len(found))
	}
}
