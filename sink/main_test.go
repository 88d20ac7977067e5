package sink

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// newTestSink connects to the shared test Weaviate, with short retries.
func newTestSink(t testing.TB) *Weaviate {
	t.Helper()
	url, grpc := testenv.Weaviate(t)
	return newTestSinkAt(t, url, grpc)
}

func newTestSinkAt(t testing.TB, url, grpc string) *Weaviate {
	t.Helper()
	w, err := New(context.Background(), Config{URL: url, GRPC: grpc, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	w.backoff = 10 * time.Millisecond
	t.Cleanup(func() { w.Close() })
	if err := w.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	return w
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
