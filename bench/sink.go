package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/weaviate/weaviate/entities/models"

	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

const (
	sinkTarget = 0.9
	// plainBatch is the plain import's batch size: the sink's default.
	plainBatch = sink.DefaultBatchSize
)

type sinkRound struct {
	First           string  `json:"first"`
	PlainSeconds    float64 `json:"plain_seconds"`
	PipelineSeconds float64 `json:"pipeline_seconds"`
	Ratio           float64 `json:"ratio"`
	// CPU seconds the servers and this process used during the timed plain
	// import; the pipeline's are in pipelineRun.
	PlainCPU cpuUse `json:"plain_cpu_seconds"`
	pipelineRun
}

// pipelineRun is what the connector itself reports about a run: its CPU
// time from commit to the last object, and its stage histograms.
type pipelineRun struct {
	ConnectorCPUSeconds float64              `json:"connector_cpu_seconds,omitempty"`
	CPU                 cpuUse               `json:"cpu_seconds"` // servers and this process, commit to done
	Stages              map[string]stageMean `json:"stages,omitempty"`
	MeanBatch           float64              `json:"mean_batch_size,omitempty"`
}

type sinkResult struct {
	Objects int         `json:"objects_per_round"`
	Rounds  []sinkRound `json:"rounds"`
	// PlainInFlight is how many batch requests the plain import keeps in
	// flight; the ceiling is the fastest of 1, 2 and 4 (as many as the
	// pipeline has workers), tried in round 1.
	PlainInFlight            int     `json:"plain_in_flight"`
	PlainBatch               int     `json:"plain_batch_size"`
	PlainObjectsPerSecond    float64 `json:"plain_objects_per_second"`
	PipelineObjectsPerSecond float64 `json:"pipeline_objects_per_second"`
	Ratio                    float64 `json:"ratio"`
}

func (s *sinkResult) rows() []row {
	return []row{{
		Section:  "sink",
		Measure:  fmt.Sprintf("pipeline objects/s, %s rows committed -> in Weaviate (cdc-indexer run, hash 384)", thousands(int64(s.Objects))),
		Value:    rate(s.PipelineObjectsPerSecond, "obj/s"),
		Baseline: rate(s.PlainObjectsPerSecond, "obj/s plain gRPC batch"),
		Ratio:    ratioStr(s.Ratio),
		Target:   fmt.Sprintf(">= %.2fx", sinkTarget),
		Status:   status(s.Ratio, sinkTarget, true),
	}}
}

// sinkCeiling compares the full pipeline with a plain client batch import
// of the same objects, in alternating order, each into a fresh collection.
func (b *bench) sinkCeiling(ctx context.Context) error {
	res := &sinkResult{Objects: b.o.SinkN, PlainBatch: plainBatch, PlainInFlight: 1}
	gen := rowGen{words: b.o.Words}
	var plainTotal, pipeTotal time.Duration
	for r := 0; r < b.o.SinkRounds; r++ {
		var rd sinkRound
		first := int64(r*res.Objects + 1)
		plain := func() error {
			if r == 0 {
				// Find the plain client's best setting once.
				best := time.Duration(0)
				for _, inFlight := range []int{1, 2, 4, 8} {
					d, cpu, err := b.plainImport(ctx, fmt.Sprintf("BenchPlainTry%d", inFlight), gen, first, res.Objects, inFlight)
					if err != nil {
						return err
					}
					logf("sink: plain import with %d batch(es) in flight: %s obj/s", inFlight, thousands(int64(float64(res.Objects)/d.Seconds())))
					if best == 0 || d < best {
						best, res.PlainInFlight, rd.PlainCPU = d, inFlight, cpu
					}
				}
				rd.PlainSeconds = best.Seconds()
				plainTotal += best
				return nil
			}
			d, cpu, err := b.plainImport(ctx, fmt.Sprintf("BenchPlain%d", r), gen, first, res.Objects, res.PlainInFlight)
			rd.PlainSeconds, rd.PlainCPU = d.Seconds(), cpu
			plainTotal += d
			return err
		}
		pipe := func() error {
			d, run, err := b.pipelineImport(ctx, r, gen, first, res.Objects)
			rd.PipelineSeconds, rd.pipelineRun = d.Seconds(), run
			pipeTotal += d
			return err
		}
		steps := []func() error{plain, pipe}
		rd.First = "plain"
		if r%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
			rd.First = "pipeline"
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		rd.Ratio = rd.PlainSeconds / rd.PipelineSeconds
		res.Rounds = append(res.Rounds, rd)
		logf("sink round %d: plain %.2f s (%s obj/s), pipeline %.2f s (%s obj/s), ratio %.2f", r+1,
			rd.PlainSeconds, thousands(int64(float64(res.Objects)/rd.PlainSeconds)),
			rd.PipelineSeconds, thousands(int64(float64(res.Objects)/rd.PipelineSeconds)), rd.Ratio)
		logf("sink round %d: CPU s: plain: Weaviate %.1f, PostgreSQL %.1f, client %.1f; pipeline: Weaviate %.1f, PostgreSQL %.1f (%s), connector %.1f; mean batch %.0f, stages %v", r+1,
			rd.PlainCPU.Weaviate, rd.PlainCPU.Postgres, rd.PlainCPU.Bench, rd.CPU.Weaviate, rd.CPU.Postgres, rd.CPU.postgresKinds(), rd.ConnectorCPUSeconds+rd.CPU.Bench, rd.MeanBatch, rd.Stages)
	}
	n := float64(res.Objects * len(res.Rounds))
	res.PlainObjectsPerSecond = n / plainTotal.Seconds()
	res.PipelineObjectsPerSecond = n / pipeTotal.Seconds()
	res.Ratio = res.PipelineObjectsPerSecond / res.PlainObjectsPerSecond
	b.res.Sink = res
	return nil
}

