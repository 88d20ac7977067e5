package sink

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"github.com/weaviate/weaviate-go-client/v5/weaviate/fault"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ObjectError is Weaviate's rejection of one object (one chunk of one row).
type ObjectError struct {
	Collection  string
	SourceTable string
	SourceKey   string
	Chunk       int
	// Message is Weaviate's error message for the object.
	Message string
	// Transient is true when the error looked temporary (e.g. a shard was
	// read-only) and retrying in Write did not get it through; such a row
	// should be retried later rather than dead-lettered.
	Transient bool
}

func (e *ObjectError) Error() string {
	kind := "rejected"
	if e.Transient {
		kind = "failed (transient)"
	}
	return fmt.Sprintf("weaviate %s object of %s %s key %s chunk %d: %s",
		kind, e.Collection, e.SourceTable, e.SourceKey, e.Chunk, e.Message)
}

// WriteError is returned by Write when Weaviate did not store some objects.
// Every other object of the call was stored (and the chunks past the new
// count of every fully stored document removed).
type WriteError struct {
	Objects []*ObjectError
}

func (e *WriteError) Error() string {
	if len(e.Objects) == 0 {
		return "weaviate rejected no object"
	}
	if len(e.Objects) == 1 {
		return e.Objects[0].Error()
	}
	return fmt.Sprintf("weaviate did not store %d objects; first: %s", len(e.Objects), e.Objects[0].Error())
}

// Unwrap exposes each ObjectError to errors.As / errors.Is.
func (e *WriteError) Unwrap() []error {
	out := make([]error, len(e.Objects))
	for i, o := range e.Objects {
		out[i] = o
	}
	return out
}

// Rows is the distinct (collection, source table, source key) of the
// rejected objects, in first-seen order.
func (e *WriteError) Rows() []ObjectError {
	type k struct{ c, t, key string }
	seen := map[k]bool{}
	var out []ObjectError
	for _, o := range e.Objects {
		kk := k{o.Collection, o.SourceTable, o.SourceKey}
		if seen[kk] {
			continue
		}
		seen[kk] = true
		out = append(out, *o)
	}
	return out
}

// EachRejectedRow calls fn once per rejected row (first-seen order) with
// the first rejection of its objects: how a consumer reads the rejections
// without knowing this package's types.
func (e *WriteError) EachRejectedRow(fn func(collection, sourceTable, sourceKey string, reason error)) {
	for _, o := range e.Rows() {
		o := o
		fn(o.Collection, o.SourceTable, o.SourceKey, &o)
	}
}

// Permanent reports whether every rejection is permanent, i.e. the rows can
// be dead-lettered rather than retried.
func (e *WriteError) Permanent() bool {
	for _, o := range e.Objects {
		if o.Transient {
			return false
		}
	}
	return true
}

// transientMarkers are substrings of per-object error messages that mean
// the object may go through later. Anything else is permanent: retrying
// an invalid object would only delay the rows around it.
var transientMarkers = []string{
	"read-only", "readonly", "read only",
	"deadline", "timeout", "timed out",
	"unavailable", "connection", "try again", "temporar",
	"too many", "resource exhausted", "rate limit",
	"consistency level", "not ready", "shutting down", "shut down",
	"context canceled", "broken pipe", "eof",
	"not enough replicas", "no replica", "disk", "memory pressure", "out of memory",
	"shard not found", "loading", "leader",
}

// transientMessage reports whether Weaviate's message for an object says it
// may go through later. Quoted parts are left out of the match: Weaviate
// quotes the property names and values it complains about, and a rejection
// of a property named "deadline" or a value "disk full" is as permanent as
// any other.
func transientMessage(msg string) bool {
	m := strings.ToLower(unquoted(msg))
	for _, s := range transientMarkers {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// unquoted is msg without its '...', "..." and `...` parts. A quote
// after a letter or digit is an apostrophe ("can't"), not an opening one.
func unquoted(msg string) string {
	var b strings.Builder
	var quote, prev rune
	for _, r := range msg {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case (r == '\'' || r == '"' || r == '`') && !unicode.IsLetter(prev) && !unicode.IsDigit(prev):
			quote = r
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
		prev = r
	}
	return b.String()
}

// transientRequest reports whether a failed request may succeed if retried.
func transientRequest(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		switch s.Code() {
		case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
			codes.Unauthenticated, codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented:
			return false
		}
		return true
	}
	var ce *fault.WeaviateClientError
	if errors.As(err, &ce) {
		if ce.DerivedFromError != nil || ce.StatusCode <= 0 {
			return !errors.Is(ce.DerivedFromError, context.Canceled)
		}
		switch {
		case ce.StatusCode == http.StatusTooManyRequests, ce.StatusCode >= 500:
			return true
		}
		return transientMessage(ce.Msg)
	}
	// Transport-level errors without a status: network trouble.
	return true
}
