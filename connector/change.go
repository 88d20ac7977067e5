package connector

import (
	"encoding/json"
	"time"

	"github.com/jackc/pglogrepl"
)

// Op is the kind of row change a Change carries.
type Op uint8

const (
	OpInsert Op = iota + 1
	OpUpdate
	OpDelete
	OpTruncate
)

func (o Op) String() string {
	switch o {
	case OpInsert:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpTruncate:
		return "truncate"
	}
	return "unknown"
}

// Value is one column value of a row. Text keeps PostgreSQL's own text form
// because the contract renders many types (uuid, numeric, enums, json...) exactly
// as PostgreSQL prints them; Go holds the value decoded with pgx's type map for
// the types that have a natural Go form (numbers, booleans, times, arrays).
type Value struct {
	Null bool
	Text string // PostgreSQL text form; "" when Null
	Go   any    // decoded value; nil when Null or when the type has no Go form (then Text is used)
	OID  uint32 // type OID of the column
}

// Row is a row's values by column name.
type Row map[string]Value

// valueOverhead is what a value costs beyond its text: the map entry, the
// Value struct and a decoded Go form of a fixed size.
const valueOverhead = 96

// Size estimates the bytes the row holds in memory: its names and text
// forms, a decoded byte slice (held beside the text; a decoded string
// shares the text's), and a fixed overhead per value. It is what a memory
// budget charges for the row.
func (r Row) Size() int64 {
	var n int64
	for name, v := range r {
		n += int64(len(name)+len(v.Text)) + valueOverhead
		if b, ok := v.Go.([]byte); ok {
			n += int64(len(b))
		}
	}
	return n
}

// Key is a primary key as the text forms of its columns, in key order.
type Key []string

// String is the contract's source_key: the single column's text form, or a
// JSON array of the text forms for a composite key.
func (k Key) String() string {
	if len(k) == 1 {
		return k[0]
	}
	b, _ := json.Marshal([]string(k))
	return string(b)
}

// Equal reports whether two keys are the same.
func (k Key) Equal(o Key) bool {
	if len(k) != len(o) {
		return false
	}
	for i := range k {
		if k[i] != o[i] {
			return false
		}
	}
	return true
}

// Change is one row change of a committed transaction, in commit order.
//
// Every change of a transaction carries the transaction's commit LSN: that is
// the position the slot may confirm once all of them are applied, and the
// source_lsn written to Weaviate.
type Change struct {
	Op    Op
	Table TableName
	// Key identifies the row after the change (insert, update) or the removed
	// row (delete). Empty for truncate.
	Key Key
	// OldKey is set on an update that changed the primary key.
	OldKey Key
	// KeyLost says the stream did not carry the old primary key: the
	// table's replica identity, when the change was written, was an index
	// without the primary key. A delete then names no row (Key is empty),
	// and an update may have changed its key unseen; only reading the
	// table again tells which rows are gone. (Under REPLICA IDENTITY
	// NOTHING pgoutput sends no delete at all; check and run refuse it.)
	KeyLost bool
	// Row holds the new values for insert and update. Columns listed in
	// Unchanged are absent: PostgreSQL did not send them (unchanged TOAST, or
	// a generated column) and the old tuple could not supply them either.
	Row       Row
	Unchanged []string
	// Tables lists every table of a truncate (one TRUNCATE may name several).
	Tables []TableName

	CommitLSN  pglogrepl.LSN
	CommitTime time.Time
}

// Commit marks the end of a transaction: every Change before it with the
// same CommitLSN has been emitted.
type Commit struct {
	CommitLSN  pglogrepl.LSN
	CommitTime time.Time
}

// Message is what a Stream emits, in WAL order: *Change or *Commit.
type Message interface{ isMessage() }

func (*Change) isMessage() {}
func (*Commit) isMessage() {}