// benchCollectionSpec is what the connector creates for public.docs.
func benchCollectionSpec(name string) sink.CollectionSpec {
	return sink.CollectionSpec{Name: name, Vectorizer: sink.VectorizerNone, Metadata: []transform.MetadataField{
		{Name: "author", Kind: transform.KindText}, {Name: "category", Kind: transform.KindText},
	}}
}

// plainObjects builds, untimed, the objects the connector would write for
// rows first..first+n-1: same properties, text and 384-dim vectors.
func plainObjects(ctx context.Context, coll string, gen rowGen, first int64, n int) ([]*models.Object, error) {
	emb := embedding.NewHashEmbedder(384)
	objs := make([]*models.Object, 0, n)
	const chunk = 512
	texts := make([]string, 0, chunk)
	rows := make([][]any, 0, chunk)
	flush := func() error {
		vecs, err := emb.Embed(ctx, texts)
		if err != nil {
			return err
		}
		for i, r := range rows {
			key := strconv.FormatInt(r[0].(int64), 10)
			meta := map[string]any{"author": r[3], "category": r[4]}
			objs = append(objs, &models.Object{
				Class:  coll,
				ID:     sink.ObjectID(coll, "public.docs", key, 0),
				Vector: vecs[i],
				Properties: map[string]any{
					sink.PropSourceTable: "public.docs", sink.PropSourceKey: key,
					sink.PropChunkIndex: int64(0), sink.PropChunkCount: int64(1), sink.PropText: texts[i],
					sink.PropContentHash: transform.ContentHash(texts[i], meta, emb.ModelID()),
					sink.PropSourceLSN:   "0/0", "author": r[3], "category": r[4],
				},
			})
		}
		texts, rows = texts[:0], rows[:0]
		return nil
	}
	for i := 0; i < n; i++ {
		r := gen.row(first + int64(i))
		rows = append(rows, r)
		texts = append(texts, r[1].(string)+"\n\n"+r[2].(string))
		if len(texts) == chunk {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if len(texts) > 0 {
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// plainImport writes n objects with the weaviate-go-client gRPC batcher,
// plainBatch per request and inFlight requests at a time, into a fresh
// collection, and returns the time the import took (building the objects
// is not timed).
func (b *bench) plainImport(ctx context.Context, coll string, gen rowGen, first int64, n, inFlight int) (_ time.Duration, _ cpuUse, err error) {
	w, err := sink.New(ctx, sink.Config{URL: b.wv.URL(), GRPC: b.wv.GRPC()})
	if err != nil {
		return 0, cpuUse{}, err
	}
	defer w.Close()
	defer b.weav.settle(context.WithoutCancel(ctx), coll)
	if _, err := w.EnsureCollection(ctx, benchCollectionSpec(coll)); err != nil {
		return 0, cpuUse{}, err
	}
	objs, err := plainObjects(ctx, coll, gen, first, n)
	if err != nil {
		return 0, cpuUse{}, err
	}
	client := w.Client()
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	cpu0 := b.cpu.now()
	start := time.Now()
	for s := 0; s < len(objs); s += plainBatch {
		batch := objs[s:min(s+plainBatch, len(objs))]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := client.Batch().ObjectsBatcher().WithObjects(batch...).Do(ctx)
			if err == nil {
				for i := range resp {
					if r := resp[i].Result; r != nil && r.Errors != nil && len(r.Errors.Error) > 0 {
						err = fmt.Errorf("object rejected: %s", r.Errors.Error[0].Message)
						break
					}
				}
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := b.cpu.now().minus(cpu0)
	if firstErr != nil {
		return 0, cpu, fmt.Errorf("plain import: %w", firstErr)
	}
	if got, err := b.weav.count(ctx, coll); err != nil || got != n {
		return 0, cpu, fmt.Errorf("plain import: %s holds %d objects, want %d (%v)", coll, got, n, err)
	}
	return elapsed, cpu, nil
}

// pipelineImport runs `cdc-indexer run` on a fresh database, commits n rows
// in one transaction and returns the time from the commit until Weaviate
// holds all n objects.
func (b *bench) pipelineImport(ctx context.Context, round int, gen rowGen, first int64, n int) (_ time.Duration, run pipelineRun, _ error) {
	db := fmt.Sprintf("bench_sink_%d", round)
	coll := fmt.Sprintf("BenchPipeline%d", round)
	dsn, err := b.database(ctx, db)
	if err != nil {
		return 0, run, err
	}
	defer b.dropDatabase(db)
	defer b.weav.settle(context.WithoutCancel(ctx), coll)
	port, err := testenv.FreePort()
	if err != nil {
		return 0, run, err
	}
	cfgPath, err := b.writeConfig(db, scenario{DSN: dsn, Slot: db, Publication: db, Collection: coll, ObsPort: port})
	if err != nil {
		return 0, run, err
	}
	var alive func() error
	var cpu func() time.Duration                      // connector CPU time so far
	var report func() (map[string]stageMean, float64) // stage histograms
	if b.o.SinkInproc {
		// In this process, where -cpuprofile sees it.
		ip, err := startInproc(ctx, cfgPath, nil)
		if err != nil {
			return 0, run, err
		}
		defer ip.close()
		alive = ip.alive
		cpu = func() time.Duration { return 0 }
		before := ip.gatherHistogram("cdc_indexer_stage_seconds", "stage")
		report = func() (map[string]stageMean, float64) {
			bs := stageMeans(nil, ip.gatherHistogram("cdc_indexer_batch_size", ""))[""]
			return stageMeans(before, ip.gatherHistogram("cdc_indexer_stage_seconds", "stage")), bs.MeanMS / 1000
		}
	} else {
		c, err := b.startChild(db, "run", "--config", cfgPath)
		if err != nil {
			return 0, run, err
		}
		defer c.stop()
		if err := c.waitReady(ctx, port); err != nil {
			return 0, run, err
		}
		alive = func() error {
			if c.exited() {
				return fmt.Errorf("cdc-indexer exited (%v):\n%s", c.err, c.logTail())
			}
			return nil
		}
		cpu = func() time.Duration { d, _ := procCPU(c.pid()); return d }
		report = func() (map[string]stageMean, float64) { return scrapeStages(ctx, port) }
	}
	done, err := fillRows(ctx, dsn, gen, first, n)
	if err != nil {
		return 0, run, err
	}
	cpu0, use0 := cpu(), b.cpu.now()
	end, err := b.weav.waitCount(ctx, coll, n, 50*time.Millisecond, 30*time.Minute, alive)
	if err != nil {
		return 0, run, err
	}
	run.ConnectorCPUSeconds = (cpu() - cpu0).Seconds()
	run.CPU = b.cpu.now().minus(use0)
	run.Stages, run.MeanBatch = report()
	return end.Sub(done.At), run, nil
}
