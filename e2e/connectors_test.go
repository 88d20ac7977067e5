package e2e

import (
	"context"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

// configOf writes a copy of the harness's configuration for another
// connector: the mappings at the given indexes, its own slot and
// publication, the same database, state schema and Weaviate.
func (h *harness) configOf(slot, publication string, mappings ...int) string {
	h.t.Helper()
	doc := h.configDoc()
	pg := doc["postgres"].(map[string]any)
	pg["slot"], pg["publication"] = slot, publication
	all := doc["tables"].([]any)
	var tables []any
	for _, i := range mappings {
		tables = append(tables, all[i])
	}
	doc["tables"] = tables
	path := filepath.Join(h.t.TempDir(), slot+".yaml")
	h.writeConfigDoc(path, doc)
	return path
}

// TestConnectorsShareOneSchema (contract section 1): two connectors over
// disjoint tables, each with its own slot and publication, share one
// database, one state schema and one Weaviate. Under a continuous workload
// on both tables each is killed with SIGKILL and restarted, and an online
// re-snapshot of each goes to its own connector; both end exact.
func TestConnectorsShareOneSchema(t *testing.T) {
	notes := mapping{Table: "public.notes", Template: "{{.note}}", KeySQL: "id::text", TextSQL: "coalesce(note, '')"}
	h := newHarness(t, articlesSchema+`CREATE TABLE notes (id int PRIMARY KEY, note text);`, articles(), notes)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfgA, listenA := h.configOf("cdc_articles", "pub_articles", 0), h.listen
	cfgB, listenB := h.configOf("cdc_notes", "pub_notes", 1), net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	a := h.startInstanceOf(cfgA, listenA)
	b := h.startInstanceOf(cfgB, listenB)

	h.seedArticles(1000)
	h.exec(`INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 500) g`)
	w := startWorkload(t, h.dsn, 2000)
	var noteTxs atomic.Int64
	stopNotes := make(chan struct{})
	notesDone := make(chan struct{})
	go func() {
		defer close(notesDone)
		conn, err := pgx.Connect(context.Background(), h.dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(context.Background())
		for i := 0; ; i++ {
			select {
			case <-stopNotes:
				return
			default:
			}
			sql := `UPDATE notes SET note = note || '+' WHERE id = $1`
			if i%7 == 0 {
				sql = `DELETE FROM notes WHERE id = $1`
			} else if i%5 == 0 {
				sql = `INSERT INTO notes VALUES ($1 + 1000, 'new') ON CONFLICT (id) DO UPDATE SET note = 'renewed'`
			}
			if _, err := conn.Exec(context.Background(), sql, 1+i%600); err != nil {
				t.Error(err)
				return
			}
			noteTxs.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()

	for _, kill := range []struct {
		cmd         **exec.Cmd
		cfg, listen string
	}{{&a, cfgA, listenA}, {&b, cfgB, listenB}} {
		time.Sleep(1500 * time.Millisecond)
		if err := (*kill.cmd).Process.Kill(); err != nil {
			t.Fatal(err)
		}
		waitGone(t, *kill.cmd)
		*kill.cmd = h.startInstanceOf(kill.cfg, kill.listen)
	}
	// Online re-snapshots while both stream: each request is served by the
	// connector of its own slot.
	for _, path := range []string{cfgA, cfgB} {
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		err = indexer.Snapshot(ctx, cfg, indexer.SnapshotOptions{Out: io.Discard}, zerolog.Nop())
		cancel()
		if err != nil {
			t.Fatalf("online snapshot with %s: %v", filepath.Base(path), err)
		}
	}
	time.Sleep(time.Second)
	w.finish()
	close(stopNotes)
	<-notesDone
	t.Logf("%d article and %d note transactions", w.txs.Load(), noteTxs.Load())

	for _, slot := range []string{"cdc_articles", "cdc_notes"} {
		h.cfg.Postgres.Slot = slot
		h.waitCaughtUp()
	}
	h.requireEqual("two connectors after kill -9 of each")
}
