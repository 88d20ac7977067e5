package pipeline

import (
	"reflect"
	"testing"

	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

func TestPlanChange(t *testing.T) {
	cases := []struct {
		name string
		f    changeFacts
		want changeAction
	}{
		{"live change", changeFacts{}, actRender},
		{"live delete", changeFacts{remove: true}, actRemove},
		{"snapshot row", changeFacts{backfill: true}, actRender},
		{"snapshot row older than the index", changeFacts{backfill: true, newer: true}, actSkipNewer},
		{"snapshot removal older than the index", changeFacts{backfill: true, newer: true, remove: true}, actSkipNewer},
		{"snapshot removal", changeFacts{backfill: true, remove: true}, actRemove},
		{"row gone since", changeFacts{gone: true}, actSkipGone},
		{"newer says nothing about a live change", changeFacts{newer: true}, actRender},
		{"key change: the old key", changeFacts{remove: true}, actRemove},
		{"key change: the old key, seen by a snapshot", changeFacts{backfill: true, remove: true}, actRemove},
		{"snapshot row read before a truncate", changeFacts{backfill: true, newer: true}, actSkipNewer},
		{"a delete whose re-read finds nothing", changeFacts{remove: true, gone: true}, actRemove},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := planChange(c.f); got != c.want {
				t.Fatalf("planChange(%+v) = %d, want %d", c.f, got, c.want)
			}
		})
	}
}

func TestPlanWrite(t *testing.T) {
	rec := func(hash string, chunks int, tenant string) *state.DocState {
		return &state.DocState{ContentHash: hash, ChunkCount: chunks, Tenant: tenant}
	}
	acme := "acme"
	cases := []struct {
		name string
		f    writeFacts
		want writePlan
	}{
		{"first write", writeFacts{hash: "h"}, writePlan{}},
		{"unchanged document", writeFacts{prev: rec("h", 3, ""), hash: "h"}, writePlan{skip: true}},
		{"changed document: prune past the recorded count", writeFacts{prev: rec("h0", 3, ""), hash: "h"}, writePlan{prevChunks: 3}},
		{"after a tombstone", writeFacts{prev: rec("", 0, ""), hash: "h"}, writePlan{}},
		{"unchanged, but replayed after a crash", writeFacts{prev: rec("h", 3, ""), hash: "h", untrusted: true}, writePlan{prevChunks: transform.UnknownChunkCount}},
		{"replayed, no record", writeFacts{hash: "h", untrusted: true}, writePlan{prevChunks: transform.UnknownChunkCount}},
		{"unchanged document in the same tenant", writeFacts{prev: rec("h", 2, "acme"), hash: "h", tenant: "acme", tenanted: true}, writePlan{skip: true}},
		{"moved to another tenant", writeFacts{prev: rec("h", 2, "acme"), hash: "h", tenant: "beta", tenanted: true}, writePlan{removeFrom: &acme}},
		{"replayed in a tenanted mapping", writeFacts{prev: rec("h", 2, "acme"), hash: "h", tenant: "acme", tenanted: true, untrusted: true},
			writePlan{prevChunks: transform.UnknownChunkCount, removeElsewhere: true}},
		{"moved and replayed", writeFacts{prev: rec("h", 2, "acme"), hash: "h", tenant: "beta", tenanted: true, untrusted: true},
			writePlan{prevChunks: transform.UnknownChunkCount, removeFrom: &acme, removeElsewhere: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := planWrite(c.f); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("planWrite(%+v) = %+v, want %+v", c.f, got, c.want)
			}
		})
	}
}
