// Command bench measures cdc-indexer against the physical limits of the
// machine it runs on (`make bench`): it starts a private PostgreSQL and a
// private Weaviate (asynchronous vector indexing on), and in one run
// measures
//
//  1. decode: rows/s of the connector's reader (connector.Stream into a
//     discard consumer) vs pg_recvlogical draining the same pgoutput WAL;
//  2. sink: objects/s of the full pipeline (`cdc-indexer run`, commit to
//     objects in Weaviate) vs a plain weaviate-go-client gRPC batch import;
//  3. freshness: commit-to-acknowledged latency percentiles at steady rates,
//     against a direct writer's floor, and commit-to-vector-searchable at
//     100 rows/s with asynchronous indexing;
//  4. snapshot: rows/s of `cdc-indexer snapshot` vs a plain batch import,
//     then `cdc-indexer verify` over what it indexed (rows/s against the
//     snapshot's, peak RSS);
//  5. memory: peak RSS of `cdc-indexer run` through a 1,000,000-row
//     transaction;
//  6. cost: embedding tokens sent for an update workload vs re-embedding
//     every chunk;
//  7. scaling: throughput, state lookup time and peak RSS against the
//     number of workers, the row size and the state table's size, and
//     commit-to-acknowledged p99 against the number of workers.
//
// It prints one table and writes it, with the raw figures, as JSON
// (bench/results.json by default). Targets are reported, never asserted:
// the exit status is 0 whenever the measurements themselves could be made.
//
//	go run ./bench                                  # everything, default sizes
//	go run ./bench -sections memory                 # one section
//	go run ./bench -quick                           # small sizes for development
//	go run ./bench -sections decode -cpuprofile cpu.out
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

// allSections in the order they run: memory last, because a million
// objects keep Weaviate's asynchronous indexer busy long after they land.
var allSections = []string{"decode", "sink", "freshness", "snapshot", "cost", "scaling", "memory"}

type options struct {
	Sections     string        `json:"sections"`
	Out          string        `json:"-"`
	Binary       string        `json:"-"`
	CPUProfile   string        `json:"-"`
	Words        int           `json:"words_per_row"`
	DecodeRows   int           `json:"decode_rows"`
	DecodeRounds int           `json:"decode_rounds"`
	SinkN        int           `json:"sink_objects"`
	SinkRounds   int           `json:"sink_rounds"`
	SinkInproc   bool          `json:"sink_in_process"`
	FreshFor     time.Duration `json:"freshness_duration"`
	FreshRates   string        `json:"freshness_rates"`
	SnapshotRows int           `json:"snapshot_rows"`
	MemoryRows   int           `json:"memory_rows"`
	MemoryWords  int           `json:"memory_words_per_row"`
	CostDocs     int           `json:"cost_documents"`
	WeaviateEnv  string        `json:"weaviate_env,omitempty"`
	ScalingDims  string        `json:"scaling_dimensions,omitempty"`
	Timeout      time.Duration `json:"-"`
}

