// Package preflight checks, without changing anything, whether PostgreSQL
// and Weaviate are ready for `cdc-indexer run`: each check passes or fails
// with what it found and the exact fix (the SQL or configuration to change).
package preflight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

// Status is the outcome of one check.
type Status string

const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	// Skip is a check that could not run because one it depends on failed;
	// it counts as not passed.
	Skip Status = "SKIP"
)

// Result is one check's outcome.
type Result struct {
	Check  string `json:"check"`         // what was checked, e.g. "postgres wal_level"
	Status Status `json:"status"`        // PASS, FAIL or SKIP
	Detail string `json:"detail"`        // what was found
	Fix    string `json:"fix,omitempty"` // how to make a failed check pass
}

func pass(check, detail string, args ...any) Result {
	return Result{Check: check, Status: Pass, Detail: fmt.Sprintf(detail, args...)}
}

func fail(check, fix, detail string, args ...any) Result {
	return Result{Check: check, Status: Fail, Detail: fmt.Sprintf(detail, args...), Fix: fix}
}

func skip(check, reason string) Result {
	return Result{Check: check, Status: Skip, Detail: "not checked: " + reason}
}

// Report is every check's result, in the order they ran.
type Report []Result

// OK reports whether every check passed.
func (r Report) OK() bool {
	for _, c := range r {
		if c.Status != Pass {
			return false
		}
	}
	return len(r) > 0
}

// Print writes one line per check: status, check, what was found and, for a
// failure, the fix.
func (r Report) Print(w io.Writer) {
	width := 0
	for _, c := range r {
		width = max(width, len(c.Check))
	}
	failed := 0
	for _, c := range r {
		line := fmt.Sprintf("%-4s  %-*s  %s", c.Status, width, c.Check, c.Detail)
		if c.Fix != "" {
			line += "  | fix: " + c.Fix
		}
		fmt.Fprintln(w, line)
		if c.Status != Pass {
			failed++
		}
	}
	if failed == 0 {
		fmt.Fprintf(w, "all %d checks passed\n", len(r))
	} else {
		fmt.Fprintf(w, "%d of %d checks did not pass\n", failed, len(r))
	}
}

// PrintJSON writes the report as a JSON array.
func (r Report) PrintJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Timeout bounds each connection attempt and query.
var Timeout = 10 * time.Second

// Run runs every check against the configuration's PostgreSQL and Weaviate.
// It creates nothing: no slot, publication, schema or collection.
func Run(ctx context.Context, cfg *config.Config) Report {
	var r Report
	r = append(r, checkPostgres(ctx, cfg)...)
	r = append(r, checkWeaviate(ctx, cfg)...)
	r = append(r, EmbeddingProvider(ctx, cfg.Embedding)) // embedding.go
	return r
}

func checkPostgres(ctx context.Context, cfg *config.Config) Report {
	var r Report
	db, res := Connect(ctx, cfg.Postgres.DSN)
	r = append(r, res)
	names := []string{"postgres wal_level", "postgres replication privilege", "postgres replication slots",
		"postgres wal senders", "postgres state schema", "publication " + cfg.Postgres.Publication, "slot " + cfg.Postgres.Slot}
	if db == nil {
		for _, n := range names {
			r = append(r, skip(n, "no connection to PostgreSQL"))
		}
		for i, t := range cfg.Tables {
			r = append(r, skip(fmt.Sprintf("tables[%d] %s", i, t.Table), "no connection to PostgreSQL"))
		}
		return r
	}
	defer db.Close(context.WithoutCancel(ctx))
	r = append(r,
		WALLevel(ctx, db),
		ReplicationPrivilege(ctx, db),
		SlotCapacity(ctx, db, cfg.Postgres.Slot),
		WALSenderCapacity(ctx, db),
		StateSchema(ctx, db, cfg.Postgres.StateSchema),
	)
	var tables []connector.TableName
	for i, t := range cfg.Tables {
		res, name := Table(ctx, db, i, t)
		r = append(r, res...)
		if name != nil {
			tables = append(tables, *name)
		}
	}
	r = append(r, Publication(ctx, db, cfg.Postgres.Publication, tables), Slot(ctx, db, cfg.Postgres.Slot))
	return r
}

