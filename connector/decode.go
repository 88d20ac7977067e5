package connector

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
)

// Decoder turns pgoutput (protocol version 1) messages into Changes and
// Commits for the configured tables. It holds no more than the relation
// cache and the current transaction's commit position: each change is
// returned as soon as it is decoded, never buffered.
//
// A Decoder is not safe for concurrent use.
type Decoder struct {
	rels  *relationCache
	types *TypeMap

	inTx        bool
	emitted     bool // a Change of the current transaction was returned
	commitLSN   pglogrepl.LSN
	commitTime  time.Time
	renamedSeen int // how many of rels.renamed Renamed returned
}

// NewDecoder returns a Decoder for the given configured tables. Changes of
// other tables are ignored.
func NewDecoder(tables []TableInfo) *Decoder {
	return &Decoder{rels: newRelationCache(tables), types: NewTypeMap(tables)}
}

// Renamed returns the configured tables found under another name (renamed
// while streaming) since the last call.
func (d *Decoder) Renamed() []Renamed {
	r := d.rels.renamed[d.renamedSeen:]
	d.renamedSeen = len(d.rels.renamed)
	return r
}

// InTransaction reports whether a Begin has been decoded whose Commit has not.
func (d *Decoder) InTransaction() bool { return d.inTx }

// Decode decodes one pgoutput message (the WALData of an XLogData). It
// returns a *Change for an insert, update, delete or truncate of a
// configured table, a *Commit at the end of a transaction that produced at
// least one Change, and nil for everything else. The returned message shares
// no memory with walData.
func (d *Decoder) Decode(walData []byte) (Message, error) {
	msg, err := pglogrepl.Parse(walData)
	if err != nil {
		return nil, fmt.Errorf("pgoutput: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		d.inTx, d.emitted = true, false
		d.commitLSN, d.commitTime = m.FinalLSN, m.CommitTime
		return nil, nil
	case *pglogrepl.CommitMessage:
		if !d.inTx {
			return nil, fmt.Errorf("pgoutput: commit %s without begin", m.CommitLSN)
		}
		d.inTx = false
		if !d.emitted {
			return nil, nil
		}
		d.emitted = false
		return &Commit{CommitLSN: d.commitLSN, CommitTime: d.commitTime}, nil
	case *pglogrepl.RelationMessage:
		d.rels.update(m)
		return nil, nil
	case *pglogrepl.InsertMessage:
		return d.change(m.RelationID, func(r *relation) (*Change, error) { return d.insert(r, m) })
	case *pglogrepl.UpdateMessage:
		return d.change(m.RelationID, func(r *relation) (*Change, error) { return d.update(r, m) })
	case *pglogrepl.DeleteMessage:
		return d.change(m.RelationID, func(r *relation) (*Change, error) { return d.delete(r, m) })
	case *pglogrepl.TruncateMessage:
		return d.truncate(m)
	}
	// Type, Origin and logical decoding messages carry nothing to index.
	return nil, nil
}

func (d *Decoder) change(relID uint32, fn func(*relation) (*Change, error)) (Message, error) {
	if !d.inTx {
		return nil, fmt.Errorf("pgoutput: change outside a transaction")
	}
	r, err := d.rels.get(relID)
	if err != nil {
		return nil, err
	}
	if r.info == nil {
		return nil, nil
	}
	c, err := fn(r)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", r.name, err)
	}
	return d.stamp(c), nil
}

func (d *Decoder) stamp(c *Change) *Change {
	c.CommitLSN, c.CommitTime = d.commitLSN, d.commitTime
	d.emitted = true
	return c
}

func (d *Decoder) insert(r *relation, m *pglogrepl.InsertMessage) (*Change, error) {
	row, unchanged, err := d.row(r, m.Tuple, nil)
	if err != nil {
		return nil, err
	}
	key, err := keyOf(r, row, nil, 0)
	if err != nil {
		return nil, err
	}
	return &Change{Op: OpInsert, Table: r.name, Key: key, Row: row, Unchanged: unchanged}, nil
}

func (d *Decoder) update(r *relation, m *pglogrepl.UpdateMessage) (*Change, error) {
	var full *pglogrepl.TupleData
	if m.OldTupleType == pglogrepl.UpdateMessageTupleTypeOld {
		full = m.OldTuple
	}
	row, unchanged, err := d.row(r, m.NewTuple, full)
	if err != nil {
		return nil, err
	}
	key, err := keyOf(r, row, m.OldTuple, m.OldTupleType)
	if err != nil {
		return nil, err
	}
	c := &Change{Op: OpUpdate, Table: r.name, Key: key, Row: row, Unchanged: unchanged}
	if m.OldTuple != nil {
		oldKey, err := tupleKey(r, m.OldTuple, m.OldTupleType)
		switch {
		case errors.Is(err, errKeyNotCarried):
			c.KeyLost = true // the identity changed; whether the key did is unknown
		case err != nil:
			return nil, fmt.Errorf("old key: %w", err)
		case !oldKey.Equal(key):
			c.OldKey = oldKey
		}
	}
	return c, nil
}

