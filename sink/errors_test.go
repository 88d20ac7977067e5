package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weaviate/weaviate-go-client/v5/weaviate/fault"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

func TestTransientClassification(t *testing.T) {
	for msg, want := range map[string]bool{
		"vector dimensions do not match the index dimensions":  false,
		"invalid text property 'x' on class 'Y': not a string": false,
		"store is read-only":        true,
		"context deadline exceeded": true,
		"connection refused":        true,
		`invalid text property 'deadline' on class 'Doc': not a string, but float64`: false,
		`invalid date property "disk_checked_at": value "timeout" is not a date`:     false,
		`shard "Doc_x1" is read-only`: true,
	} {
		if got := transientMessage(msg); got != want {
			t.Errorf("transientMessage(%q) = %v", msg, got)
		}
	}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("batch objects: %w", status.Error(codes.Unavailable, "down")), true},
		{fmt.Errorf("batch objects: %w", status.Error(codes.InvalidArgument, "bad")), false},
		{&fault.WeaviateClientError{StatusCode: 503, Msg: "x"}, true},
		{&fault.WeaviateClientError{StatusCode: 422, Msg: "bad filter"}, false},
		{&fault.WeaviateClientError{StatusCode: -1, DerivedFromError: errors.New("dial tcp: refused")}, true},
		{context.Canceled, false},
	} {
		if got := transientRequest(c.err); got != c.want {
			t.Errorf("transientRequest(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestWriteErrorMessages(t *testing.T) {
	we := &WriteError{Objects: []*ObjectError{
		{Collection: "C", SourceTable: "public.t", SourceKey: "1", Chunk: 0, Message: "boom"},
		{Collection: "C", SourceTable: "public.t", SourceKey: "1", Chunk: 1, Message: "boom"},
		{Collection: "C", SourceTable: "public.t", SourceKey: "2", Chunk: 0, Message: "slow", Transient: true},
	}}
	msg := we.Error()
	for _, s := range []string{"3 objects", "C", "public.t", "key 1", "chunk 0", "boom"} {
		if !strings.Contains(msg, s) {
			t.Errorf("%q lacks %q", msg, s)
		}
	}
	if we.Permanent() {
		t.Error("Permanent with a transient object")
	}
	if rows := we.Rows(); len(rows) != 2 || rows[1].SourceKey != "2" {
		t.Errorf("Rows = %v", rows)
	}
}

func TestWriteFailsAfterRetriesWhenGRPCIsDown(t *testing.T) {
	url, _ := testenv.Weaviate(t)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(context.Background(), Config{URL: url, GRPC: fmt.Sprintf("127.0.0.1:%d", port), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w.backoff = time.Millisecond
	w.attempts = 3
	if err := w.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "gRPC") {
		t.Errorf("Ready with gRPC down = %v", err)
	}
	err = w.Write(context.Background(), []*transform.Document{testDoc("C", "public.t", "1", 1, 2, "a")})
	if err == nil || !strings.Contains(err.Error(), "attempt 3") {
		t.Fatalf("Write = %v, want an error after 3 attempts", err)
	}
	var we *WriteError
	if errors.As(err, &we) {
		t.Fatalf("transport failure reported as object rejections: %v", err)
	}
}