// Connect opens a connection with the configured DSN.
func Connect(ctx context.Context, dsn string) (*pgx.Conn, Result) {
	const check = "postgres connect"
	fix := "check postgres.dsn (host, port, user, password, database) and that pg_hba.conf admits this host and user"
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fail(check, fix, "cannot connect to %s: %s", config.RedactDSN(dsn), oneLine(err))
	}
	var user, database, version string
	err = db.QueryRow(ctx, `SELECT current_user, current_database(), current_setting('server_version')`).Scan(&user, &database, &version)
	if err != nil {
		db.Close(context.Background())
		return nil, fail(check, fix, "connected to %s but cannot query: %s", config.RedactDSN(dsn), oneLine(err))
	}
	return db, pass(check, "connected to database %s as %s (PostgreSQL %s)", database, user, version)
}

// WALLevel requires wal_level = logical.
func WALLevel(ctx context.Context, db *pgx.Conn) Result {
	const check = "postgres wal_level"
	var level string
	if err := db.QueryRow(ctx, `SELECT current_setting('wal_level')`).Scan(&level); err != nil {
		return fail(check, "", "cannot read wal_level: %s", oneLine(err))
	}
	if level != "logical" {
		return fail(check, "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (RDS/Aurora: set rds.logical_replication = 1 in the parameter group and reboot; Cloud SQL: set the flag cloudsql.logical_decoding = on; Azure: set wal_level = logical in the server parameters)",
			"wal_level is %s; logical replication needs logical", level)
	}
	return pass(check, "wal_level is logical")
}

// ReplicationPrivilege requires the role to have REPLICATION (or be a
// superuser).
func ReplicationPrivilege(ctx context.Context, db *pgx.Conn) Result {
	const check = "postgres replication privilege"
	var user string
	var repl, super bool
	err := db.QueryRow(ctx, `SELECT rolname, rolreplication, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user`).Scan(&user, &repl, &super)
	if err != nil {
		return fail(check, "", "cannot read the role: %s", oneLine(err))
	}
	switch {
	case super:
		return pass(check, "role %s is a superuser", user)
	case repl:
		return pass(check, "role %s has REPLICATION", user)
	}
	return fail(check, fmt.Sprintf("ALTER ROLE %s REPLICATION; (as a superuser; on RDS: GRANT rds_replication TO %s;)", connector.QuoteIdent(user), connector.QuoteIdent(user)),
		"role %s has neither REPLICATION nor superuser", user)
}

// SlotCapacity requires a free replication slot when slot does not exist.
func SlotCapacity(ctx context.Context, db *pgx.Conn, slot string) Result {
	const check = "postgres replication slots"
	var max, used int
	var exists bool
	err := db.QueryRow(ctx, `SELECT current_setting('max_replication_slots')::int,
	(SELECT count(*) FROM pg_catalog.pg_replication_slots)::int,
	EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)`, slot).Scan(&max, &used, &exists)
	if err != nil {
		return fail(check, "", "cannot read the slots: %s", oneLine(err))
	}
	if exists {
		return pass(check, "slot %s exists (%d of max_replication_slots %d in use)", slot, used, max)
	}
	if used >= max {
		return fail(check, fmt.Sprintf("ALTER SYSTEM SET max_replication_slots = %d; then restart PostgreSQL (or drop an unused slot: SELECT pg_drop_replication_slot('name');)", used+1),
			"all %d of max_replication_slots are in use; slot %s needs one more", max, slot)
	}
	return pass(check, "%d of max_replication_slots %d in use; one is free for slot %s", used, max, slot)
}

// WALSenderCapacity requires a free WAL sender for the replication
// connection.
func WALSenderCapacity(ctx context.Context, db *pgx.Conn) Result {
	const check = "postgres wal senders"
	var max, used int
	err := db.QueryRow(ctx, `SELECT current_setting('max_wal_senders')::int,
	(SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'walsender')::int`).Scan(&max, &used)
	if err != nil {
		return fail(check, "", "cannot read the WAL senders: %s", oneLine(err))
	}
	if used >= max {
		return fail(check, fmt.Sprintf("ALTER SYSTEM SET max_wal_senders = %d; then restart PostgreSQL", used+1),
			"all %d of max_wal_senders are in use", max)
	}
	return pass(check, "%d of max_wal_senders %d in use", used, max)
}

