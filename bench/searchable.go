package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/weaviate/weaviate/grpc/generated/protocol/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cdc-indexer/cdc-indexer/sink"
)

// searchableRate and searchableEvery: the phase holds 100 rows/s and probes
// every 20th row, 5 probes a second, so that the probes' own queries load
// Weaviate little.
const (
	searchableRate  = 100
	searchableEvery = 20
	searchableLimit = 30 * time.Second
)

// searchableTarget: vector-searchable p99 at most twice the acknowledged.
const searchableTarget = 2.0

// searchableResult is commit -> found by vector search, with Weaviate's
// asynchronous indexing on (acknowledged objects are stored and
// keyword-searchable at once; their vectors are indexed by a background
// queue), beside the pipeline's commit -> acknowledged of the same phase.
type searchableResult struct {
	Rate    int     `json:"rows_per_second"`
	Seconds float64 `json:"seconds"`
	// Acknowledged: the pipeline's own commit -> Weaviate acknowledgement
	// of every row of the phase.
	AckSamples int     `json:"ack_samples"`
	AckP50     float64 `json:"ack_p50_seconds"`
	AckP99     float64 `json:"ack_p99_seconds"`
	// Probed rows: from just before the INSERT was sent to the row's
	// object readable by id, and to the object being the top hit of a
	// nearVector search with its own vector.
	Probed        int     `json:"probed"`
	TimedOut      int     `json:"timed_out"`
	ReadableP50   float64 `json:"readable_p50_seconds"`
	ReadableP99   float64 `json:"readable_p99_seconds"`
	SearchableP50 float64 `json:"searchable_p50_seconds"`
	SearchableP95 float64 `json:"searchable_p95_seconds"`
	SearchableP99 float64 `json:"searchable_p99_seconds"`
	SearchableMax float64 `json:"searchable_max_seconds"`
	Ratio         float64 `json:"ratio"` // searchable p99 / acknowledged p99
}

func (s *searchableResult) rows() []row {
	return []row{{
		Section: "freshness",
		Measure: fmt.Sprintf("commit -> vector-searchable at %d rows/s, ASYNC_INDEXING=true (every %dth row searched by its vector until it is the top hit; %d probed, %d timed out)",
			s.Rate, searchableEvery, s.Probed, s.TimedOut),
		Value: fmt.Sprintf("p50 %s, p95 %s, p99 %s, max %s (readable by id: p50 %s, p99 %s)",
			ms(s.SearchableP50), ms(s.SearchableP95), ms(s.SearchableP99), ms(s.SearchableMax), ms(s.ReadableP50), ms(s.ReadableP99)),
		Baseline: fmt.Sprintf("commit -> ack p50 %s, p99 %s (same phase, all %d rows)", ms(s.AckP50), ms(s.AckP99), s.AckSamples),
		Ratio:    ratioStr(s.Ratio),
		Target:   fmt.Sprintf("p99 <= %.0fx the acknowledged p99", searchableTarget),
		Status:   status(s.Ratio, searchableTarget, false),
	}}
}