func (d *Decoder) delete(r *relation, m *pglogrepl.DeleteMessage) (*Change, error) {
	if m.OldTuple == nil {
		// pgoutput does not send a delete without an old tuple (REPLICA
		// IDENTITY NOTHING): nothing names the row.
		return &Change{Op: OpDelete, Table: r.name, KeyLost: true}, nil
	}
	key, err := tupleKey(r, m.OldTuple, m.OldTupleType)
	if errors.Is(err, errKeyNotCarried) {
		return &Change{Op: OpDelete, Table: r.name, KeyLost: true}, nil
	}
	if err != nil {
		return nil, err
	}
	return &Change{Op: OpDelete, Table: r.name, Key: key}, nil
}

func (d *Decoder) truncate(m *pglogrepl.TruncateMessage) (Message, error) {
	if !d.inTx {
		return nil, fmt.Errorf("pgoutput: truncate outside a transaction")
	}
	var tables []TableName
	for _, id := range m.RelationIDs {
		r, err := d.rels.get(id)
		if err != nil {
			return nil, err
		}
		if r.info != nil {
			tables = append(tables, r.name)
		}
	}
	if len(tables) == 0 {
		return nil, nil
	}
	return d.stamp(&Change{Op: OpTruncate, Table: tables[0], Tables: tables}), nil
}

// row decodes a new tuple. An unchanged TOASTed column ('u') is taken from
// the full old tuple when there is one that has it, else it is left out of
// the Row and listed in unchanged; so are the generated columns the stream
// does not carry.
func (d *Decoder) row(r *relation, t *pglogrepl.TupleData, full *pglogrepl.TupleData) (Row, []string, error) {
	if t == nil {
		return nil, nil, fmt.Errorf("change without new tuple")
	}
	if len(t.Columns) != len(r.cols) {
		return nil, nil, fmt.Errorf("tuple has %d columns, relation %d", len(t.Columns), len(r.cols))
	}
	if full != nil && len(full.Columns) != len(r.cols) {
		full = nil
	}
	row := make(Row, len(r.cols))
	var unchanged []string
	for i, col := range t.Columns {
		rc := r.cols[i]
		if col.DataType == pglogrepl.TupleDataTypeToast && full != nil {
			col = full.Columns[i]
		}
		switch col.DataType {
		case pglogrepl.TupleDataTypeNull:
			row[rc.name] = d.types.Null(rc.oid)
		case pglogrepl.TupleDataTypeText:
			row[rc.name] = d.types.Decode(rc.oid, col.Data)
		case pglogrepl.TupleDataTypeToast:
			unchanged = append(unchanged, rc.name)
		default:
			return nil, nil, fmt.Errorf("column %q: unexpected tuple data type %q", rc.name, col.DataType)
		}
	}
	unchanged = append(unchanged, r.uncarried...)
	return row, unchanged, nil
}

// keyOf is the primary key of a decoded new row. A key column the new tuple
// did not carry (unchanged TOAST) is taken from the old tuple.
func keyOf(r *relation, row Row, old *pglogrepl.TupleData, oldType uint8) (Key, error) {
	key := make(Key, len(r.keyIdx))
	for i, idx := range r.keyIdx {
		if idx < 0 {
			return nil, fmt.Errorf("primary key column %q is not in the replicated relation", r.info.Key[i])
		}
		// By position: the column may have been renamed since the table
		// was described (keyPositions).
		name := r.cols[idx].name
		v, ok := row[name]
		if !ok {
			if old == nil {
				return nil, fmt.Errorf("primary key column %q was not sent", name)
			}
			t, err := tupleKeyColumn(r, old, oldType, idx)
			if err != nil {
				return nil, err
			}
			key[i] = t
			continue
		}
		if v.Null {
			return nil, fmt.Errorf("primary key column %q is NULL", name)
		}
		key[i] = v.Text
	}
	return key, nil
}

// tupleKey is the primary key carried by an old tuple: 'K' (the replica
// identity's columns) or 'O' (the whole old row, REPLICA IDENTITY FULL).
func tupleKey(r *relation, t *pglogrepl.TupleData, tupleType uint8) (Key, error) {
	key := make(Key, len(r.keyIdx))
	for i, idx := range r.keyIdx {
		if idx < 0 {
			return nil, fmt.Errorf("primary key column %q is not in the replicated relation", r.info.Key[i])
		}
		s, err := tupleKeyColumn(r, t, tupleType, idx)
		if err != nil {
			return nil, err
		}
		key[i] = s
	}
	return key, nil
}

// errKeyNotCarried: the old tuple holds the replica identity's columns and
// they do not include the primary key (REPLICA IDENTITY USING INDEX of
// another index at the time of the change).
var errKeyNotCarried = errors.New("replica identity does not include the primary key")

func tupleKeyColumn(r *relation, t *pglogrepl.TupleData, tupleType uint8, idx int) (string, error) {
	rc := r.cols[idx]
	if tupleType == pglogrepl.UpdateMessageTupleTypeKey && !rc.key {
		return "", fmt.Errorf("%w: column %q is not sent; set REPLICA IDENTITY DEFAULT or FULL", errKeyNotCarried, rc.name)
	}
	if len(t.Columns) != len(r.cols) {
		return "", fmt.Errorf("old tuple has %d columns, relation %d", len(t.Columns), len(r.cols))
	}
	col := t.Columns[idx]
	if col.DataType != pglogrepl.TupleDataTypeText {
		return "", fmt.Errorf("old tuple has no value for primary key column %q", rc.name)
	}
	return string(col.Data), nil
}
