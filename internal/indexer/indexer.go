// Package indexer wires connector, transform and sink into the running
// service behind `cdc-indexer run` (Service: Start, then Stop; service.go
// lists the goroutines it starts and how each ends), and holds the
// commands that act on the same wiring: snapshot, verify, reindex.
package indexer

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/checkpoint"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
)

// Run streams changes into Weaviate until ctx is cancelled, then stops
// reading, lets in-flight work finish within the shutdown timeout, confirms
// what Weaviate acknowledged, and returns nil.
func Run(ctx context.Context, cfg *config.Config, log zerolog.Logger) error {
	return RunWith(ctx, cfg, log, Options{})
}

// Options are the hooks a caller of the service may set. The zero value is
// `cdc-indexer run`; the benchmark sets them to take its samples from the
// same wiring (one wiring: nothing it measures can drift from what runs).
type Options struct {
	// Standby waits for the slot's holder to end instead of failing
	// (`run --standby`, standby.go).
	Standby bool
	// Metrics is where the service reports; nil makes a fresh set. A
	// caller that reads samples may wrap its collectors (Freshness).
	Metrics *metrics.Metrics
	// WrapEmbedder, when set, wraps the configured embedder, to count or
	// time what is sent to it.
	WrapEmbedder func(embedding.Embedder) embedding.Embedder
	// Received, when set, sees each change as the stream hands it to the
	// pipeline (the first half of its freshness).
	Received func(*connector.Change)
	// Ready, when set, is called once the service streams.
	Ready func()
}

// RunWith is Run with hooks: it starts the service and stops it when ctx
// ends (or returns when the service stopped by itself).
func RunWith(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts Options) error {
	s, err := Start(ctx, cfg, log, opts)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-s.Done():
	}
	// The service keeps its own shutdown budget; Stop waits for it.
	return s.Stop(context.Background())
}

// persistCheckpoints publishes the confirmed position as a metric, at most
// once a second. The checkpoint in the state schema, which lets a later
// start notice a slot that went back, is the slot's durable position and is
// saved by monitorSlot (see saveSlotCheckpoint for why not this one).
func (e *Env) persistCheckpoints(ctx context.Context, tr *checkpoint.Tracker, m *metrics.Metrics) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.ConfirmedLSN.Set(float64(tr.Confirmed()))
	}
}

// relay returns a channel whose messages go on to out, each change shown to
// seen first; out is closed once the returned channel is. If the pipeline
// stops reading (ctx ends), what is still sent is dropped, as the stream's
// own send would have blocked forever.
func relay(ctx context.Context, out chan<- connector.Message, seen func(*connector.Change)) chan connector.Message {
	in := make(chan connector.Message)
	go func() {
		defer close(out)
		for m := range in {
			if c, ok := m.(*connector.Change); ok {
				seen(c)
			}
			select {
			case out <- m:
			case <-ctx.Done():
				for range in {
				}
				return
			}
		}
	}()
	return in
}
