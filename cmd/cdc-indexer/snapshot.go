package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
)

func newSnapshotCmd() *cobra.Command {
	var tables []string
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Backfill the configured tables (or those named with --table) consistently",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if _, err := selectTables(cfg, tables); err != nil {
				return err
			}
			return errors.New("snapshot: not implemented yet")
		},
	}
	cmd.Flags().StringArrayVar(&tables, "table", nil,
		"schema.table to backfill, as in tables[].table; repeat for several (default: every configured table)")
	return cmd
}

// selectTables returns the mappings of the named tables, every mapping when
// none is named. A name matches however it is spelled (articles,
// public.articles, "public"."articles"); one naming no configured table is a
// usage error.
func selectTables(cfg *config.Config, names []string) ([]config.Table, error) {
	if len(names) == 0 {
		return cfg.Tables, nil
	}
	want := map[connector.TableName]bool{}
	for _, n := range names {
		name, err := connector.ParseTableName(n)
		if err != nil {
			return nil, usageError{fmt.Errorf("--table: %w", err)}
		}
		want[name] = true
	}
	var out []config.Table
	found := map[connector.TableName]bool{}
	var configured []string
	for _, t := range cfg.Tables {
		// Validate has parsed every configured name already.
		name, _ := connector.ParseTableName(t.Table)
		configured = append(configured, name.String())
		if want[name] {
			out = append(out, t)
			found[name] = true
		}
	}
	for _, n := range names {
		name, _ := connector.ParseTableName(n)
		if !found[name] {
			return nil, usageError{fmt.Errorf("--table %s: not a configured table (configured: %s)", n, strings.Join(configured, ", "))}
		}
	}
	return out, nil
}
