// Package verify proves that each mapping's collection equals its table, and
// mends what differs (`cdc-indexer verify [--repair]`, contract section 6).
//
// Two passes, each in bounded memory. The table pass reads the table in key
// order (the snapshot engine's parallel keyset readers, in a snapshot of its
// own), renders and chunks every row exactly as the pipeline would, reads
// the objects of each chunk of rows by key over gRPC (every object of those
// keys in the row's tenant: surplus chunks and duplicates too), and compares
// (CompareRow). The collection pass walks every object with Weaviate's
// cursor and looks for objects whose row does not exist, or that sit in
// another tenant than their row's.
//
// Both passes compare a table read at one moment with a collection that a
// running connector keeps changing, so any difference may be a change still
// on its way. Every row with a difference is therefore a suspect, and
// suspects are compared again once the slot has confirmed everything
// written up to the moment of the recheck (the stream has applied it);
// up to three rounds, for rows that change again meanwhile. Only what
// still differs is reported. When no connector streams the slot, nothing is
// on its way, and one recheck confirms what the passes found.
package verify

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/pipeline"
	"github.com/cdc-indexer/cdc-indexer/internal/snapshot"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// Deps are what verification reads: the table mappings as the pipeline
// renders them, PostgreSQL, and Weaviate.
type Deps struct {
	DSN     string // for the table pass's readers
	Slot    string // whose confirmed position says the stream caught up
	Pool    *pgxpool.Pool
	Tables  []*pipeline.Table
	Chunker *transform.Chunker
	Sink    *sink.Weaviate
	// State, when set, is compared too: its record of each indexed row
	// must match what Weaviate holds (StateMismatch).
	State *state.Store
	// Dimensions is the vector length every object must have; 0 skips
	// the check (provider none).
	Dimensions int
}

// Options say what to verify.
type Options struct {
	// Tables limits verification to these configured tables (schema.name);
	// none: every mapping.
	Tables []string
	// Readers is the table pass's parallel readers (0: snapshot's default).
	Readers int
	// CatchUpTimeout bounds each wait for the stream before a recheck.
	CatchUpTimeout time.Duration
	// Sample limits the comparison to a slice of each mapping's keys (the
	// zero value: every key). Rows and objects outside it are read past,
	// not compared: a round costs about its fraction of the Weaviate reads.
	Sample Sample
}

// maxSuspects bounds the rows a mapping remembers for the recheck; past it
// the first pass's counts are reported unconfirmed (Report.Unconfirmed).
const maxSuspects = 100_000

// examplesPerKind is how many examples of each kind a report keeps.
const examplesPerKind = 5

// Run verifies every selected mapping and returns the report.
func Run(ctx context.Context, d Deps, opts Options, log zerolog.Logger) (*Report, error) {
	if opts.CatchUpTimeout <= 0 {
		opts.CatchUpTimeout = 2 * time.Minute
	}
	v := &verifier{d: d, opts: opts, log: log}
	tables, err := selectTables(d.Tables, opts.Tables)
	if err != nil {
		return nil, err
	}
	report := &Report{}
	for _, t := range tables {
		m, err := v.mapping(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("verify %s -> %s: %w", t.SourceTable, t.Collection, err)
		}
		report.Mappings = append(report.Mappings, m)
	}
	return report, nil
}

func selectTables(all []*pipeline.Table, names []string) ([]*pipeline.Table, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []*pipeline.Table
	for _, n := range names {
		name, err := connector.ParseTableName(n)
		if err != nil {
			return nil, fmt.Errorf("--table %s: %w", n, err)
		}
		found := false
		for _, t := range all {
			if t.Info.Name == name {
				out = append(out, t)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("--table %s: not a configured table", n)
		}
	}
	return out, nil
}

type verifier struct {
	d    Deps
	opts Options
	log  zerolog.Logger
}

// tally gathers one mapping's first-pass findings from parallel readers.
type tally struct {
	mu       sync.Mutex
	rows     int64
	objects  int64
	counts   map[string]int64
	suspects map[string]bool
	overflow bool
}

func (t *tally) add(findings []Finding) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, f := range findings {
		t.counts[f.Kind]++
		if len(t.suspects) < maxSuspects {
			t.suspects[f.Key] = true
		} else if !t.suspects[f.Key] {
			t.overflow = true
		}
	}
}

