package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cdc-indexer/cdc-indexer/sink"
)

// weaviateHTTP runs the few REST calls the benchmark needs besides the
// batch import: counting, deleting collections, and the indexing queue.
type weaviateHTTP struct {
	base string
	http *http.Client
	sink *sink.Weaviate
}

func newWeaviateHTTP(ctx context.Context, base, grpc string) (*weaviateHTTP, error) {
	s, err := sink.New(ctx, sink.Config{URL: base, GRPC: grpc, Timeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	return &weaviateHTTP{base: base, http: &http.Client{Timeout: 30 * time.Second}, sink: s}, nil
}

func (w *weaviateHTTP) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (w *weaviateHTTP) version(ctx context.Context) (string, error) {
	var meta struct {
		Version string `json:"version"`
	}
	err := w.do(ctx, http.MethodGet, "/v1/meta", nil, &meta)
	return meta.Version, err
}

// count is the number of objects in a collection (0 when it does not
// exist yet), over gRPC: the bench's Weaviate runs without GraphQL.
func (w *weaviateHTTP) count(ctx context.Context, collection string) (int, error) {
	return w.sink.Count(ctx, collection, "")
}

func (w *weaviateHTTP) deleteCollection(ctx context.Context, collection string) error {
	err := w.do(ctx, http.MethodDelete, "/v1/schema/"+collection, nil, nil)
	if err != nil && bytes.Contains([]byte(err.Error()), []byte("404")) {
		return nil
	}
	return err
}

// vectorQueue is the number of vectors waiting for the asynchronous
// indexer, over all shards.
func (w *weaviateHTTP) vectorQueue(ctx context.Context) (int, error) {
	var resp struct {
		Nodes []struct {
			Shards []struct {
				VectorQueueLength int `json:"vectorQueueLength"`
			} `json:"shards"`
		} `json:"nodes"`
	}
	if err := w.do(ctx, http.MethodGet, "/v1/nodes?output=verbose", nil, &resp); err != nil {
		return 0, err
	}
	n := 0
	for _, node := range resp.Nodes {
		for _, s := range node.Shards {
			n += s.VectorQueueLength
		}
	}
	return n, nil
}

// waitCount polls until the collection holds want objects; it returns when
// that was first seen. every is the polling interval; alive, when set, is
// checked each round (a connector that died ends the wait).
func (w *weaviateHTTP) waitCount(ctx context.Context, collection string, want int, every, timeout time.Duration, alive func() error) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	last := -1
	for {
		n, err := w.count(ctx, collection)
		if err == nil && n >= want {
			return time.Now(), nil
		}
		if err == nil {
			last = n
		}
		if alive != nil {
			if err := alive(); err != nil {
				return time.Time{}, fmt.Errorf("%w (%d of %d objects in %s)", err, last, want, collection)
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s holds %d of %d objects after %s", collection, last, want, timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(every):
		}
	}
}

// settle deletes the collections and waits (bounded) for the asynchronous
// indexer to go idle, so that one measurement's leftover indexing does not
// slow the next one down.
func (w *weaviateHTTP) settle(ctx context.Context, collections ...string) {
	for _, c := range collections {
		if err := w.deleteCollection(ctx, c); err != nil {
			logf("delete collection %s: %v", c, err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		n, err := w.vectorQueue(ctx)
		if err != nil || n == 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func httpOK(ctx context.Context, url string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

// scrapeMetrics reads a connector's /metrics page.
func scrapeMetrics(ctx context.Context, port int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("/metrics: %s", resp.Status)
	}
	return data, err
}

// scrapeStages reads a connector's /metrics and returns, per stage of
// cdc_indexer_stage_seconds, the count and mean (ms), and the mean batch
// size; nil when the endpoint or the metrics are missing.
func scrapeStages(ctx context.Context, port int) (map[string]stageMean, float64) {
	data, err := scrapeMetrics(ctx, port)
	if err != nil {
		return nil, 0
	}
	sums, counts := map[string]float64{}, map[string]float64{}
	var batchSum, batchCount float64
	for _, line := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(name, "cdc_indexer_stage_seconds_sum{"):
			sums[labelValue(name, "stage")] = v
		case strings.HasPrefix(name, "cdc_indexer_stage_seconds_count{"):
			counts[labelValue(name, "stage")] = v
		case name == "cdc_indexer_batch_size_sum":
			batchSum = v
		case name == "cdc_indexer_batch_size_count":
			batchCount = v
		}
	}
	out := map[string]stageMean{}
	for k, n := range counts {
		if n > 0 {
			out[k] = stageMean{Count: int64(n), MeanMS: 1000 * sums[k] / n}
		}
	}
	mean := 0.0
	if batchCount > 0 {
		mean = batchSum / batchCount
	}
	return out, mean
}

// labelValue is the value of label in a metric sample name like
// name{a="x",stage="write"}.
func labelValue(name, label string) string {
	_, rest, ok := strings.Cut(name, label+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}
