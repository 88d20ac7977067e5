package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
)

const decodeTarget = 0.7

type decodeRound struct {
	First            string  `json:"first"`
	RecvSeconds      float64 `json:"pg_recvlogical_seconds"`
	ConnectorSeconds float64 `json:"connector_seconds"`
	Ratio            float64 `json:"ratio"`
	// CPU seconds: the walsender (all of PostgreSQL) and the reader
	// (pg_recvlogical, or this process running connector.Stream).
	RecvCPU      decodeCPU `json:"pg_recvlogical_cpu_seconds"`
	ConnectorCPU decodeCPU `json:"connector_cpu_seconds"`
}

type decodeCPU struct {
	Postgres float64 `json:"postgres"`
	Reader   float64 `json:"reader"`
}

type decodeResult struct {
	Rows     int           `json:"rows_per_transaction"`
	WALBytes int64         `json:"wal_bytes_per_transaction"`
	Rounds   []decodeRound `json:"rounds"`
	// Rates over all rounds: rows / total seconds.
	RecvRowsPerSecond      float64 `json:"pg_recvlogical_rows_per_second"`
	ConnectorRowsPerSecond float64 `json:"connector_rows_per_second"`
	Ratio                  float64 `json:"ratio"`
	// Microseconds of CPU per row, over all rounds.
	WalsenderMicrosPerRow float64 `json:"walsender_cpu_us_per_row"`
	RecvMicrosPerRow      float64 `json:"pg_recvlogical_cpu_us_per_row"`
	ReaderMicrosPerRow    float64 `json:"connector_reader_cpu_us_per_row"`
}

func (d *decodeResult) rows() []row {
	return []row{{
		Section:  "decode",
		Measure:  fmt.Sprintf("reader rows/s draining a %s-row transaction (connector.Stream -> discard)", thousands(int64(d.Rows))),
		Value:    rate(d.ConnectorRowsPerSecond, "rows/s"),
		Baseline: rate(d.RecvRowsPerSecond, "rows/s pg_recvlogical"),
		Ratio:    ratioStr(d.Ratio),
		Target:   fmt.Sprintf(">= %.2fx", decodeTarget),
		Status:   status(d.Ratio, decodeTarget, true),
	}}
}

// decode compares the connector's reader with pg_recvlogical on the same
// WAL: each round creates two slots, commits one large transaction, and
// lets each reader drain it from its own slot.
func (b *bench) decode(ctx context.Context) error {
	const db, pub = "bench_decode", "bench_decode"
	dsn, err := b.database(ctx, db)
	if err != nil {
		return err
	}
	defer b.dropDatabase(db)
	recvBin, err := pgBinary("pg_recvlogical")
	if err != nil {
		return err
	}
	if err := execSQL(ctx, dsn, "CREATE PUBLICATION "+pub+" FOR TABLE public.docs"); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	infos, err := connector.DescribeTables(ctx, conn, []connector.TableName{{Schema: "public", Name: "docs"}})
	if err != nil {
		return err
	}

	res := &decodeResult{Rows: b.o.DecodeRows}
	var recvTotal, connTotal time.Duration
	gen := rowGen{words: b.o.Words}
	for r := 0; r < b.o.DecodeRounds; r++ {
		recvSlot, connSlot := fmt.Sprintf("bench_recv_%d", r), fmt.Sprintf("bench_conn_%d", r)
		for _, s := range []string{recvSlot, connSlot} {
			if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", s); err != nil {
				return fmt.Errorf("create slot %s: %w", s, err)
			}
		}
		startLSN, err := insertLSN(ctx, conn)
		if err != nil {
			return err
		}
		logf("decode round %d: COPY of %s rows in one transaction", r+1, thousands(int64(res.Rows)))
		done, err := fillRows(ctx, dsn, gen, int64(r*res.Rows+1), res.Rows)
		if err != nil {
			return err
		}
		res.WALBytes = int64(done.EndLSN - startLSN)
		// A later transaction on the table: pg_recvlogical stops at the
		// first message at or past endpos, which is that transaction's
		// begin, right after the large transaction's commit.
		if _, err := conn.Exec(ctx, "INSERT INTO public.docs (id, title, body, author, category) VALUES ($1, 'end', 'end', 'a', 'c')", -int64(r+1)); err != nil {
			return err
		}

		var rd decodeRound
		runRecv := func() error {
			use0 := b.cpu.now()
			d, clientCPU, err := runRecvlogical(ctx, recvBin, dsn, recvSlot, pub, done.EndLSN)
			time.Sleep(200 * time.Millisecond) // the walsender exits and is reaped
			rd.RecvSeconds = d.Seconds()
			rd.RecvCPU = decodeCPU{Postgres: b.cpu.now().minus(use0).Postgres, Reader: clientCPU.Seconds()}
			recvTotal += d
			return err
		}
		runConn := func() error {
			use0 := b.cpu.now()
			d, err := drainStream(ctx, dsn, connSlot, pub, infos, res.Rows)
			time.Sleep(200 * time.Millisecond)
			use := b.cpu.now().minus(use0)
			rd.ConnectorSeconds = d.Seconds()
			rd.ConnectorCPU = decodeCPU{Postgres: use.Postgres, Reader: use.Bench}
			connTotal += d
			return err
		}
		steps := []func() error{runRecv, runConn}
		rd.First = "pg_recvlogical"
		if r%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
			rd.First = "connector"
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		rd.Ratio = rd.RecvSeconds / rd.ConnectorSeconds
		res.Rounds = append(res.Rounds, rd)
		logf("decode round %d: pg_recvlogical %.2f s (%s rows/s), connector %.2f s (%s rows/s), ratio %.2f; CPU s: walsender %.2f/%.2f, reader: pg_recvlogical %.2f, connector %.2f",
			r+1, rd.RecvSeconds, thousands(int64(float64(res.Rows)/rd.RecvSeconds)),
			rd.ConnectorSeconds, thousands(int64(float64(res.Rows)/rd.ConnectorSeconds)), rd.Ratio,
			rd.RecvCPU.Postgres, rd.ConnectorCPU.Postgres, rd.RecvCPU.Reader, rd.ConnectorCPU.Reader)
		for _, s := range []string{recvSlot, connSlot} {
			dropSlot(ctx, conn, s)
		}
	}
	n := float64(res.Rows * len(res.Rounds))
	res.RecvRowsPerSecond = n / recvTotal.Seconds()
	res.ConnectorRowsPerSecond = n / connTotal.Seconds()
	res.Ratio = res.ConnectorRowsPerSecond / res.RecvRowsPerSecond
	var wal, recv, reader float64
	for _, rd := range res.Rounds {
		wal += rd.RecvCPU.Postgres + rd.ConnectorCPU.Postgres
		recv += rd.RecvCPU.Reader
		reader += rd.ConnectorCPU.Reader
	}
	res.WalsenderMicrosPerRow = 1e6 * wal / (2 * n)
	res.RecvMicrosPerRow = 1e6 * recv / n
	res.ReaderMicrosPerRow = 1e6 * reader / n
	b.res.Decode = res
	return nil
}

