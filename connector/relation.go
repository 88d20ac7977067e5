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
	// uncarried are info's generated columns that the relation's tuples do
	// not carry: every new row lists them as unchanged, so that their
	// current values are read from the table like unchanged TOAST values.
	uncarried []string
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
	byOID  map[uint32]*TableInfo
	rels   map[uint32]*relation
	// renamed records configured tables whose Relation message came under
	// another name (the table was renamed while streaming), once each.
	renamed []Renamed
}

// Renamed is a configured table that the stream now reports under another
// name. Its changes go on being indexed under the configured name (the
// relation ID, its oid, is the same table), but the configuration must
// follow before the next start.
type Renamed struct {
	Configured, Now TableName
}

func newRelationCache(tables []TableInfo) *relationCache {
	rc := &relationCache{tables: map[TableName]*TableInfo{}, byOID: map[uint32]*TableInfo{}, rels: map[uint32]*relation{}}
	for i := range tables {
		rc.tables[tables[i].Name] = &tables[i]
		if tables[i].OID != 0 {
			rc.byOID[tables[i].OID] = &tables[i]
		}
	}
	return rc
}

// lookup finds the configured table a Relation message describes: by oid
// first, which survives a rename, else by name.
func (rc *relationCache) lookup(id uint32, name TableName) *TableInfo {
	if info, ok := rc.byOID[id]; ok {
		if info.Name != name && !rc.wasRenamed(info.Name, name) {
			rc.renamed = append(rc.renamed, Renamed{Configured: info.Name, Now: name})
		}
		return info
	}
	return rc.tables[name]
}

func (rc *relationCache) wasRenamed(from, to TableName) bool {
	for _, r := range rc.renamed {
		if r.Configured == from && r.Now == to {
			return true
		}
	}
	return false
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
	if info := rc.lookup(m.RelationID, r.name); info != nil {
		// Changes are reported under the configured name, which is what
		// source_table and the mapping know the table by.
		r.name = info.Name
		r.info = info
		for _, c := range info.Columns {
			if c.Generated && !r.has(c.Name) {
				r.uncarried = append(r.uncarried, c.Name)
			}
		}
		// The key's current names: those the previous Relation message of
		// the same table resolved (a rename followed once stays followed,
		// whatever the replica identity is later), else the described ones.
		names := info.Key
		if old, ok := rc.rels[r.id]; ok && old.info == info && resolved(old.keyIdx) {
			names = make([]string, len(old.keyIdx))
			for i, idx := range old.keyIdx {
				names[i] = old.cols[idx].name
			}
		}
		r.keyIdx = keyPositions(names, r.cols, m.ReplicaIdentity)
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

// has reports whether the relation's tuples carry the named column.
func (r *relation) has(name string) bool {
	for _, c := range r.cols {
		if c.name == name {
			return true
		}
	}
	return false
}

func resolved(keyIdx []int) bool {
	for _, i := range keyIdx {
		if i < 0 {
			return false
		}
	}
	return len(keyIdx) > 0
}

// keyPositions finds each key column in cols, in key order; -1 for one that
// is missing. A key column renamed while streaming is followed: under the
// default replica identity (the primary key), when the columns the relation
// flags and that match no key name are exactly as many as the missing key
// columns, they stand in for them in column order (exact for a one-column
// key, the common case). Under another identity the flags mark another
// index's columns, which say nothing about the key.
func keyPositions(key []string, cols []relColumn, identity byte) []int {
	pos := make([]int, len(key))
	used := make([]bool, len(cols))
	var missing []int
	for i, k := range key {
		pos[i] = -1
		for j, c := range cols {
			if c.name == k {
				pos[i], used[j] = j, true
				break
			}
		}
		if pos[i] < 0 {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 || identity != 'd' {
		return pos
	}
	var flagged []int
	for j, c := range cols {
		if c.key && !used[j] {
			flagged = append(flagged, j)
		}
	}
	if len(flagged) == len(missing) {
		for n, i := range missing {
			pos[i] = flagged[n]
		}
	}
	return pos
}
