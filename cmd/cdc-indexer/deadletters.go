package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/migrations"
)

// deadLetterFlags select dead letters for the deadletters subcommands.
type deadLetterFlags struct {
	table string
	keys  []string
	ids   []int64
	all   bool
}

func (f *deadLetterFlags) register(cmd *cobra.Command, withAll bool) {
	cmd.Flags().StringVar(&f.table, "table", "", "only rows of this table (schema.table, as in tables[].table)")
	cmd.Flags().StringArrayVar(&f.keys, "key", nil, "only the row with this source_key (repeat for several); needs --table")
	cmd.Flags().Int64SliceVar(&f.ids, "id", nil, "only the dead letters with these ids (as `list` shows)")
	if withAll {
		cmd.Flags().BoolVar(&f.all, "all", false, "every dead letter (required when no other filter is given)")
	}
}

func (f *deadLetterFlags) filter() (state.DeadLetterFilter, error) {
	var out state.DeadLetterFilter
	if f.table != "" {
		name, err := connector.ParseTableName(f.table)
		if err != nil {
			return out, usageError{fmt.Errorf("--table: %w", err)}
		}
		out.SourceTable = name.String()
	}
	if len(f.keys) > 0 {
		if f.table == "" {
			return out, usageError{errors.New("--key needs --table")}
		}
		out.SourceKeys = f.keys
	}
	if len(f.ids) > 0 {
		out.IDs = f.ids
	}
	return out, nil
}

func (f *deadLetterFlags) selective() bool { return f.table != "" || len(f.keys) > 0 || len(f.ids) > 0 }

func newDeadLettersCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "deadletters",
		Short: "List, retry or purge rows that could not be indexed",
		Long: `Rows that fail permanently (the template cannot render them, the embedding
provider rejects their text, Weaviate refuses their object) are recorded as
dead letters after a few attempts, and their objects are removed from the
index; the rest of the stream goes on.

  list   shows them
  retry  asks the running (or next) cdc-indexer run to re-read each row by
         key and index its current version, after the cause was fixed; a row
         that fails again is recorded again
  purge  forgets them (the rows stay out of the index until they change)`,
	}
	root.AddCommand(newDeadLettersListCmd(), newDeadLettersRetryCmd(), newDeadLettersPurgeCmd())
	return root
}

