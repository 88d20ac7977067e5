package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestSigtermUnderLoadStopsWithinTheBudget (issue: shutdown budget): SIGTERM
// while ~1,000 single-row commits a second stream in: the process exits 0
// within pipeline.shutdown_timeout (the whole stop, drain and pipeline
// together, so an orchestrator's grace period sized to it is never
// overrun), and the next start is clean: nothing is replayed as after a
// crash, and Weaviate equals the table.
func TestSigtermUnderLoadStopsWithinTheBudget(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	budget := h.cfg.Pipeline.ShutdownTimeout
	p := h.startCommand("run")
	h.waitProcessReady(p)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The writer has a connection of its own: cancelling a query closes
	// the connection it runs on.
	writer, err := pgx.Connect(context.Background(), h.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close(context.Background())
	written := make(chan int, 1)
	go func() {
		n := 0
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			<-tick.C
			n++
			if _, err := writer.Exec(ctx, fmt.Sprintf(`INSERT INTO articles VALUES (%d, 'load %d', 'body', 'a', 1, NULL)`, n, n)); err != nil {
				n--
				break
			}
		}
		written <- n
	}()
	time.Sleep(3 * time.Second)
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = p.wait(budget + 5*time.Second)
	took := time.Since(start)
	cancel()
	n := <-written
	if err != nil {
		t.Fatalf("run after SIGTERM under load (%d rows written): %v\n%s", n, err, tail(p.log(), 3000))
	}
	t.Logf("stopped %s after SIGTERM with %d rows written at about %d rows/s; budget %s", took.Round(time.Millisecond), n, n/3, budget)
	if took > budget+2*time.Second {
		t.Errorf("stop took %s, past the %s budget", took, budget)
	}

	next := h.startCommand("run")
	h.waitProcessReady(next)
	if strings.Contains(next.log(), "did not stop cleanly") {
		t.Errorf("the next start replays as after a crash:\n%s", tail(next.log(), 2000))
	}
	h.waitCaughtUpBy(next)
	h.requireEqual("after a SIGTERM under load and a restart")
}

// waitProcessReady waits until the harness's /readyz answers 200, failing
// at once if p exits first.
func (h *harness) waitProcessReady(p *process) {
	h.t.Helper()
	waitFor(h.t, "connector ready", time.Minute, func() bool {
		if p.exited() {
			h.t.Fatalf("%s exited before it was ready:\n%s", p.cmd.Args[1], tail(p.log(), 3000))
		}
		resp, err := http.Get("http://" + h.listen + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// waitCaughtUpBy is waitCaughtUp for a connector running as a process.
func (h *harness) waitCaughtUpBy(p *process) {
	h.t.Helper()
	h.waitConfirmedByProcess(p, h.currentLSN(), 2*time.Minute)
}
