package embedding

import (
	"errors"
	"fmt"
	"strings"
)

// InputError is the provider's permanent rejection of one input of an Embed
// call: retrying the same text can never succeed (it is too long for the
// model, contains something the provider refuses, ...). Index is the
// input's position in the texts passed to Embed.
type InputError struct {
	Index int
	Err   error
}

func (e *InputError) Error() string { return fmt.Sprintf("input %d rejected: %v", e.Index, e.Err) }
func (e *InputError) Unwrap() error { return e.Err }

// Permanent reports that retrying cannot help.
func (e *InputError) Permanent() bool { return true }

// InputErrors is what Embed returns when some inputs were rejected and the
// others embedded: one entry per rejected input, in increasing Index order.
// The vectors returned alongside it are valid everywhere else.
//
// Callers find it with errors.As(err, &inputErrs) (the value type, not a
// pointer). It is permanent as a whole; a caller that can isolate rows
// indexes the other inputs and reports each listed input on its own.
type InputErrors []*InputError

func (e InputErrors) Error() string {
	if len(e) == 1 {
		return e[0].Error()
	}
	parts := make([]string, 0, min(len(e), 3))
	for i, ie := range e {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(e)-3))
			break
		}
		parts = append(parts, ie.Error())
	}
	return fmt.Sprintf("%d inputs rejected: %s", len(e), strings.Join(parts, "; "))
}

// Permanent reports that retrying the rejected inputs cannot help.
func (e InputErrors) Permanent() bool { return true }

// Unwrap exposes each input's error to errors.Is and errors.As.
func (e InputErrors) Unwrap() []error {
	out := make([]error, len(e))
	for i, ie := range e {
		out[i] = ie
	}
	return out
}

// Indexes returns the rejected positions.
func (e InputErrors) Indexes() []int {
	out := make([]int, len(e))
	for i, ie := range e {
		out[i] = ie.Index
	}
	return out
}

// AsInputErrors returns the InputErrors in err's chain, if any.
func AsInputErrors(err error) (InputErrors, bool) {
	var ie InputErrors
	if errors.As(err, &ie) {
		return ie, true
	}
	return nil, false
}
