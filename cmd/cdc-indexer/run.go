package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
)

// runIndexer is indexer.Run and runStandby indexer.RunStandby; tests
// replace them.
var (
	runIndexer = indexer.Run
	runStandby = indexer.RunStandby
)

func newRunCmd() *cobra.Command {
	var standby bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Stream changes from the replication slot into Weaviate until SIGINT or SIGTERM",
		Long: `Stream changes from the replication slot into Weaviate until SIGINT or SIGTERM.
On a signal it stops reading, finishes or abandons in-flight work, confirms
only what Weaviate acknowledged, and exits 0. A second signal exits at once.

A second run on a slot that a live instance streams fails fast, unless it is
started with --standby: then it waits, answering /readyz as a ready standby,
and takes the slot over within seconds of the holder ending.`,
		Example: `  cdc-indexer run --config config.yaml
  cdc-indexer run --config config.yaml --standby   # wait beside the instance that streams
  CDC_INDEXER_CONFIG=config.yaml CDC_INDEXER_POSTGRES_DSN=postgres://... cdc-indexer run`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := loadConfigAndLogger(cmd)
			if err != nil {
				return err
			}

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			returned := make(chan struct{})
			watched := make(chan struct{})
			go func() {
				defer close(watched)
				select {
				case <-ctx.Done():
					// Restore the default handling, so that a second signal
					// ends a shutdown that hangs.
					stop()
					log.Info().Str("cause", context.Cause(ctx).Error()).Msg("shutting down")
				case <-returned:
				}
			}()

			log.Info().Str("version", version).Str("commit", buildCommit()).Object("config", cfg).Msg("starting")
			run := runIndexer
			if standby {
				run = runStandby
			}
			err = run(ctx, cfg, log)
			close(returned)
			<-watched
			if err != nil && !(ctx.Err() != nil && errors.Is(err, context.Canceled)) {
				return fmt.Errorf("run: %w", err)
			}
			log.Info().Msg("stopped")
			return nil
		},
	}
	cmd.Flags().BoolVar(&standby, "standby", false, "wait while another instance streams the slot, ready to take it over")
	return cmd
}
