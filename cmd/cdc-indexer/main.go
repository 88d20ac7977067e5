// Command cdc-indexer streams PostgreSQL logical replication into a Weaviate
// vector index. See CONTRACT.md for the commands and the configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/logging"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
)

// Set at build time: -ldflags "-X main.version=v1.2.3 -X main.commit=abc123".
var version, commit = "dev", ""

// configEnv names the config file when --config is not given.
const configEnv = "CDC_INDEXER_CONFIG"

func main() {
	metrics.SetBuild(version, buildCommit()) // cdc_indexer_build_info
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// execute runs the command line args and returns the exit status: 0 on
// success, 2 for a usage error, 1 for any other error, which it prints as
// one line "cdc-indexer: <reason>" on stderr.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "cdc-indexer: %s\n", oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// exitError is a failure with an exit status of its own (verify: 1 for
// drift, 2 for an error).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "cdc-indexer",
		Short: "Stream PostgreSQL changes into a Weaviate vector index",
		// Errors are printed once, by execute, in the contract's format.
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.PersistentFlags().String("config", "", "config file (default $"+configEnv+")")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCmd(), newSnapshotCmd(), newCheckCmd(), newStatusCmd(), newVersionCmd(),
		newDeadLettersCmd(), newVerifyCmd(), newReindexCmd(), newTeardownCmd())
	return root
}

// usageError is a malformed command line, as opposed to a failure.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)}
	}
	return nil
}

// loadConfig reads the file named by --config or CDC_INDEXER_CONFIG and
// validates it, so that a bad config fails before anything connects.
// loadConfigAndLogger is loadConfig plus the logger log.level and
// log.format ask for, writing to the command's stderr.
func loadConfigAndLogger(cmd *cobra.Command) (*config.Config, zerolog.Logger, error) {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return nil, zerolog.Nop(), err
	}
	log, err := logging.New(cfg.Log.Level, cfg.Log.Format, cmd.ErrOrStderr())
	return cfg, log, err
}

func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	path, err := cmd.Flags().GetString("config")
	if err != nil {
		return nil, err
	}
	if path == "" {
		path = os.Getenv(configEnv)
	}
	if path == "" {
		return nil, usageError{errors.New("no config file: pass --config or set " + configEnv)}
	}
	cfg, err := config.Load(path)
	if err == nil {
		err = cfg.Validate()
	}
	var keyErr *config.KeyError
	if errors.As(err, &keyErr) {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, err
}

// oneLine folds a multi-line message (a YAML syntax error, say) into one.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, " ")
}
