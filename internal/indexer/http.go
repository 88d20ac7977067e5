package indexer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
)

// Dependencies whose reachability /readyz reports.
const (
	depPostgres = "postgres"
	depWeaviate = "weaviate"
)

// Read-your-writes wait limits.
const (
	defaultWaitTimeout = 30 * time.Second
	maxWaitTimeout     = 5 * time.Minute
)

// observability serves /metrics, /healthz and /readyz (contract section 5)
// and the read-your-writes endpoint /v1/wait.
//
// /readyz answers 200 while the indexer streams (setReady) and the last
// check of every dependency succeeded; a failed check (see watch) makes it
// answer 503 with the reason until a later check succeeds.
type observability struct {
	srv *http.Server
	m   *metrics.Metrics
	log zerolog.Logger

	ready    atomic.Bool
	standby  atomic.Bool // waiting for another instance's slot (standby.go)
	mu       sync.Mutex
	depErr   map[string]string // dependency -> why its last check failed
	progress atomic.Pointer[progress]
	slotWait atomic.Pointer[slotProgress] // a standby's view of the slot (standby.go)
	// vectorIndexed reports whether every collection the pipeline writes
	// has an empty vector indexing queue (searchable.go); nil before
	// streaming.
	vectorIndexed atomic.Pointer[func(context.Context) (bool, error)]
}

func startObservability(addr string, m *metrics.Metrics, log zerolog.Logger) (*observability, error) {
	o := &observability{m: m, log: log, depErr: map[string]string{}}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", o.handleReady)
	mux.HandleFunc("/v1/wait", o.handleWait)
	if addr == "" {
		return o, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("observability.listen: %w", err)
	}
	o.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("observability server")
		}
	}()
	return o, nil
}

// setReady says whether the indexer is streaming (or snapshotting).
func (o *observability) setReady(v bool) {
	o.ready.Store(v)
	o.updateReadyGauge()
}

// setStandby says whether the indexer waits as a standby: ready, since a
// standby is what it should be, but not streaming.
func (o *observability) setStandby(v bool) {
	o.standby.Store(v)
	v2 := 0.0
	if v {
		v2 = 1
	}
	o.m.Standby.Set(v2)
	o.updateReadyGauge()
}

// setDependency records the result of a dependency check.
func (o *observability) setDependency(name string, err error) {
	o.mu.Lock()
	prev, wasDown := o.depErr[name]
	if err == nil {
		delete(o.depErr, name)
	} else {
		o.depErr[name] = err.Error()
	}
	o.mu.Unlock()
	up := 1.0
	switch {
	case err != nil && !wasDown:
		up = 0
		o.log.Error().Err(err).Str("dependency", name).Msg("dependency unreachable: not ready")
	case err != nil:
		up = 0
		if prev != err.Error() {
			o.log.Warn().Err(err).Str("dependency", name).Msg("dependency still unreachable")
		}
	case wasDown:
		o.log.Info().Str("dependency", name).Msg("dependency reachable again")
	}
	o.m.Up.WithLabelValues(name).Set(up)
	o.updateReadyGauge()
}

// notReady is why /readyz fails, or "" when it passes.
func (o *observability) notReady() string {
	if o.standby.Load() {
		return ""
	}
	if !o.ready.Load() {
		return "not streaming"
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var reasons []string
	for _, dep := range []string{depPostgres, depWeaviate} {
		if e, ok := o.depErr[dep]; ok {
			reasons = append(reasons, dep+" unreachable: "+e)
		}
	}
	return strings.Join(reasons, "; ")
}

func (o *observability) updateReadyGauge() {
	v := 0.0
	if o.notReady() == "" {
		v = 1
	}
	o.m.Ready.Set(v)
}

func (o *observability) handleReady(w http.ResponseWriter, _ *http.Request) {
	if why := o.notReady(); why != "" {
		http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
		return
	}
	if o.standby.Load() {
		fmt.Fprintln(w, "ready (standby: another instance streams the slot)")
		return
	}
	fmt.Fprintln(w, "ready")
}

// waitResponse is the body of /v1/wait.
type waitResponse struct {
	LSN     string `json:"lsn,omitempty"`
	Applied string `json:"applied_lsn,omitempty"`
	// Searchable is set for searchable=true: the changes are found by
	// vector search too.
	Searchable bool   `json:"searchable,omitempty"`
	Error      string `json:"error,omitempty"`
}

// handleWait is GET /v1/wait?lsn=<pg_lsn>&timeout=<duration>[&searchable=true]:
// 200 once every change up to lsn is in Weaviate (and, with searchable,
// found by vector search: searchable.go), 408 when timeout passes first,
// 400 for a malformed request, 503 before streaming has started.
func (o *observability) handleWait(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, waitResponse{Error: "use GET"})
		return
	}
	q := r.URL.Query()
	lsn, err := parseLSN(q.Get("lsn"))
	if err != nil {
		o.m.Waits.WithLabelValues("bad_request").Inc()
		writeJSON(w, http.StatusBadRequest, waitResponse{Error: "lsn: " + err.Error()})
		return
	}
	searchable := false
	if s := q.Get("searchable"); s != "" {
		if searchable, err = strconv.ParseBool(s); err != nil {
			o.m.Waits.WithLabelValues("bad_request").Inc()
			writeJSON(w, http.StatusBadRequest, waitResponse{Error: fmt.Sprintf("searchable: %q is not true or false", s)})
			return
		}
	}
	timeout := defaultWaitTimeout
	if s := q.Get("timeout"); s != "" {
		if timeout, err = parseTimeout(s); err != nil {
			o.m.Waits.WithLabelValues("bad_request").Inc()
			writeJSON(w, http.StatusBadRequest, waitResponse{Error: "timeout: " + err.Error()})
			return
		}
	}
	var p interface {
		Wait(context.Context, pglogrepl.LSN) error
		Applied() pglogrepl.LSN
	}
	if pr := o.progress.Load(); pr != nil {
		p = pr
	} else if sp := o.slotWait.Load(); sp != nil {
		p = sp
	} else {
		writeJSON(w, http.StatusServiceUnavailable, waitResponse{LSN: lsn.String(), Error: "not streaming yet"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	err = p.Wait(ctx, lsn)
	resp := waitResponse{LSN: lsn.String(), Applied: p.Applied().String()}
	if err == nil && searchable {
		if err = o.waitVectorIndexed(ctx); err == nil {
			resp.Searchable = true
		} else if ctx.Err() != nil {
			err = fmt.Errorf("applied, but not yet found by vector search")
		}
	}
	switch {
	case err == nil:
		o.m.Waits.WithLabelValues("ok").Inc()
		writeJSON(w, http.StatusOK, resp)
	case r.Context().Err() != nil:
		// The client went away.
	default:
		o.m.Waits.WithLabelValues("timeout").Inc()
		resp.Error = fmt.Sprintf("not applied within %s", timeout)
		if searchable && ctx.Err() != nil && p.Applied() >= lsn {
			resp.Error = fmt.Sprintf("applied, but not found by vector search within %s (Weaviate's vector indexing queue has not drained)", timeout)
		}
		writeJSON(w, http.StatusRequestTimeout, resp)
	}
}

// parseTimeout reads a Go duration (250ms, 5s, 1m) or a number of seconds.
func parseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return 0, fmt.Errorf("%q is not a duration like 5s or 250ms", s)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return min(d, maxWaitTimeout), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (o *observability) Close() {
	if o.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if o.srv.Shutdown(ctx) != nil {
			_ = o.srv.Close() // cut off waits still open
		}
	}
}
