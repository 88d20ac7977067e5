package connector

// Column is one column of a source table as the catalog describes it.
type Column struct {
	Name     string
	OID      uint32 // type OID (for a domain: the domain's OID)
	BaseOID  uint32 // for a domain, its base type's OID; else equal to OID
	TypeName string // format_type() output, e.g. "text", "timestamp with time zone", "integer[]"
	Category byte   // pg_type.typcategory: 'S' string, 'N' numeric, 'B' bool, 'D' date/time, 'A' array, 'E' enum, 'U' user...
	ElemOID  uint32 // element type OID for arrays, 0 otherwise
	NotNull  bool
	// Generated is a generated column (pg_attribute.attgenerated set). The
	// replication stream does not carry its values (PostgreSQL 15 to 17
	// leave stored ones out of pgoutput), so they are read from the table.
	Generated bool
}

// TableInfo is what the connector knows of a configured table at start.
type TableInfo struct {
	Name TableName
	// OID is the table's pg_class oid, which pgoutput's Relation messages
	// carry as their relation ID: it names the table across a rename.
	OID     uint32
	Columns []Column
	// Key is the primary key's column names in key order.
	Key []string
	// ReplicaIdentity is pg_class.relreplident: 'd' default, 'f' full, 'i' index, 'n' nothing.
	ReplicaIdentity byte
}

// Column returns the named column.
func (t *TableInfo) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}
