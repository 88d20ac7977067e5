package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/embedcache"
	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
)

// inproc is the connector run inside the benchmark through the very
// wiring of `cdc-indexer run` (indexer.RunWith), with hooks for the samples
// it needs: the pipeline reports each acknowledged change's commit-to-ack
// time to the freshness histogram, which acks wraps to keep the raw
// samples, and the Received hook notes when the stream handed each change
// over (commit to reader).
type inproc struct {
	m    *metrics.Metrics
	acks *ackRecorder
	// received keeps, while acks records, the time from commit to the
	// reader handing the change over.
	received sampleSet
	cancel   context.CancelFunc
	done     chan error
}

// sampleSet keeps observations while recording is on.
type sampleSet struct {
	recording atomic.Bool
	mu        sync.Mutex
	samples   []float64
}

func (s *sampleSet) observe(v float64) {
	if s.recording.Load() {
		s.mu.Lock()
		s.samples = append(s.samples, v)
		s.mu.Unlock()
	}
}

// record starts keeping samples, dropping earlier ones.
func (s *sampleSet) record() {
	s.mu.Lock()
	s.samples = nil
	s.mu.Unlock()
	s.recording.Store(true)
}

// stop stops keeping samples and returns them.
func (s *sampleSet) stop() []float64 {
	s.recording.Store(false)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.samples
	s.samples = nil
	return out
}

// ackRecorder is the pipeline's freshness histogram that also keeps every
// observation (seconds from commit to Weaviate's acknowledgement) while
// recording is on, and counts all of them. Recording starts and stops
// also (the commit-to-reader samples) with it.
type ackRecorder struct {
	prometheus.Histogram
	sampleSet
	n    atomic.Int64
	also *sampleSet
}

func (a *ackRecorder) Observe(v float64) {
	a.Histogram.Observe(v)
	a.observe(v)
	a.n.Add(1)
}

func (a *ackRecorder) record() {
	a.sampleSet.record()
	if a.also != nil {
		a.also.record()
	}
}

func (a *ackRecorder) stop() []float64 {
	if a.also != nil {
		a.also.recording.Store(false)
	}
	return a.sampleSet.stop()
}

// startInproc starts the connector for the config file and returns once
// it streams. wrap, when set, wraps the embedder (to count what is sent to
// it) unless the embedder is the embedding cache, which reports its own
// usage to cdc_indexer_embedding_tokens_total: a wrapper would hide that.
func startInproc(ctx context.Context, cfgPath string, wrap func(embedding.Embedder) embedding.Embedder) (*inproc, error) {
	cfg, err := config.Load(cfgPath)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	acks := &ackRecorder{Histogram: m.Freshness}
	m.Freshness = acks
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ip := &inproc{m: m, acks: acks, cancel: cancel, done: make(chan error, 1)}
	acks.also = &ip.received
	ready := make(chan struct{})
	opts := indexer.Options{
		Metrics: m,
		Received: func(c *connector.Change) {
			if !c.CommitTime.IsZero() {
				ip.received.observe(time.Since(c.CommitTime).Seconds())
			}
		},
		Ready: func() { close(ready) },
	}
	if wrap != nil {
		opts.WrapEmbedder = func(e embedding.Embedder) embedding.Embedder {
			if _, metered := e.(*embedcache.Embedder); metered {
				return e
			}
			return wrap(e)
		}
	}
	go func() { ip.done <- indexer.RunWith(rctx, cfg, zerolog.Nop(), opts) }()
	select {
	case <-ready:
		return ip, nil
	case err := <-ip.done:
		cancel()
		return nil, fmt.Errorf("connector: %w", err)
	case <-ctx.Done():
		cancel()
		<-ip.done
		return nil, ctx.Err()
	}
}

// alive reports an error once the connector has stopped.
func (ip *inproc) alive() error {
	select {
	case err := <-ip.done:
		ip.done <- err
		return fmt.Errorf("connector stopped: %v", err)
	default:
		return nil
	}
}

func (ip *inproc) close() error {
	ip.cancel()
	return <-ip.done
}

// histogram is a histogram's count and sum, per label value.
type histogram map[string]struct{ Count, Sum float64 }

// gatherHistogram reads a histogram family from the connector's metrics,
// keyed by the value of label (one entry "" without labels); nil when the
// family does not exist.
func (ip *inproc) gatherHistogram(name, label string) histogram {
	families, err := ip.m.Registry.Gather()
	if err != nil {
		return nil
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		h := histogram{}
		for _, m := range f.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					key = l.GetValue()
				}
			}
			e := h[key]
			e.Count += float64(m.GetHistogram().GetSampleCount())
			e.Sum += m.GetHistogram().GetSampleSum()
			h[key] = e
		}
		return h
	}
	return nil
}

// counterSum is the sum of a counter family, or -1 when it has no samples.
func (ip *inproc) counterSum(name string) float64 {
	families, err := ip.m.Registry.Gather()
	if err != nil {
		return -1
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		sum := 0.0
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
		return sum
	}
	return -1
}

// stageMeans is, per label value, the mean of the observations made
// between two snapshots of a histogram, in milliseconds, with their count.
func stageMeans(before, after histogram) map[string]stageMean {
	out := map[string]stageMean{}
	for k, a := range after {
		b := before[k]
		if n := a.Count - b.Count; n > 0 {
			out[k] = stageMean{Count: int64(n), MeanMS: 1000 * (a.Sum - b.Sum) / n}
		}
	}
	return out
}

type stageMean struct {
	Count  int64   `json:"count"`
	MeanMS float64 `json:"mean_ms"`
}