func newDeadLettersListCmd() *cobra.Command {
	var f deadLetterFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show the dead letters: table, key, LSN, attempts, error",
		Example: `  cdc-indexer deadletters list --config config.yaml
  cdc-indexer deadletters list --config config.yaml --table public.articles --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, func(ctx context.Context, s *state.Store) error {
				flt, err := f.filter()
				if err != nil {
					return err
				}
				letters, err := s.FindDeadLetters(ctx, flt)
				if err != nil {
					return err
				}
				if asJSON {
					return printDeadLettersJSON(cmd.OutOrStdout(), letters)
				}
				printDeadLetters(cmd.OutOrStdout(), letters)
				return nil
			})
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the dead letters as JSON")
	return cmd
}

// deadLetterJSON is a dead letter as `list --json` prints it.
type deadLetterJSON struct {
	ID             int64     `json:"id"`
	Collection     string    `json:"collection"`
	SourceTable    string    `json:"source_table"`
	SourceKey      string    `json:"source_key"`
	LSN            string    `json:"lsn"`
	Error          string    `json:"error"`
	Attempts       int       `json:"attempts"`
	RetryRequested bool      `json:"retry_requested"`
	FirstFailedAt  time.Time `json:"first_failed_at"`
	LastFailedAt   time.Time `json:"last_failed_at"`
}

func printDeadLettersJSON(out io.Writer, letters []state.DeadLetter) error {
	rows := make([]deadLetterJSON, len(letters))
	for i, d := range letters {
		rows[i] = deadLetterJSON{ID: d.ID, Collection: d.Collection, SourceTable: d.SourceTable, SourceKey: d.SourceKey,
			LSN: d.LSN.String(), Error: d.Error, Attempts: d.Attempts, RetryRequested: d.RetryRequested(),
			FirstFailedAt: d.FirstFailedAt.UTC(), LastFailedAt: d.LastFailedAt.UTC()}
	}
	return writeJSON(out, map[string]any{"dead_letters": rows})
}

func newDeadLettersRetryCmd() *cobra.Command {
	var f deadLetterFlags
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "retry",
		Short: "Index dead-lettered rows again (picked up by cdc-indexer run)",
		Example: `  cdc-indexer deadletters retry --config config.yaml --all --wait 60s
  cdc-indexer deadletters retry --config config.yaml --table public.articles --key 42`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !f.selective() && !f.all {
				return usageError{errors.New("say which dead letters to retry: --table, --key, --id or --all")}
			}
			return withStore(cmd, func(ctx context.Context, s *state.Store) error {
				flt, err := f.filter()
				if err != nil {
					return err
				}
				letters, err := s.FindDeadLetters(ctx, flt)
				if err != nil {
					return err
				}
				ids := make([]int64, len(letters))
				for i, d := range letters {
					ids[i] = d.ID
				}
				n, err := s.RequestDeadLetterRetry(ctx, state.DeadLetterFilter{IDs: ids})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "%d dead letters marked for retry; `cdc-indexer run` re-reads and indexes them within seconds\n", n)
				if wait <= 0 || n == 0 {
					return nil
				}
				return waitRetried(ctx, s, ids, wait, out)
			})
		},
	}
	f.register(cmd, true)
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the running cdc-indexer run to finish the retry, and report the outcome")
	return cmd
}

// waitRetried waits until none of ids is still waiting for its retry, then
// reports how many were indexed and how many failed again.
func waitRetried(ctx context.Context, s *state.Store, ids []int64, wait time.Duration, out io.Writer) error {
	deadline := time.Now().Add(wait)
	for {
		pending, err := s.CountDeadLetters(ctx, state.DeadLetterFilter{IDs: ids, RetryRequested: true})
		if err != nil {
			return err
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d dead letters still wait for their retry after %s: is `cdc-indexer run` running?", pending, len(ids), wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	again, err := s.FindDeadLetters(ctx, state.DeadLetterFilter{IDs: ids})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%d indexed (or no longer exist), %d failed again\n", len(ids)-len(again), len(again))
	if len(again) > 0 {
		printDeadLetters(out, again)
		return fmt.Errorf("%d rows failed again", len(again))
	}
	return nil
}

func newDeadLettersPurgeCmd() *cobra.Command {
	var f deadLetterFlags
	cmd := &cobra.Command{
		Use:     "purge",
		Short:   "Forget dead letters (the rows stay out of the index until they change)",
		Example: `  cdc-indexer deadletters purge --config config.yaml --table public.articles`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !f.selective() && !f.all {
				return usageError{errors.New("say which dead letters to purge: --table, --key, --id or --all")}
			}
			return withStore(cmd, func(ctx context.Context, s *state.Store) error {
				flt, err := f.filter()
				if err != nil {
					return err
				}
				n, err := s.PurgeDeadLetters(ctx, flt)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d dead letters purged\n", n)
				return nil
			})
		},
	}
	f.register(cmd, true)
	return cmd
}

// withStore loads the config, connects to PostgreSQL and runs fn on the
// state store (migrated first, so that it works before the first run too).
func withStore(cmd *cobra.Command, fn func(ctx context.Context, s *state.Store) error) error {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	pool, err := pgxpool.New(ctx, cfg.Postgres.DSN)
	if err != nil {
		return fmt.Errorf("postgres.dsn: %w", err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres.dsn: cannot connect to %s: %w", config.RedactDSN(cfg.Postgres.DSN), err)
	}
	if err := migrations.Apply(ctx, pool, cfg.Postgres.StateSchema); err != nil {
		return fmt.Errorf("postgres.state_schema: migrate %s: %w", cfg.Postgres.StateSchema, err)
	}
	return fn(ctx, state.NewStore(pool, cfg.Postgres.StateSchema))
}

func printDeadLetters(out io.Writer, letters []state.DeadLetter) {
	if len(letters) == 0 {
		fmt.Fprintln(out, "no dead letters")
		return
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTABLE\tKEY\tCOLLECTION\tLSN\tATTEMPTS\tLAST FAILED\tERROR")
	for _, d := range letters {
		attempts := fmt.Sprint(d.Attempts)
		if d.RetryRequested() {
			attempts = "retry requested"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.SourceTable, d.SourceKey, d.Collection, d.LSN,
			attempts, d.LastFailedAt.UTC().Format(time.RFC3339), oneLine(abbreviate(d.Error, 200)))
	}
	w.Flush()
	fmt.Fprintf(out, "%d dead letters\n", len(letters))
}

func abbreviate(s string, n int) string {
	s = strings.ReplaceAll(s, "\t", " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