// StateSchema requires that the state schema exists and the role may create
// tables in it, or that the role may create it.
func StateSchema(ctx context.Context, db *pgx.Conn, schema string) Result {
	const check = "postgres state schema"
	var exists, create, createDB bool
	var user, database string
	err := db.QueryRow(ctx, `SELECT current_user, current_database(),
	EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1),
	COALESCE((SELECT has_schema_privilege(oid, 'CREATE') FROM pg_catalog.pg_namespace WHERE nspname = $1), false),
	has_database_privilege(current_database(), 'CREATE')`, schema).Scan(&user, &database, &exists, &create, &createDB)
	if err != nil {
		return fail(check, "", "cannot read schema %s: %s", schema, oneLine(err))
	}
	q := connector.QuoteIdent(schema)
	switch {
	case exists && create:
		return pass(check, "schema %s exists and %s may create tables in it", q, user)
	case exists:
		return fail(check, fmt.Sprintf("GRANT USAGE, CREATE ON SCHEMA %s TO %s;", q, connector.QuoteIdent(user)),
			"schema %s exists but %s may not create tables in it", q, user)
	case createDB:
		return pass(check, "schema %s will be created", q)
	}
	return fail(check, fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s; (or CREATE SCHEMA %s AUTHORIZATION %s; as its owner)", connector.QuoteIdent(database), connector.QuoteIdent(user), q, connector.QuoteIdent(user)),
		"schema %s does not exist and %s may not create it", q, user)
}

const tableSQL = `
SELECT c.oid, c.relreplident::text, current_user,
	has_table_privilege(c.oid, 'SELECT'),
	COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord)
		FROM pg_catalog.pg_index i
		CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = c.oid AND i.indisprimary), '{}'),
	COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord)
		FROM pg_catalog.pg_index i
		CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = c.oid AND i.indisreplident), '{}')
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`

