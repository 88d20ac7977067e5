// Package teardown removes what the connector created (`cdc-indexer
// teardown`): a forgotten logical replication slot keeps every WAL segment
// since its position and fills the primary's disk, so an operator who is
// done with the connector needs one safe command to remove it all. Safe
// means: never while a connector streams the slot, never a publication the
// connector did not create, never a state schema other connectors still
// use, and nothing before the operator saw the plan.
package teardown

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/sink"
)

// Plan is what a teardown removes, and what it keeps and why.
type Plan struct {
	Slot        string   `json:"slot,omitempty"`         // "" when there is none to drop
	Publication string   `json:"publication,omitempty"`  // "" when there is none to drop (or it is not the connector's)
	StateSchema string   `json:"state_schema,omitempty"` // "" when there is none to drop (or other slots still use it)
	Collections []string `json:"collections,omitempty"`  // with --collections: those that exist, versions included
	Aliases     []string `json:"aliases,omitempty"`      // with --collections: the configured names served as aliases
	Kept        []string `json:"kept,omitempty"`         // what stays, and why
}

// Empty reports whether there is nothing to remove.
func (p Plan) Empty() bool {
	return p.Slot == "" && p.Publication == "" && p.StateSchema == "" && len(p.Collections) == 0
}

// Print writes the plan.
func (p Plan) Print(w io.Writer) {
	if p.Slot != "" {
		fmt.Fprintf(w, "drop replication slot %s\n", p.Slot)
	}
	if p.Publication != "" {
		fmt.Fprintf(w, "drop publication %s\n", p.Publication)
	}
	if p.StateSchema != "" {
		fmt.Fprintf(w, "drop schema %s (the connector's state) and everything in it\n", p.StateSchema)
	}
	for _, a := range p.Aliases {
		fmt.Fprintf(w, "delete Weaviate alias %s\n", a)
	}
	for _, c := range p.Collections {
		fmt.Fprintf(w, "delete Weaviate collection %s and all its objects\n", c)
	}
	for _, k := range p.Kept {
		fmt.Fprintf(w, "keep %s\n", k)
	}
	if p.Empty() {
		fmt.Fprintln(w, "nothing to remove")
	}
}

// ErrSlotActive is returned by Prepare while a connection streams the slot.
var ErrSlotActive = errors.New("the slot is streamed")

