package e2e

import (
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

// TestStandbyTakesOver (contract section 1, `run --standby`): two
// processes on one slot under a continuous mixed workload; the active one
// is killed with SIGKILL three times, alternating, and restarted as a
// standby. The standby answers /readyz as a ready standby and /v1/wait from
// the slot meanwhile, takes over within the contract's 10 seconds each
// time, and Weaviate ends exact.
func TestStandbyTakesOver(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	type instance struct {
		listen string
		cmd    *exec.Cmd
	}
	active := &instance{listen: h.listen}
	standby := &instance{listen: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	active.cmd = h.startInstance(active.listen, "--standby") // a standby with nobody to wait for streams
	standby.cmd = h.startInstance(standby.listen, "--standby")
	if body := readyzAt(t, standby.listen); !strings.Contains(body, "standby") {
		t.Fatalf("second instance /readyz %q; want a ready standby", body)
	}
	if body := readyzAt(t, active.listen); strings.Contains(body, "standby") {
		t.Fatalf("first instance /readyz %q; want it streaming", body)
	}

	h.seedArticles(2000)
	// Read-your-writes through the standby: it answers from the slot
	// that the streaming instance confirms.
	resp, err := http.Get("http://" + standby.listen + "/v1/wait?timeout=60s&lsn=" + h.walLSN())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/v1/wait on the standby: %d %s", resp.StatusCode, body)
	}
	w := startWorkload(t, h.dsn, 3000)
	for i := 1; i <= 3; i++ {
		time.Sleep(1500 * time.Millisecond)
		if err := active.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		waitFor(t, "standby streaming", 30*time.Second, func() bool {
			return strings.TrimSpace(readyzAt(t, standby.listen)) == "ready"
		})
		took := time.Since(killed)
		t.Logf("kill -9 #%d after %d transactions: the standby on %s streams after %s", i, w.txs.Load(), standby.listen, took.Round(10*time.Millisecond))
		if took > 10*time.Second {
			t.Errorf("takeover #%d took %s; the contract allows 10 s", i, took)
		}
		waitGone(t, active.cmd)
		active.cmd = h.startInstance(active.listen, "--standby")
		active, standby = standby, active
	}
	time.Sleep(time.Second)
	w.finish()
	h.verifyExact("standby takeovers after kill -9 x3 under mixed workload", int(w.written.Load())+2000, nil)
}

// readyzAt is the body of /readyz on listen ("" when it does not answer 200).
func readyzAt(t *testing.T, listen string) string {
	t.Helper()
	resp, err := http.Get("http://" + listen + "/readyz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}
