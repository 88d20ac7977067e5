package connector

import (
	"fmt"

	"github.com/jackc/pglogrepl"
)

// relation is what a pgoutput Relation message says about a table, joined
// with the configured table it names (if any).
type relation struct {
	id   uint32
	name TableName
	// replicaIdentity is the Relation message's relreplident.
	replicaIdentity byte
	cols            []relColumn
	// info is the configured table; nil for a table that is not configured,
	// whose changes are ignored.
	info *TableInfo
	// keyIdx are the positions in cols of info.Key's columns, in key order;
	// -1 for a key column the relation no longer has.
	keyIdx []int
}

type relColumn struct {
	name string
	oid  uint32
	// key reports the relation flagged the column as part of the replica
	// identity: only such columns carry values in an old-key ('K') tuple.
	key bool
}

// relationCache follows the Relation messages of a replication stream.
// pgoutput sends a table's Relation message before its first change in a
// session and again before the next change after any schema change (column
// added, dropped, renamed, retyped), so the newest message for an ID always
// describes the tuples that follow it.
type relationCache struct {
	tables map[TableName]*TableInfo
	rels   map[uint32]*relation
}

func newRelationCache(tables []TableInfo) *relationCache {
	rc := &relationCache{tables: map[TableName]*TableInfo{}, rels: map[uint32]*relation{}}
	for i := range tables {
		rc.tables[tables[i].Name] = &tables[i]
	}
	return rc
}

// update records a Relation message, replacing what was known of its ID.
func (rc *relationCache) update(m *pglogrepl.RelationMessage) *relation {
	r := &relation{
		id:              m.RelationID,
		name:            TableName{Schema: m.Namespace, Name: m.RelationName},
		replicaIdentity: m.ReplicaIdentity,
		cols:            make([]relColumn, len(m.Columns)),
	}
	for i, c := range m.Columns {
		r.cols[i] = relColumn{name: c.Name, oid: c.DataType, key: c.Flags&1 != 0}
	}
	if info, ok := rc.tables[r.name]; ok {
		r.info = info
		r.keyIdx = make([]int, len(info.Key))
		for i, k := range info.Key {
			r.keyIdx[i] = -1
			for j, c := range r.cols {
				if c.name == k {
					r.keyIdx[i] = j
					break
				}
			}
		}
	}
	rc.rels[r.id] = r
	return r
}

// get returns the relation with the given ID; a change for an ID no Relation
// message announced is a protocol error.
func (rc *relationCache) get(id uint32) (*relation, error) {
	r, ok := rc.rels[id]
	if !ok {
		return nil, fmt.Errorf("pgoutput: change for relation %d before its Relation message", id)
	}
	return r, nil
}
