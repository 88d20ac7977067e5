package main

import (
	"github.com/spf13/cobra"

	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
)

func newReindexCmd() *cobra.Command {
	var (
		tables []string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "reindex",
		Short: "Rebuild collections without downtime while run streams",
		Long: `Rebuild collections without downtime while run streams.
Each configured collection is served as a Weaviate alias over a physical version.
A reindex fills a new version from the tables (resumable, behind live changes)
while the stream keeps both versions current, then moves the alias in one step
and deletes the old version after reindex.retention. run does this by itself
when a mapping's template, metadata, tenant, the chunking or the embedding model
or dimensions changed; reindex forces it (after a provider changed a model
behind the same name, say). With --table, the collections those tables map into
are rebuilt (every mapping into them); without, every configured collection.
The request is kept in the state schema: if no run streams, the next one does it.
Exits 0 once every rebuilt collection serves.`,
		Example: `  cdc-indexer reindex --config config.yaml
  cdc-indexer reindex --config config.yaml --table public.articles
  cdc-indexer reindex --config config.yaml --dry-run   # rows, tokens and cost of the rebuild`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := loadConfigAndLogger(cmd)
			if err != nil {
				return err
			}
			return indexer.Reindex(cmd.Context(), cfg, indexer.ReindexOptions{Tables: tables, DryRun: dryRun, Out: cmd.OutOrStdout()}, log)
		},
	}
	cmd.Flags().StringArrayVar(&tables, "table", nil, "rebuild the collection this table (schema.name) maps into; repeatable")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report the rows, chunks, tokens and cost of the rebuild; change nothing")
	return cmd
}
