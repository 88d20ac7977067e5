package pipeline

import (
	"github.com/cdc-indexer/cdc-indexer/internal/state"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// The rules that decide what one row of a batch does, as pure functions
// (applyTable carries them out). A row is one key's last change in the
// batch: a live change or a snapshot row.

// changeAction is what a row does before its document is rendered.
type changeAction uint8

const (
	actRender    changeAction = iota // render the row, then planWrite decides
	actRemove                        // remove the row's objects
	actSkipNewer                     // a snapshot row older than what the index holds
	actSkipGone                      // the row no longer exists; the stream carries its delete
)

// changeFacts are what planChange needs to know of a row.
type changeFacts struct {
	backfill bool // a snapshot row, not a live change
	// newer: the state records a change or removal of the row committed
	// after the snapshot that read it, or the table was truncated since.
	newer  bool
	remove bool // a delete, or the old key of a key change
	gone   bool // the re-read (unchanged TOAST, generated columns) found no row
}

// planChange decides a row's fate before rendering.
func planChange(f changeFacts) changeAction {
	switch {
	case f.backfill && f.newer:
		// A snapshot row must not overwrite a change committed after the
		// snapshot (or bring back a removed row).
		return actSkipNewer
	case f.remove:
		// Removed even when no state is recorded: a crash between
		// Weaviate's acknowledgement and the state update can leave
		// objects the state does not know of.
		return actRemove
	case f.gone:
		return actSkipGone
	}
	return actRender
}

// writeFacts are what planWrite needs to know of a rendered row.
type writeFacts struct {
	prev *state.DocState // the state's record of the row; nil when none
	hash string          // the rendered document's content hash
	// tenant is the rendered document's tenant; tenanted says the mapping
	// has tenants at all.
	tenant   string
	tenanted bool
	// untrusted: Weaviate may hold another version of the row than the
	// state records: a change replayed after an unclean stop
	// (Config.RecoverUntil), or a row a stopped snapshot was indexing
	// (BackfillRow.Unrecorded).
	untrusted bool
}

// writePlan is what a rendered row does.
type writePlan struct {
	skip bool // unchanged document: nothing to embed or write
	// prevChunks is the row's previous chunk count for Sink.Replace: it prunes the
	// row's chunks from the new count up to it, or finds them by query
	// when it is transform.UnknownChunkCount.
	prevChunks int
	// removeFrom, when set, is a tenant to remove the row's objects from
	// after the write (it moved out of it).
	removeFrom *string
	// removeElsewhere removes the row's objects from every tenant but its
	// own after the write (where it was is not known).
	removeElsewhere bool
}

// planWrite decides how a rendered row is written, or that it is not.
func planWrite(f writeFacts) writePlan {
	var p writePlan
	if f.prev != nil {
		if f.prev.ContentHash == f.hash && f.prev.Tenant == f.tenant && !f.untrusted {
			return writePlan{skip: true}
		}
		p.prevChunks = f.prev.ChunkCount
		if f.prev.Tenant != "" && f.prev.Tenant != f.tenant {
			// Moved to another tenant: none of its objects are there yet,
			// and those in the old tenant go.
			old := f.prev.Tenant
			p.prevChunks, p.removeFrom = 0, &old
		}
	}
	if f.untrusted {
		// Neither the recorded hash nor the chunk count says what is there.
		p.prevChunks = transform.UnknownChunkCount
		// Weaviate may hold the row in a tenant the state never recorded.
		p.removeElsewhere = f.tenanted
	}
	return p
}