// mapping verifies one mapping.
func (v *verifier) mapping(ctx context.Context, t *pipeline.Table) (MappingReport, error) {
	start := time.Now()
	tl := &tally{counts: map[string]int64{}, suspects: map[string]bool{}}
	if _, err := snapshot.Run(ctx, snapshot.Config{
		DSN: v.d.DSN, Readers: v.opts.Readers, Apply: &tablePass{v: v, tally: tl}, Log: zerolog.Nop(),
	}, nil, []*pipeline.Table{t}); err != nil {
		return MappingReport{}, err
	}
	if err := v.collectionPass(ctx, t, tl); err != nil {
		return MappingReport{}, err
	}
	m := MappingReport{Table: t.SourceTable, Collection: v.d.Sink.ServedName(t.Collection), Version: t.Collection, Rows: tl.rows, Objects: tl.objects}
	if tl.overflow {
		// Too many to recheck: report the first pass.
		m.Unconfirmed = true
		m.Missing, m.Stale, m.Extra, m.Duplicate = tl.counts[Missing], tl.counts[Stale], tl.counts[Extra], tl.counts[Duplicate]
		return m, nil
	}
	findings, err := v.recheck(ctx, t, tl.suspects)
	if err != nil {
		return m, err
	}
	m.add(findings)
	v.log.Info().Str("table", t.SourceTable).Str("collection", t.Collection).Int64("rows", m.Rows).
		Int64("objects", m.Objects).Int("differences", len(findings)).Dur("elapsed", time.Since(start).Round(time.Millisecond)).
		Msg("verified")
	return m, nil
}

// tablePass is the snapshot engine's Applier for the table pass: it
// compares each chunk of rows it is handed instead of indexing it.
type tablePass struct {
	v     *verifier
	tally *tally
}

func (p *tablePass) Backfill(ctx context.Context, t *pipeline.Table, rows []pipeline.BackfillRow, _ pglogrepl.LSN) error {
	if sample := p.v.opts.Sample; sample.Fraction > 0 && sample.Fraction < 1 {
		in := rows[:0:0]
		for _, r := range rows {
			if sample.Includes(r.Key.String()) {
				in = append(in, r)
			}
		}
		rows = in
	}
	findings, err := p.v.compareRows(ctx, t, rows, false)
	if err != nil {
		return err
	}
	p.tally.mu.Lock()
	p.tally.rows += int64(len(rows))
	p.tally.mu.Unlock()
	p.tally.add(findings)
	return nil
}