// runRecvlogical drains the slot to endpos with pg_recvlogical, output to
// /dev/null, and returns how long it took from start to exit.
func runRecvlogical(ctx context.Context, bin, dsn, slot, pub string, endpos pglogrepl.LSN) (time.Duration, time.Duration, error) {
	cmd := exec.CommandContext(ctx, bin, "-d", dsn, "--slot", slot, "--start",
		"-o", "proto_version=1", "-o", "publication_names="+pub,
		"-f", "/dev/null", "--endpos", endpos.String(), "--no-loop")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("pg_recvlogical: %w: %s", err, stderr.String())
	}
	elapsed := time.Since(start)
	return elapsed, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// drainStream runs connector.Stream on the slot with a consumer that only
// counts, until the first commit after want changes, and returns the time
// from Run to that commit.
func drainStream(ctx context.Context, dsn, slot, pub string, infos []connector.TableInfo, want int) (time.Duration, error) {
	st := connector.NewStream(connector.StreamConfig{DSN: dsn, Slot: slot, Publication: pub, Tables: infos, Logger: zerolog.Nop()})
	out := make(chan connector.Message, 1024) // as indexer.Run
	var confirmed atomic.Uint64
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		errc <- st.Run(rctx, out, func() pglogrepl.LSN { return pglogrepl.LSN(confirmed.Load()) })
	}()
	changes := 0
	var elapsed time.Duration
	timeout := time.After(30 * time.Minute)
loop:
	for {
		select {
		case msg := <-out:
			switch m := msg.(type) {
			case *connector.Change:
				changes++
			case *connector.Commit:
				confirmed.Store(uint64(m.CommitLSN))
				if changes >= want {
					elapsed = time.Since(start)
					break loop
				}
			}
		case err := <-errc:
			return 0, fmt.Errorf("replication stream ended after %d changes: %w", changes, err)
		case <-timeout:
			return 0, fmt.Errorf("replication stream: %d of %d changes after 30 minutes", changes, want)
		}
	}
	cancel()
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		return 0, err
	}
	if changes != want {
		return 0, fmt.Errorf("replication stream: %d changes in the transaction, want %d", changes, want)
	}
	return elapsed, nil
}

// pgBinary finds a PostgreSQL client program next to the server the
// testenv uses.
func pgBinary(name string) (string, error) {
	var dirs []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	dirs = append(dirs, "/usr/lib/postgresql/15/bin")
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found (looked in %s and $PATH)", name, strings.Join(dirs, ", "))
}

// dropSlot drops a slot once its walsender has gone (a reader that just
// disconnected may still hold it for a moment).
func dropSlot(ctx context.Context, conn *pgx.Conn, slot string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot)
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			logf("drop slot %s: %v", slot, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