// searchable holds searchableRate rows/s for the freshness duration and
// probes every searchableEvery-th row: first until its object can be read
// by id (what an acknowledgement promises a reader), then until a
// nearVector search with that object's vector returns it first.
func (b *bench) searchable(ctx context.Context, ip *inproc, dsn string, gen rowGen, nextID *atomic.Int64, coll string) error {
	conn, err := grpc.NewClient(b.wv.GRPC(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := pb.NewWeaviateClient(conn)

	res := &searchableResult{Rate: searchableRate}
	type probe struct {
		id   int64
		sent time.Time
	}
	probes := make(chan probe, 1024)
	var mu sync.Mutex
	var readable, searchable []float64
	var timedOut atomic.Int64
	var wg sync.WaitGroup
	// One goroutine per probe: a probe waits as long as the row takes to
	// become searchable, and a queue of probes would add its wait.
	wg.Go(func() {
		for p := range probes {
			wg.Go(func() {
				r, s, ok := probeRow(ctx, client, coll, p.id, p.sent)
				mu.Lock()
				defer mu.Unlock()
				if ok {
					readable, searchable = append(readable, r), append(searchable, s)
				} else {
					timedOut.Add(1)
				}
			})
		}
	})
	before := ip.acks.n.Load()
	ip.acks.record()
	start := time.Now()
	total := int(float64(searchableRate) * b.o.FreshFor.Seconds())
	n, err := writeSteady(ctx, dsn, gen, nextID, searchableRate, total, func(id int64, sent time.Time) {
		if id%searchableEvery == 0 {
			probes <- probe{id, sent}
		}
	})
	close(probes)
	if err != nil {
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	if err := waitAcks(ctx, ip, before+int64(n), 2*time.Minute); err != nil {
		return err
	}
	acks := sortedCopy(ip.acks.stop())
	wg.Wait()
	res.AckSamples, res.AckP50, res.AckP99 = len(acks), percentile(acks, 50), percentile(acks, 99)
	readable, searchable = sortedCopy(readable), sortedCopy(searchable)
	res.Probed, res.TimedOut = len(searchable)+int(timedOut.Load()), int(timedOut.Load())
	res.ReadableP50, res.ReadableP99 = percentile(readable, 50), percentile(readable, 99)
	res.SearchableP50, res.SearchableP95 = percentile(searchable, 50), percentile(searchable, 95)
	res.SearchableP99, res.SearchableMax = percentile(searchable, 99), percentile(searchable, 100)
	if res.AckP99 > 0 {
		res.Ratio = res.SearchableP99 / res.AckP99
	}
	b.res.Searchable = res
	logf("searchable at %d rows/s: commit -> ack p50 %s p99 %s (%d rows); probed %d (%d timed out): readable p50 %s p99 %s, vector-searchable p50 %s p95 %s p99 %s max %s; %.2fx",
		searchableRate, ms(res.AckP50), ms(res.AckP99), res.AckSamples, res.Probed, res.TimedOut, ms(res.ReadableP50), ms(res.ReadableP99),
		ms(res.SearchableP50), ms(res.SearchableP95), ms(res.SearchableP99), ms(res.SearchableMax), res.Ratio)
	return nil
}

// probeRow returns the seconds from sent to the row's object readable by
// id, and to its being the top hit of a search by its own vector; ok is
// false when either took longer than searchableLimit. Polls start every
// 2 ms and back off to 50 ms, so that a probe costs Weaviate little.
func probeRow(ctx context.Context, client pb.WeaviateClient, coll string, id int64, sent time.Time) (readable, searchable float64, ok bool) {
	uuid := string(sink.ObjectID(coll, "public.docs", strconv.FormatInt(id, 10), 0))
	deadline := sent.Add(searchableLimit)
	wait := func(i int) bool {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(min(time.Duration(i+1)*2*time.Millisecond, 50*time.Millisecond))
		return true
	}
	var vector []byte
	for i := 0; ; i++ {
		reply, err := client.Search(ctx, &pb.SearchRequest{
			Collection: coll, Limit: 1, Uses_127Api: true,
			Filters: &pb.Filters{Operator: pb.Filters_OPERATOR_EQUAL,
				Target: &pb.FilterTarget{Target: &pb.FilterTarget_Property{Property: "_id"}}, TestValue: &pb.Filters_ValueText{ValueText: uuid}},
			Metadata: &pb.MetadataRequest{Uuid: true, Vector: true},
		})
		if err == nil && len(reply.GetResults()) == 1 {
			md := reply.GetResults()[0].GetMetadata()
			vector = md.GetVectorBytes()
			if len(vector) == 0 && len(md.GetVectors()) > 0 {
				vector = md.GetVectors()[0].GetVectorBytes()
			}
			if len(vector) > 0 {
				readable = time.Since(sent).Seconds()
				break
			}
		}
		if !wait(i) {
			return 0, 0, false
		}
	}
	for i := 0; ; i++ {
		reply, err := client.Search(ctx, &pb.SearchRequest{
			Collection: coll, Limit: 1, Uses_127Api: true,
			NearVector: &pb.NearVector{VectorBytes: vector},
			Metadata:   &pb.MetadataRequest{Uuid: true},
		})
		if err == nil && len(reply.GetResults()) == 1 && reply.GetResults()[0].GetMetadata().GetId() == uuid {
			return readable, time.Since(sent).Seconds(), true
		}
		if !wait(i) {
			return readable, 0, false
		}
	}
}