// compareRows renders rows (a nil Row: the row does not exist), reads
// their objects and compares. allTenants reads every tenant (a recheck);
// otherwise each row's own tenant only (the collection pass covers the
// others).
func (v *verifier) compareRows(ctx context.Context, t *pipeline.Table, rows []pipeline.BackfillRow, allTenants bool) ([]Finding, error) {
	exp := make(map[string]*Expected, len(rows))
	byTenant := map[string][]string{}
	for _, r := range rows {
		key := r.Key.String()
		if r.Row == nil {
			exp[key] = nil
			byTenant[""] = append(byTenant[""], key)
			continue
		}
		doc, err := t.Renderer.Render(r.Row, r.Key, 0)
		if err != nil {
			// The pipeline makes such a row a dead letter and holds no
			// object for it: expect none.
			exp[key] = &Expected{Doc: nil}
			byTenant[""] = append(byTenant[""], key)
			continue
		}
		chunker := v.d.Chunker
		if t.Encoding != nil {
			chunker = t.Encoding.Chunker // a version built with other chunking
		}
		for i, s := range chunker.Split(doc.Text) {
			doc.Chunks = append(doc.Chunks, transform.Chunk{Index: i, Text: s})
		}
		exp[key] = &Expected{Doc: doc, Dimensions: v.d.Dimensions}
		tenant := doc.Tenant
		if allTenants {
			tenant = ""
		}
		byTenant[tenant] = append(byTenant[tenant], key)
	}
	objs := map[string][]sink.StoredObject{}
	for tenant, keys := range byTenant {
		for start := 0; start < len(keys); start += keyBatch {
			part := keys[start:min(start+keyBatch, len(keys))]
			found, err := v.d.Sink.KeyObjects(ctx, t.Collection, tenant, t.SourceTable, part, v.d.Dimensions > 0)
			if err != nil {
				return nil, err
			}
			for _, o := range found {
				objs[o.SourceKey] = append(objs[o.SourceKey], o)
			}
		}
	}
	var recorded map[string]state.DocState
	if v.d.State != nil {
		keys := make([]string, 0, len(exp))
		for k := range exp {
			keys = append(keys, k)
		}
		var err error
		if recorded, err = v.d.State.LookupDocuments(ctx, t.Collection, t.SourceTable, keys); err != nil {
			return nil, err
		}
	}
	var out []Finding
	for key, e := range exp {
		if e != nil && e.Doc == nil {
			e = nil // unrenderable: no object belongs to it
		}
		fs := CompareRow(v.d.Sink.ServedName(t.Collection), t.SourceTable, key, e, objs[key])
		if len(fs) == 0 && e != nil && v.d.State != nil {
			var rec *state.DocState
			if r, ok := recorded[key]; ok {
				rec = &r
			}
			fs = CompareState(key, e.Doc, rec)
		}
		if e != nil {
			tokens := 0
			for i, f := range fs {
				if f.Kind == Missing || f.Kind == Stale || f.Kind == StateMismatch {
					if tokens == 0 {
						for _, c := range e.Doc.Chunks {
							tokens += transform.CountTokens(c.Text)
						}
					}
					fs[i].tokens = tokens
				}
			}
		}
		out = append(out, fs...)
	}
	return out, nil
}

// keyBatch is how many keys one object read names.
const keyBatch = 500

// collectionPass walks the collection for objects of t's table whose row
// does not exist or is in another tenant.
func (v *verifier) collectionPass(ctx context.Context, t *pipeline.Table, tl *tally) error {
	tenanted := t.Renderer.Tenant() != ""
	return v.d.Sink.EachObjectPage(ctx, t.Collection, func(page []sink.StoredObject) error {
		var keys []connector.Key
		var objs []sink.StoredObject
		for _, o := range page {
			if o.SourceTable != t.SourceTable {
				continue // another mapping's table in a shared collection
			}
			if !v.opts.Sample.Includes(o.SourceKey) {
				continue
			}
			tl.mu.Lock()
			tl.objects++
			tl.mu.Unlock()
			k, err := pipeline.ParseSourceKey(t.Info, o.SourceKey)
			if err != nil {
				tl.add([]Finding{{Kind: Extra, Key: o.SourceKey, Chunk: o.ChunkIndex, ID: o.ID, Tenant: o.Tenant, lsn: o.SourceLSN, Detail: "source_key is not a key of the table: " + err.Error()}})
				continue
			}
			keys = append(keys, k)
			objs = append(objs, o)
		}
		if len(keys) == 0 {
			return nil
		}
		rows, err := connector.FetchRows(ctx, v.d.Pool, t.Info, keys)
		if err != nil {
			return err
		}
		var findings []Finding
		for _, o := range objs {
			row, ok := rows[o.SourceKey]
			switch {
			case !ok:
				findings = append(findings, Finding{Kind: Extra, Key: o.SourceKey, Chunk: o.ChunkIndex, ID: o.ID, Tenant: o.Tenant, lsn: o.SourceLSN, Detail: "the row does not exist"})
			case tenanted:
				if tenant, err := t.Renderer.TenantOf(row); err != nil || tenant != o.Tenant {
					findings = append(findings, Finding{Kind: Extra, Key: o.SourceKey, Chunk: o.ChunkIndex, ID: o.ID, Tenant: o.Tenant, lsn: o.SourceLSN,
						Detail: fmt.Sprintf("in tenant %q, the row's is %q", o.Tenant, tenant)})
				}
			}
		}
		tl.add(findings)
		return nil
	})
}

