package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

// TestCheckTellsItsOwnSlotFromAForeignHolder (contract section 1): `check`
// is a deployment gate that passes against the running connector's own
// slot, and fails, with the fix, for a slot a foreign consumer streams.
func TestCheckTellsItsOwnSlotFromAForeignHolder(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	c := h.start()
	out, code := h.cliExit("check")
	if code != 0 || !strings.Contains(out, "streamed by a running cdc-indexer") {
		t.Fatalf("check against the running connector's slot: exit %d\n%s", code, out)
	}
	c.stop(t)

	recv, err := testenv.PostgresProgram(context.Background(), "pg_recvlogical")
	if err != nil {
		t.Fatal(err)
	}
	foreign := exec.Command(recv, "-d", h.dsn, "--slot", h.cfg.Postgres.Slot, "--start",
		"-o", "proto_version=1", "-o", "publication_names="+h.cfg.Postgres.Publication, "-f", "/dev/null")
	if err := foreign.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = foreign.Process.Kill(); _ = foreign.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, code = h.cliExit("check")
		if strings.Contains(out, "is active") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code != 1 || !strings.Contains(out, `"pg_recvlogical"`) || !strings.Contains(out, "pg_terminate_backend(") {
		t.Fatalf("check against a slot pg_recvlogical streams: exit %d; want 1 naming the holder and the fix\n%s", code, out)
	}
}

// cliExit runs the binary like cli and returns its output and exit code.
func (h *harness) cliExit(args ...string) (string, int) {
	h.t.Helper()
	bin, err := binary()
	if err != nil {
		h.t.Fatal(err)
	}
	out, err := exec.Command(bin, append(args, "--config", h.cfgPath)...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		h.t.Fatalf("cdc-indexer %s: %v", strings.Join(args, " "), err)
		return "", -1
	}
}