// Table checks one configured table: it exists, has a primary key, its
// replica identity delivers the old key of a deleted row, the role may read
// it, and the template and metadata name existing columns. It returns the
// table's name when the table exists.
func Table(ctx context.Context, db *pgx.Conn, i int, t config.Table) (Report, *connector.TableName) {
	check := fmt.Sprintf("tables[%d] %s", i, t.Table)
	name, err := connector.ParseTableName(t.Table)
	if err != nil {
		return Report{fail(check, fmt.Sprintf("fix tables[%d].table in the config", i), "%s", oneLine(err))}, nil
	}
	var (
		oid               uint32
		replident, user   string
		canSelect         bool
		pkCols, identCols []string
	)
	err = db.QueryRow(ctx, tableSQL, name.Schema, name.Name).Scan(&oid, &replident, &user, &canSelect, &pkCols, &identCols)
	if errors.Is(err, pgx.ErrNoRows) {
		return Report{
			fail(check+" exists", fmt.Sprintf("create the table, or correct tables[%d].table in the config", i), "table %s does not exist (or is not a table)", name),
			skip(check+" primary key", "the table does not exist"),
			skip(check+" replica identity", "the table does not exist"),
			skip(check+" columns", "the table does not exist"),
		}, nil
	}
	if err != nil {
		return Report{fail(check+" exists", "", "cannot read table %s: %s", name, oneLine(err))}, nil
	}
	var r Report
	if canSelect {
		r = append(r, pass(check+" exists", "table %s exists and is readable", name))
	} else {
		r = append(r, fail(check+" exists", fmt.Sprintf("GRANT SELECT ON %s TO %s;", name, connector.QuoteIdent(user)), "table %s exists but the role may not SELECT from it (needed for snapshots and unchanged TOAST values)", name))
	}
	if len(pkCols) == 0 {
		r = append(r, fail(check+" primary key", fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (column, ...);", name), "table %s has no primary key; cdc-indexer identifies rows by it", name))
	} else {
		r = append(r, pass(check+" primary key", "primary key (%s)", strings.Join(pkCols, ", ")))
	}
	r = append(r, replicaIdentity(check+" replica identity", name, replident, pkCols, identCols))
	r = append(r, columns(ctx, db, check+" columns", i, name, t))
	return r, &name
}

// replicaIdentity passes when a delete carries the old primary key: DEFAULT
// with a primary key, FULL, or USING INDEX on the primary key's columns.
func replicaIdentity(check string, name connector.TableName, replident string, pkCols, identCols []string) Result {
	fix := fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL; (or REPLICA IDENTITY DEFAULT once it has a primary key)", name)
	switch replident {
	case "f":
		return pass(check, "FULL: deletes and key changes carry the old row")
	case "d":
		if len(pkCols) > 0 {
			return pass(check, "DEFAULT with a primary key: deletes and key changes carry the old key")
		}
		return fail(check, fix, "DEFAULT without a primary key: deletes carry no old key")
	case "i":
		if strings.Join(identCols, ",") == strings.Join(pkCols, ",") && len(pkCols) > 0 {
			return pass(check, "USING INDEX on the primary key's columns")
		}
		return fail(check, fix, "USING INDEX on (%s), not the primary key (%s): deletes do not carry the key cdc-indexer uses", strings.Join(identCols, ", "), strings.Join(pkCols, ", "))
	case "n":
		return fail(check, fix, "NOTHING: deletes and key changes carry no old key, so removed rows would stay in Weaviate")
	}
	return fail(check, fix, "unknown replica identity %q", replident)
}

// columns checks the template and metadata against the table's columns, as
// `run` does at start.
func columns(ctx context.Context, db *pgx.Conn, check string, i int, name connector.TableName, t config.Table) Result {
	infos, err := connector.DescribeTables(ctx, db, []connector.TableName{name})
	if errors.Is(err, connector.ErrNoPrimaryKey) {
		return skip(check, "the table has no primary key")
	}
	if err != nil {
		return fail(check, "", "%s", oneLine(err))
	}
	if err := validateMapping(infos[0], t); err != nil {
		return fail(check, fmt.Sprintf("change tables[%d].template or tables[%d].metadata to name existing columns, or add the column to %s", i, i, name), "%s", oneLine(err))
	}
	return pass(check, "template and metadata (%d columns) name existing columns", len(t.Metadata))
}

// Publication passes when the publication exists, publishes every table and
// every operation, or when the role can create it (or add the tables).
func Publication(ctx context.Context, db *pgx.Conn, pub string, tables []connector.TableName) Result {
	check := "publication " + pub
	q := connector.QuoteIdent(pub)
	var list []string
	for _, t := range tables {
		list = append(list, t.String())
	}
	tableList := strings.Join(list, ", ")
	var all, ins, upd, del, trunc, viaRoot, owner bool
	err := db.QueryRow(ctx, `SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot,
	pg_has_role(pubowner, 'USAGE')
FROM pg_catalog.pg_publication WHERE pubname = $1`, pub).Scan(&all, &ins, &upd, &del, &trunc, &viaRoot, &owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return publicationMissing(ctx, db, check, q, tables, tableList)
	}
	if err != nil {
		return fail(check, "", "cannot read publication %s: %s", q, oneLine(err))
	}
	if !(ins && upd && del && trunc) {
		return fail(check, fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate');", q),
			"publication %s does not publish every operation (insert %t, update %t, delete %t, truncate %t)", q, ins, upd, del, trunc)
	}
	if !viaRoot {
		parts, err := connector.Partitioned(ctx, db, tables)
		if err != nil {
			return fail(check, "", "cannot read table kinds: %s", oneLine(err))
		}
		if len(parts) > 0 {
			return fail(check, fmt.Sprintf("ALTER PUBLICATION %s SET (publish_via_partition_root = true); once the connector has caught up with writes to %s (or use a new publication and re-snapshot)", q, parts[0]),
				"publication %s publishes partitioned table %s under its partitions' names (publish_via_partition_root is off); its changes would be missed", q, parts[0])
		}
	}
	if all {
		return pass(check, "publication %s exists FOR ALL TABLES", q)
	}
	have, err := connector.PublishedTables(ctx, db, pub)
	if err != nil {
		return fail(check, "", "cannot read publication %s: %s", q, oneLine(err))
	}
	var missing []string
	var missingNames []connector.TableName
	for _, t := range tables {
		if !have[t] {
			missing = append(missing, t.String())
			missingNames = append(missingNames, t)
		}
	}
	if len(missing) == 0 {
		return pass(check, "publication %s exists and publishes every configured table", q)
	}
	ownsAll, err := ownsTables(ctx, db, missingNames)
	if err != nil {
		return fail(check, "", "cannot read table owners: %s", oneLine(err))
	}
	if owner && ownsAll {
		return pass(check, "publication %s exists; %s will be added to it", q, strings.Join(missing, ", "))
	}
	return fail(check, fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s; (as the owner of the publication and the tables)", q, strings.Join(missing, ", ")),
		"publication %s does not publish %s, and this role may not add them", q, strings.Join(missing, ", "))
}

func publicationMissing(ctx context.Context, db *pgx.Conn, check, q string, tables []connector.TableName, tableList string) Result {
	var createDB bool
	if err := db.QueryRow(ctx, `SELECT has_database_privilege(current_database(), 'CREATE')`).Scan(&createDB); err != nil {
		return fail(check, "", "cannot read privileges: %s", oneLine(err))
	}
	ownsAll, err := ownsTables(ctx, db, tables)
	if err != nil {
		return fail(check, "", "cannot read table owners: %s", oneLine(err))
	}
	fix := fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (publish_via_partition_root = true); (as the owner of the tables, with CREATE on the database)", q, tableList)
	if len(tables) == 0 {
		return fail(check, fix, "publication %s does not exist, and no configured table exists to publish", q)
	}
	if createDB && ownsAll {
		return pass(check, "publication %s does not exist; it will be created for %s", q, tableList)
	}
	return fail(check, fix, "publication %s does not exist, and this role may not create it (CREATE on the database: %t, owns every table: %t)", q, createDB, ownsAll)
}

func ownsTables(ctx context.Context, db *pgx.Conn, tables []connector.TableName) (bool, error) {
	for _, t := range tables {
		var owns bool
		err := db.QueryRow(ctx, `SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`, t.Schema, t.Name).Scan(&owns)
		if err != nil {
			return false, err
		}
		if !owns {
			return false, nil
		}
	}
	return true, nil
}

// Slot passes when the slot exists as a pgoutput slot of this database that
// has not lost WAL and that no other connection streams from, or when it
// does not exist (it will be created).
func Slot(ctx context.Context, db *pgx.Conn, slot string) Result {
	check := "slot " + slot
	if err := connector.ValidateSlotName(slot); err != nil {
		return fail(check, "set postgres.slot to lower-case letters, digits and underscores", "%s", oneLine(err))
	}
	var database string
	if err := db.QueryRow(ctx, `SELECT current_database()`).Scan(&database); err != nil {
		return fail(check, "", "%s", oneLine(err))
	}
	st, err := connector.SlotInfo(ctx, db, slot)
	if err != nil {
		return fail(check, "", "%s", oneLine(err))
	}
	drop := fmt.Sprintf("SELECT pg_drop_replication_slot('%s'); (it will be re-created; then run cdc-indexer snapshot) or set postgres.slot to another name", slot)
	switch {
	case !st.Exists:
		return pass(check, "slot %s does not exist; it will be created", slot)
	case st.SlotType != "logical":
		return fail(check, drop, "slot %s is a %s slot, not a logical one", slot, st.SlotType)
	case st.Plugin != connector.OutputPlugin:
		return fail(check, drop, "slot %s uses output plugin %s, not %s", slot, st.Plugin, connector.OutputPlugin)
	case st.Database != database:
		return fail(check, "set postgres.slot to another name", "slot %s belongs to database %s, not %s", slot, st.Database, database)
	case st.WALStatus == "lost":
		return fail(check, drop, "slot %s has lost WAL it needs (wal_status lost); its position can no longer be streamed", slot)
	case st.Active:
		var app string
		var lag int64
		_ = db.QueryRow(ctx, `SELECT COALESCE(a.application_name, ''), COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::int8
FROM pg_catalog.pg_replication_slots s LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = s.active_pid
WHERE s.slot_name = $1`, slot).Scan(&app, &lag)
		if app == connector.ApplicationName {
			// The normal state of a running deployment: check is a gate
			// that must pass against it.
			return pass(check, "slot %s is streamed by a running cdc-indexer (pid %d), %d bytes behind the server (confirmed %s)", slot, st.ActivePID, lag, st.ConfirmedFlush)
		}
		return fail(check, fmt.Sprintf("stop the other consumer (SELECT pg_terminate_backend(%d);) or set postgres.slot to another name", st.ActivePID),
			"slot %s is active: streamed by pid %d (application_name %q), which is not cdc-indexer", slot, st.ActivePID, app)
	}
	return pass(check, "slot %s exists (pgoutput, confirmed %s, wal_status %s, inactive)", slot, st.ConfirmedFlush, st.WALStatus)
}

func checkWeaviate(ctx context.Context, cfg *config.Config) Report {
	rest := WeaviateREST(ctx, cfg.Weaviate)
	r := Report{rest}
	if cfg.Weaviate.GRPC != "" {
		if rest.Status == Pass {
			r = append(r, WeaviateGRPC(ctx, cfg.Weaviate))
		} else {
			r = append(r, skip("weaviate grpc", "Weaviate's REST endpoint is unreachable"))
		}
	}
	for i, t := range cfg.Tables {
		if rest.Status != Pass {
			r = append(r, skip(fmt.Sprintf("tables[%d] collection %s", i, t.Collection), "Weaviate is unreachable"))
			continue
		}
		r = append(r, Collection(ctx, cfg.Weaviate, cfg.Embedding, i, t.Collection))
	}
	return r
}

func newSink(ctx context.Context, w config.Weaviate) (*sink.Weaviate, error) {
	c := w.SinkConfig()
	c.Timeout = Timeout
	return sink.New(ctx, c)
}

// WeaviateREST checks that Weaviate's REST endpoint answers ready.
func WeaviateREST(ctx context.Context, w config.Weaviate) Result {
	const check = "weaviate rest"
	fix := "check weaviate.url (and weaviate.api_key) and that Weaviate runs and is reachable from here"
	s, err := newSink(ctx, w)
	if err != nil {
		return fail(check, fix, "%s", oneLine(err))
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	if err := s.ReadyREST(ctx); err != nil {
		return fail(check, fix, "%s", oneLine(err))
	}
	return pass(check, "%s is ready", s.URL())
}

// WeaviateGRPC checks that Weaviate's gRPC endpoint accepts a batch.
func WeaviateGRPC(ctx context.Context, w config.Weaviate) Result {
	const check = "weaviate grpc"
	fix := "check weaviate.grpc (host:port of Weaviate's gRPC port, 50051 by default) and that the port is reachable from here"
	s, err := newSink(ctx, w)
	if err != nil {
		return fail(check, fix, "%s", oneLine(err))
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	if err := s.ReadyGRPC(ctx); err != nil {
		return fail(check, fix, "%s", oneLine(err))
	}
	return pass(check, "%s accepts batches", w.GRPC)
}

// Collection reports what an existing collection (or the version its alias
// serves) holds against the configured dimensions; a missing one will be
// created. Other dimensions pass: `run` rebuilds the collection into a new
// version without downtime (docs/reindex.md), which the result says.
func Collection(ctx context.Context, w config.Weaviate, e config.Embedding, i int, name string) Result {
	check := fmt.Sprintf("tables[%d] collection %s", i, name)
	s, err := newSink(ctx, w)
	if err != nil {
		return fail(check, "", "%s", oneLine(err))
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	exists, err := collectionExists(ctx, s, name)
	if err != nil {
		return fail(check, "", "cannot read collection %s: %s", name, oneLine(err))
	}
	if !exists {
		return pass(check, "collection %s does not exist; it will be created", name)
	}
	dims, ok, err := s.CollectionVectorDimensions(ctx, name)
	if err != nil {
		return fail(check, "", "cannot read collection %s: %s", name, oneLine(err))
	}
	switch {
	case !ok:
		return pass(check, "collection %s exists and holds no vectors yet", name)
	case e.Provider == config.ProviderNone:
		return pass(check, "collection %s exists; its vectorizer makes %d-dimensional vectors", name, dims)
	case dims != e.Dimensions:
		return pass(check, "collection %s holds %d-dimensional vectors; embedding.dimensions is %d: `run` rebuilds it into a new version with the new model while this one keeps serving (docs/reindex.md)",
			name, dims, e.Dimensions)
	}
	return pass(check, "collection %s exists with %d-dimensional vectors, as configured", name, dims)
}

func collectionExists(ctx context.Context, s *sink.Weaviate, name string) (bool, error) {
	return s.CollectionExists(ctx, name)
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// validateMapping builds the table's renderer as `run` does, which checks
// that the template and metadata name existing columns.
func validateMapping(info connector.TableInfo, t config.Table) error {
	_, err := transform.NewRenderer(info, t.Collection, t.Template, t.Metadata, "preflight")
	return err
}
