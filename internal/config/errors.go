package config

import (
	"errors"
	"strings"
)

// KeyError is a problem with one configuration key.
type KeyError struct {
	// Key is the key path as written in the file: postgres.dsn,
	// tables[1].template, tables[0].metadata[2].
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

// Errors is every problem found in a configuration, so that one run reports
// them all instead of one per attempt.
type Errors []*KeyError

// Error joins the problems on one line.
func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap exposes each problem to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// errorList collects problems while a configuration is checked.
type errorList struct{ errs Errors }

func (l *errorList) add(key string, err error) {
	l.errs = append(l.errs, &KeyError{Key: key, Err: err})
}

func (l *errorList) addf(key, reason string) {
	l.add(key, errors.New(reason))
}

// err returns nil (not a typed nil) when there is no problem.
func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	return l.errs
}