func main() {
	var o options
	quick := false
	flag.StringVar(&o.Sections, "sections", strings.Join(allSections, ","), "comma-separated sections to run: "+strings.Join(allSections, ", "))
	flag.StringVar(&o.Out, "out", "", "write the results as JSON here (default: bench/results.json in the repository)")
	flag.StringVar(&o.Binary, "bin", "", "cdc-indexer binary to run (default: build ./cmd/cdc-indexer into a temporary directory)")
	flag.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of this process (the in-process reader and pipeline run here) to this file")
	flag.IntVar(&o.Words, "words", 100, "words in the body of each generated row")
	flag.IntVar(&o.DecodeRows, "decode-rows", 200_000, "rows in the transaction the readers drain")
	flag.IntVar(&o.DecodeRounds, "decode-rounds", 2, "decode rounds (the order of the two readers alternates)")
	flag.IntVar(&o.SinkN, "sink-n", 20_000, "objects per sink-ceiling round (plain import and pipeline)")
	flag.IntVar(&o.SinkRounds, "sink-rounds", 2, "sink-ceiling rounds (the order alternates)")
	flag.BoolVar(&o.SinkInproc, "sink-inproc", false, "run the sink section's pipeline in this process (for -cpuprofile) instead of as cdc-indexer run")
	flag.DurationVar(&o.FreshFor, "fresh-duration", 30*time.Second, "how long each freshness rate is held")
	flag.StringVar(&o.FreshRates, "fresh-rates", "100,1000", "comma-separated steady rates (rows/s) for the freshness section")
	flag.IntVar(&o.SnapshotRows, "snapshot-rows", 100_000, "existing rows the snapshot backfills")
	flag.IntVar(&o.MemoryRows, "memory-rows", 1_000_000, "rows in the transaction streamed through the connector for peak RSS")
	flag.IntVar(&o.MemoryWords, "memory-words", 40, "words in the body of each row of the memory section's transaction (shorter rows keep Weaviate's part of the run short)")
	flag.IntVar(&o.CostDocs, "cost-docs", 1000, "long documents in the chunk-reuse workload (then as many updates)")
	flag.StringVar(&o.WeaviateEnv, "weaviate-env", "", "comma-separated KEY=VALUE settings for the private Weaviate, e.g. ASYNC_INDEXING_STALE_TIMEOUT=5ms")
	flag.StringVar(&o.ScalingDims, "scaling", "", `the scaling section's dimensions to measure, comma-separated: "workers", "row size", "state rows" (default: all)`)
	flag.DurationVar(&o.Timeout, "timeout", 60*time.Minute, "give up after this long")
	flag.BoolVar(&quick, "quick", false, "development sizes: 20k decode rows, 2k sink objects, 5 s per rate, 5k snapshot rows, 50k memory rows, 100 documents")
	flag.Parse()
	if quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		apply := func(name string, fn func()) {
			if !set[name] {
				fn()
			}
		}
		apply("decode-rows", func() { o.DecodeRows = 20_000 })
		apply("decode-rounds", func() { o.DecodeRounds = 1 })
		apply("sink-n", func() { o.SinkN = 2_000 })
		apply("sink-rounds", func() { o.SinkRounds = 1 })
		apply("fresh-duration", func() { o.FreshFor = 5 * time.Second })
		apply("snapshot-rows", func() { o.SnapshotRows = 5_000 })
		apply("memory-rows", func() { o.MemoryRows = 50_000 })
		apply("cost-docs", func() { o.CostDocs = 100 })
	}
	os.Exit(run(o))
}

func run(o options) int {
	var sections []string
	for _, s := range strings.Split(o.Sections, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allSections, s) {
			fmt.Fprintf(os.Stderr, "bench: unknown section %q (have %s)\n", s, strings.Join(allSections, ", "))
			return 2
		}
		sections = append(sections, s)
	}
	// Run in the canonical order whatever order they were named in.
	slices.SortFunc(sections, func(a, b string) int { return slices.Index(allSections, a) - slices.Index(allSections, b) })
	sections = slices.Compact(sections)

	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := repoRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	if o.Out == "" {
		o.Out = filepath.Join(root, "bench", "results.json")
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
			fmt.Fprintf(os.Stderr, "bench: CPU profile in %s\n", o.CPUProfile)
		}()
	}

	b, err := newBench(ctx, o, root, sections)
	if b != nil {
		defer b.close()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	for _, s := range sections {
		if ctx.Err() != nil {
			b.res.note(s, "not run: "+ctx.Err().Error())
			continue
		}
		b.section(ctx, s)
	}
	b.finish()
	if err := b.res.write(o.Out); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	fmt.Printf("\nresults written to %s\n", o.Out)
	return 0
}

func (b *bench) section(ctx context.Context, name string) {
	start := time.Now()
	logf("=== %s", name)
	var err error
	switch name {
	case "decode":
		err = b.decode(ctx)
	case "sink":
		err = b.sinkCeiling(ctx)
	case "freshness":
		err = b.freshness(ctx)
	case "snapshot":
		err = b.snapshot(ctx)
	case "cost":
		err = b.cost(ctx)
	case "memory":
		err = b.memory(ctx)
	case "scaling":
		err = b.scaling(ctx)
	}
	if err != nil {
		logf("%s: FAILED: %v", name, err)
		b.res.fail(name, err)
	}
	logf("=== %s done in %s", name, time.Since(start).Round(time.Second))
}

// logf reports progress on stderr; the table goes to stdout.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
