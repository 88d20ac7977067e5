// Package logging builds the service's zerolog logger from the log.* keys.
package logging

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// New returns a logger writing to w at level (debug, info, warn or error) in
// format json (one object a line, for machines) or console (for humans,
// coloured only when w is a terminal).
//
// The logger is shared by concurrent goroutines, so writes to w are
// serialised whatever w is (a bytes.Buffer in tests, say).
//
// Log a configuration with .Object("config", cfg): config.Config marshals
// itself with its secrets masked.
func New(level, format string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	terminal := isTerminal(w)
	w = zerolog.SyncWriter(w)
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{
			Out:        w,
			TimeFormat: time.RFC3339,
			NoColor:    !terminal,
		}
	default:
		return zerolog.Nop(), fmt.Errorf("log format %q: want json or console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// ParseLevel accepts the levels the configuration allows, no others.
func ParseLevel(level string) (zerolog.Level, error) {
	switch level {
	case "debug":
		return zerolog.DebugLevel, nil
	case "info":
		return zerolog.InfoLevel, nil
	case "warn":
		return zerolog.WarnLevel, nil
	case "error":
		return zerolog.ErrorLevel, nil
	}
	return zerolog.NoLevel, fmt.Errorf("log level %q: want debug, info, warn or error", level)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