// Prepare reads what exists and returns the plan; it changes nothing. It
// refuses while a connection streams the slot: stop `cdc-indexer run`
// (every instance) first.
func Prepare(ctx context.Context, cfg *config.Config, withCollections bool) (Plan, error) {
	var p Plan
	db, err := pgx.Connect(ctx, cfg.Postgres.DSN)
	if err != nil {
		return p, fmt.Errorf("postgres.dsn: %w", err)
	}
	defer db.Close(ctx)

	slot, err := connector.SlotInfo(ctx, db, cfg.Postgres.Slot)
	if err != nil {
		return p, fmt.Errorf("postgres.slot: %w", err)
	}
	if slot.Active {
		return p, fmt.Errorf("postgres.slot %s: %w by pid %d: stop cdc-indexer run (every instance, standbys too) and try again", cfg.Postgres.Slot, ErrSlotActive, slot.ActivePID)
	}
	if slot.Exists {
		p.Slot = cfg.Postgres.Slot
	}

	var comment *string
	err = db.QueryRow(ctx, `SELECT obj_description(oid, 'pg_publication') FROM pg_catalog.pg_publication WHERE pubname = $1`,
		cfg.Postgres.Publication).Scan(&comment)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return p, fmt.Errorf("postgres.publication: %w", err)
	case comment != nil && *comment == connector.PublicationComment:
		p.Publication = cfg.Postgres.Publication
	default:
		p.Kept = append(p.Kept, fmt.Sprintf("publication %s: the connector did not create it (drop it yourself if it is no longer needed: DROP PUBLICATION %s;)",
			cfg.Postgres.Publication, connector.QuoteIdent(cfg.Postgres.Publication)))
	}

	schema := cfg.Postgres.StateSchema
	var exists bool
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return p, fmt.Errorf("postgres.state_schema: %w", err)
	}
	if exists {
		others, err := otherSlots(ctx, db, schema, cfg.Postgres.Slot)
		if err != nil {
			return p, err
		}
		if len(others) > 0 {
			p.Kept = append(p.Kept, fmt.Sprintf("state schema %s: connectors of slots %v use it too (tear those down, then this schema goes with the last)", schema, others))
		} else {
			p.StateSchema = schema
		}
	}

	if withCollections {
		w, err := sink.New(ctx, cfg.Weaviate.SinkConfig())
		if err != nil {
			return p, fmt.Errorf("weaviate: %w", err)
		}
		defer w.Close()
		seen := map[string]bool{}
		for _, t := range cfg.Tables {
			if seen[t.Collection] {
				continue
			}
			seen[t.Collection] = true
			// The configured name is an alias over versions (or, from
			// before versions, a plain collection): all of them go.
			alias, err := w.Alias(ctx, t.Collection)
			if err != nil {
				return p, fmt.Errorf("weaviate: %w", err)
			}
			if alias != "" {
				p.Aliases = append(p.Aliases, t.Collection)
			}
			versions, err := w.Versions(ctx, t.Collection)
			if err != nil {
				return p, fmt.Errorf("weaviate: %w", err)
			}
			p.Collections = append(p.Collections, versions...)
		}
		sort.Strings(p.Collections)
	}
	return p, nil
}

// otherSlots are the slots other than slot that keep a checkpoint in the
// state schema: connectors sharing it.
func otherSlots(ctx context.Context, db *pgx.Conn, schema, slot string) ([]string, error) {
	var hasCheckpoint bool
	if err := db.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, connector.QuoteIdent(schema)+".checkpoint").Scan(&hasCheckpoint); err != nil || !hasCheckpoint {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT slot FROM `+connector.QuoteIdent(schema)+`.checkpoint WHERE slot <> $1 ORDER BY slot`, slot)
	if err != nil {
		return nil, fmt.Errorf("postgres.state_schema: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Execute carries out a plan: the slot first (it is what fills the disk),
// then the publication, the state schema and the collections.
func Execute(ctx context.Context, cfg *config.Config, p Plan) error {
	db, err := pgx.Connect(ctx, cfg.Postgres.DSN)
	if err != nil {
		return fmt.Errorf("postgres.dsn: %w", err)
	}
	defer db.Close(ctx)
	if p.Slot != "" {
		if _, err := db.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, p.Slot); err != nil {
			return fmt.Errorf("drop replication slot %s: %w", p.Slot, err)
		}
	}
	if p.Publication != "" {
		if _, err := db.Exec(ctx, `DROP PUBLICATION IF EXISTS `+connector.QuoteIdent(p.Publication)); err != nil {
			return fmt.Errorf("drop publication %s: %w", p.Publication, err)
		}
	}
	if p.StateSchema != "" {
		if _, err := db.Exec(ctx, `DROP SCHEMA IF EXISTS `+connector.QuoteIdent(p.StateSchema)+` CASCADE`); err != nil {
			return fmt.Errorf("drop schema %s: %w", p.StateSchema, err)
		}
	}
	if len(p.Collections) > 0 {
		w, err := sink.New(ctx, cfg.Weaviate.SinkConfig())
		if err != nil {
			return fmt.Errorf("weaviate: %w", err)
		}
		defer w.Close()
		for _, a := range p.Aliases {
			if err := w.DeleteAlias(ctx, a); err != nil {
				return err
			}
		}
		for _, c := range p.Collections {
			if err := w.DeleteCollection(ctx, c); err != nil {
				return err
			}
		}
	}
	return nil
}