// recheck compares the suspects again after the stream has caught up, up
// to three rounds, and returns what still differs.
func (v *verifier) recheck(ctx context.Context, t *pipeline.Table, suspects map[string]bool) ([]Finding, error) {
	keys := make([]string, 0, len(suspects))
	for k := range suspects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var findings []Finding
	for round := 0; round < 3 && len(keys) > 0; round++ {
		streaming, err := v.awaitStream(ctx)
		if err != nil {
			return nil, err
		}
		findings = findings[:0]
		for start := 0; start < len(keys); start += keyBatch {
			part := keys[start:min(start+keyBatch, len(keys))]
			fs, err := v.compareKeys(ctx, t, part)
			if err != nil {
				return nil, err
			}
			findings = append(findings, fs...)
		}
		if !streaming {
			break // nothing is on its way: what differs now stays
		}
		still := map[string]bool{}
		for _, f := range findings {
			still[f.Key] = true
		}
		keys = keys[:0]
		for k := range still {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	}
	return findings, nil
}

// compareKeys re-reads the rows of keys now and compares them with all
// their objects, in every tenant.
func (v *verifier) compareKeys(ctx context.Context, t *pipeline.Table, keys []string) ([]Finding, error) {
	var parsed []connector.Key
	var out []Finding
	for _, k := range keys {
		key, err := pipeline.ParseSourceKey(t.Info, k)
		if err != nil {
			// Not a key of the table: every object of it is extra.
			objs, rerr := v.d.Sink.KeyObjects(ctx, t.Collection, "", t.SourceTable, []string{k}, false)
			if rerr != nil {
				return nil, rerr
			}
			out = append(out, CompareRow(v.d.Sink.ServedName(t.Collection), t.SourceTable, k, nil, objs)...)
			continue
		}
		parsed = append(parsed, key)
	}
	current, err := connector.FetchRows(ctx, v.d.Pool, t.Info, parsed)
	if err != nil {
		return nil, err
	}
	rows := make([]pipeline.BackfillRow, len(parsed))
	for i, k := range parsed {
		rows[i] = pipeline.BackfillRow{Key: k, Row: current[k.String()]}
	}
	fs, err := v.compareRows(ctx, t, rows, true)
	if err != nil {
		return nil, err
	}
	return append(out, fs...), nil
}

// awaitStream waits until the slot has confirmed everything written so far,
// when a connector streams it, and reports whether one does.
func (v *verifier) awaitStream(ctx context.Context) (bool, error) {
	var target string
	if err := v.d.Pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&target); err != nil {
		return false, fmt.Errorf("read the WAL position: %w", err)
	}
	to, _ := pglogrepl.ParseLSN(target)
	deadline := time.Now().Add(v.opts.CatchUpTimeout)
	for {
		var active bool
		var confirmed *string
		err := v.d.Pool.QueryRow(ctx, `SELECT active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`,
			v.d.Slot).Scan(&active, &confirmed)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && !active) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("postgres.slot %s: %w", v.d.Slot, err)
		}
		if confirmed != nil {
			if at, perr := pglogrepl.ParseLSN(*confirmed); perr == nil && at >= to {
				return true, nil
			}
		}
		if time.Now().After(deadline) {
			v.log.Warn().Str("slot", v.d.Slot).Stringer("target_lsn", to).
				Msg("the running connector did not catch up in time: comparing anyway; differences may be changes still on their way")
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
