package preflight

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdc-indexer/cdc-indexer/connector"
	"github.com/cdc-indexer/cdc-indexer/embedding"
	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
	"github.com/cdc-indexer/cdc-indexer/sink"
	"github.com/cdc-indexer/cdc-indexer/transform"
)

var (
	badOnce    sync.Once
	badServer  *testenv.PostgresServer
	badErr     error
	badCleanup []func()
)

func TestMain(m *testing.M) {
	code := testenv.Main(m)
	if badServer != nil {
		badServer.Close()
	}
	os.Exit(code)
}

// misconfigured is a private cluster with wal_level=replica, one replication
// slot (taken by a physical slot) and no WAL senders.
func misconfigured(t *testing.T) *testenv.PostgresServer {
	t.Helper()
	badOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		badServer, badErr = testenv.StartPostgres(ctx, testenv.PostgresOptions{Settings: map[string]string{
			"wal_level": "replica", "max_replication_slots": "1", "max_wal_senders": "0",
		}})
		if badErr != nil {
			return
		}
		conn, err := pgx.Connect(ctx, badServer.AdminDSN())
		if err != nil {
			badErr = err
			return
		}
		defer conn.Close(ctx)
		_, badErr = conn.Exec(ctx, `SELECT pg_create_physical_replication_slot('someone_elses')`)
	})
	if badErr != nil {
		t.Fatalf("misconfigured cluster: %v", badErr)
	}
	return badServer
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	db, res := Connect(context.Background(), dsn)
	if db == nil {
		t.Fatalf("connect: %+v", res)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return db
}

func exec(t *testing.T, db *pgx.Conn, sql string) {
	t.Helper()
	if _, err := db.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func expect(t *testing.T, r Result, status Status, parts ...string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: %s (%s; fix %q), want %s", r.Check, r.Status, r.Detail, r.Fix, status)
	}
	for _, p := range parts {
		if !strings.Contains(r.Detail+" | "+r.Fix, p) {
			t.Errorf("%s: %q / fix %q lacks %q", r.Check, r.Detail, r.Fix, p)
		}
	}
	if status == Fail && r.Fix == "" {
		t.Errorf("%s failed without a fix", r.Check)
	}
}

// role creates a login role in the shared cluster (roles are global) and
// returns a DSN that connects as it to dsn's database.
func role(t *testing.T, admin *pgx.Conn, dsn, attrs string) (name, roleDSN string) {
	t.Helper()
	name = fmt.Sprintf("pf_%d", time.Now().UnixNano())
	exec(t, admin, "CREATE ROLE "+name+" LOGIN "+attrs)
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = admin.Exec(ctx, "DROP OWNED BY "+name)
		_, _ = admin.Exec(ctx, "DROP ROLE "+name)
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(name)
	return name, u.String()
}

func TestConnect(t *testing.T) {
	db, r := Connect(context.Background(), testenv.Postgres(t))
	expect(t, r, Pass, "connected to database")
	db.Close(context.Background())

	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	db, r = Connect(context.Background(), fmt.Sprintf("postgres://app:s3cret@127.0.0.1:%d/app?sslmode=disable", port))
	if db != nil {
		t.Fatal("connected to nothing")
	}
	expect(t, r, Fail, "cannot connect", "postgres.dsn")
	if strings.Contains(r.Detail, "s3cret") {
		t.Errorf("detail shows the password: %s", r.Detail)
	}
}

func TestWALLevel(t *testing.T) {
	expect(t, WALLevel(context.Background(), connect(t, testenv.Postgres(t))), Pass)
	bad := connect(t, misconfigured(t).AdminDSN())
	expect(t, WALLevel(context.Background(), bad), Fail, "wal_level is replica", "ALTER SYSTEM SET wal_level = logical;", "restart")
}

func TestReplicationPrivilege(t *testing.T) {
	dsn := testenv.Postgres(t)
	admin := connect(t, dsn)
	expect(t, ReplicationPrivilege(context.Background(), admin), Pass, "superuser")

	_, replDSN := role(t, admin, dsn, "REPLICATION")
	expect(t, ReplicationPrivilege(context.Background(), connect(t, replDSN)), Pass, "has REPLICATION")

	name, plainDSN := role(t, admin, dsn, "")
	expect(t, ReplicationPrivilege(context.Background(), connect(t, plainDSN)), Fail, "ALTER ROLE "+name+" REPLICATION;")
}

func TestSlotCapacity(t *testing.T) {
	ctx := context.Background()
	expect(t, SlotCapacity(ctx, connect(t, testenv.Postgres(t)), "cdc_indexer"), Pass, "free")
	bad := connect(t, misconfigured(t).AdminDSN())
	expect(t, SlotCapacity(ctx, bad, "cdc_indexer"), Fail, "all 1 of max_replication_slots", "ALTER SYSTEM SET max_replication_slots = 2;")
	// An existing slot needs no new one.
	expect(t, SlotCapacity(ctx, bad, "someone_elses"), Pass, "exists")
}

func TestWALSenderCapacity(t *testing.T) {
	ctx := context.Background()
	expect(t, WALSenderCapacity(ctx, connect(t, testenv.Postgres(t))), Pass)
	bad := connect(t, misconfigured(t).AdminDSN())
	expect(t, WALSenderCapacity(ctx, bad), Fail, "max_wal_senders", "ALTER SYSTEM SET max_wal_senders = 1;")
}

func TestStateSchema(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	admin := connect(t, dsn)
	expect(t, StateSchema(ctx, admin, "cdc_indexer"), Pass, "will be created")

	name, plainDSN := role(t, admin, dsn, "")
	plain := connect(t, plainDSN)
	expect(t, StateSchema(ctx, plain, "cdc_indexer"), Fail, "may not create it", "GRANT CREATE ON DATABASE")

	exec(t, admin, "CREATE SCHEMA cdc_indexer")
	expect(t, StateSchema(ctx, admin, "cdc_indexer"), Pass, "exists")
	expect(t, StateSchema(ctx, plain, "cdc_indexer"), Fail, "GRANT USAGE, CREATE ON SCHEMA cdc_indexer TO "+name+";")
}

func tableResults(t *testing.T, db *pgx.Conn, tbl config.Table) map[string]Result {
	t.Helper()
	r, _ := Table(context.Background(), db, 0, tbl)
	out := map[string]Result{}
	for _, res := range r {
		out[strings.TrimPrefix(res.Check, "tables[0] "+tbl.Table+" ")] = res
	}
	return out
}

func TestTable(t *testing.T) {
	db := connect(t, testenv.Postgres(t))
	exec(t, db, `
CREATE TABLE good (id int PRIMARY KEY, title text, body text, author text);
CREATE TABLE full_ident (id int PRIMARY KEY, title text); ALTER TABLE full_ident REPLICA IDENTITY FULL;
CREATE TABLE nothing_ident (id int PRIMARY KEY, title text); ALTER TABLE nothing_ident REPLICA IDENTITY NOTHING;
CREATE TABLE other_index (id int PRIMARY KEY, code text NOT NULL UNIQUE, title text);
ALTER TABLE other_index REPLICA IDENTITY USING INDEX other_index_code_key;
CREATE TABLE pk_index (id int PRIMARY KEY, title text); ALTER TABLE pk_index REPLICA IDENTITY USING INDEX pk_index_pkey;
CREATE TABLE no_pk (id int, title text);`)
	mapping := func(table string, metadata ...string) config.Table {
		return config.Table{Table: table, Collection: "C", Template: "{{.title}}", Metadata: metadata}
	}

	r := tableResults(t, db, mapping("public.good", "author"))
	for _, k := range []string{"exists", "primary key", "replica identity", "columns"} {
		expect(t, r[k], Pass)
	}
	expect(t, tableResults(t, db, mapping("public.full_ident"))["replica identity"], Pass, "FULL")
	expect(t, tableResults(t, db, mapping("public.pk_index"))["replica identity"], Pass, "primary key")
	expect(t, tableResults(t, db, mapping("public.nothing_ident"))["replica identity"], Fail,
		"NOTHING", "ALTER TABLE public.nothing_ident REPLICA IDENTITY FULL;")
	expect(t, tableResults(t, db, mapping("public.other_index"))["replica identity"], Fail,
		"USING INDEX on (code)", "ALTER TABLE public.other_index REPLICA IDENTITY FULL;")

	r = tableResults(t, db, mapping("public.no_pk"))
	expect(t, r["primary key"], Fail, "no primary key", "ALTER TABLE public.no_pk ADD PRIMARY KEY")
	expect(t, r["replica identity"], Fail, "DEFAULT without a primary key")
	expect(t, r["columns"], Skip)

	r = tableResults(t, db, mapping("public.missing"))
	expect(t, r["exists"], Fail, "does not exist", "tables[0].table")
	expect(t, r["primary key"], Skip)

	r = tableResults(t, db, mapping("public.good", "no_such_column"))
	expect(t, r["columns"], Fail, "no_such_column", "tables[0].metadata")
	bad := mapping("public.good")
	bad.Template = "{{.titel}}"
	expect(t, tableResults(t, db, bad)["columns"], Fail, "titel", "tables[0].template")

	// A role that may not read the table.
	dsn := testenv.Postgres(t)
	admin := connect(t, dsn)
	exec(t, admin, `CREATE TABLE secret (id int PRIMARY KEY, title text)`)
	name, plainDSN := role(t, admin, dsn, "")
	expect(t, tableResults(t, connect(t, plainDSN), mapping("public.secret"))["exists"], Fail,
		"may not SELECT", "GRANT SELECT ON public.secret TO "+name+";")
}

func TestPublication(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)`)
	ab := []connector.TableName{{Schema: "public", Name: "a"}, {Schema: "public", Name: "b"}}

	expect(t, Publication(ctx, db, "pub", ab), Pass, "will be created for public.a, public.b")
	_, plainDSN := role(t, db, dsn, "")
	expect(t, Publication(ctx, connect(t, plainDSN), "pub", ab), Fail, "may not create it", "CREATE PUBLICATION pub FOR TABLE public.a, public.b WITH (publish_via_partition_root = true);")

	exec(t, db, `CREATE PUBLICATION pub FOR TABLE a`)
	expect(t, Publication(ctx, db, "pub", ab), Pass, "public.b will be added")
	expect(t, Publication(ctx, connect(t, plainDSN), "pub", ab), Fail, "ALTER PUBLICATION pub ADD TABLE public.b;")
	exec(t, db, `ALTER PUBLICATION pub ADD TABLE b`)
	expect(t, Publication(ctx, db, "pub", ab), Pass, "publishes every configured table")

	exec(t, db, `ALTER PUBLICATION pub SET (publish = 'insert, update')`)
	expect(t, Publication(ctx, db, "pub", ab), Fail, "delete false", "ALTER PUBLICATION pub SET (publish = 'insert, update, delete, truncate');")

	// A partitioned table published under its partitions' names would be
	// missed: the check says so and names the setting that fixes it.
	exec(t, db, `CREATE TABLE p (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);
CREATE PUBLICATION leaves FOR TABLE p`)
	parted := []connector.TableName{{Schema: "public", Name: "p"}}
	expect(t, Publication(ctx, db, "leaves", parted), Fail, "partitioned table public.p", "publish_via_partition_root = true")
	exec(t, db, `ALTER PUBLICATION leaves SET (publish_via_partition_root = true)`)
	expect(t, Publication(ctx, db, "leaves", parted), Pass, "publishes every configured table")
}

func TestSlot(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	db := connect(t, dsn)
	expect(t, Slot(ctx, db, "cdc_indexer"), Pass, "will be created")

	exec(t, db, `SELECT pg_create_logical_replication_slot('pf_good', 'pgoutput')`)
	expect(t, Slot(ctx, db, "pf_good"), Pass, "exists (pgoutput")

	exec(t, db, `SELECT pg_create_logical_replication_slot('pf_decoding', 'test_decoding')`)
	expect(t, Slot(ctx, db, "pf_decoding"), Fail, "test_decoding", "pg_drop_replication_slot('pf_decoding')")

	// A foreign consumer streams from the slot: a failure with the fix;
	// this connector's own running instance: a pass.
	exec(t, db, `CREATE TABLE a (id int PRIMARY KEY); CREATE PUBLICATION pub FOR TABLE a`)
	stream := func(app string) *pgconn.PgConn {
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["replication"] = "database"
		cfg.RuntimeParams["application_name"] = app
		repl, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = pglogrepl.StartReplication(ctx, repl, "pf_good", 0, pglogrepl.StartReplicationOptions{
			Mode: pglogrepl.LogicalReplication, PluginArgs: []string{"proto_version '1'", "publication_names 'pub'"}})
		if err != nil {
			t.Fatal(err)
		}
		return repl
	}
	waitActive := func() Result {
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := Slot(ctx, db, "pf_good")
			if !strings.Contains(r.Detail, "inactive") {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("slot never reported active: %+v", r)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	foreign := stream("pg_recvlogical")
	expect(t, waitActive(), Fail, "is active", `"pg_recvlogical"`, "pg_terminate_backend(")
	foreign.Close(ctx)
	for Slot(ctx, db, "pf_good").Status != Pass || !strings.Contains(Slot(ctx, db, "pf_good").Detail, "inactive") {
		time.Sleep(50 * time.Millisecond)
	}
	own := stream(connector.ApplicationName)
	defer own.Close(ctx)
	expect(t, waitActive(), Pass, "streamed by a running cdc-indexer", "bytes behind")
}

func weaviateConfig(t *testing.T) config.Weaviate {
	url, grpc := testenv.Weaviate(t)
	return config.Weaviate{URL: url, GRPC: grpc}
}

func TestWeaviate(t *testing.T) {
	ctx := context.Background()
	w := weaviateConfig(t)
	expect(t, WeaviateREST(ctx, w), Pass, "is ready")
	expect(t, WeaviateGRPC(ctx, w), Pass, "accepts batches")

	ports, err := testenv.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, WeaviateREST(ctx, config.Weaviate{URL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), GRPC: w.GRPC}), Fail, "unreachable", "weaviate.url")
	badGRPC := w
	badGRPC.GRPC = fmt.Sprintf("127.0.0.1:%d", ports[1])
	expect(t, WeaviateGRPC(ctx, badGRPC), Fail, "gRPC", "weaviate.grpc")
}

func TestCollection(t *testing.T) {
	ctx := context.Background()
	w := weaviateConfig(t)
	emb := config.Embedding{Provider: "hash", Dimensions: 64}
	name := testenv.CollectionName(t)
	expect(t, Collection(ctx, w, emb, 0, name), Pass, "will be created")

	s, err := sink.New(ctx, sink.Config{URL: w.URL, GRPC: w.GRPC})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.EnsureCollection(ctx, sink.CollectionSpec{Name: name, Vectorizer: "none"}); err != nil {
		t.Fatal(err)
	}
	expect(t, Collection(ctx, w, emb, 0, name), Pass, "no vectors yet")

	vec := embedding.NewHashEmbedder(8)
	v, err := vec.Embed(ctx, []string{"eight dimensions"})
	if err != nil {
		t.Fatal(err)
	}
	doc := &transform.Document{Collection: name, SourceTable: "public.t", SourceKey: "1", Text: "eight dimensions",
		ContentHash: "h", Chunks: []transform.Chunk{{Index: 0, Text: "eight dimensions", Vector: v[0]}}}
	if err := s.Write(ctx, []*transform.Document{doc}); err != nil {
		t.Fatal(err)
	}
	expect(t, Collection(ctx, w, emb, 0, name), Pass, "8-dimensional", "embedding.dimensions is 64", "rebuilds it into a new version")
	emb.Dimensions = 8
	expect(t, Collection(ctx, w, emb, 0, name), Pass, "8-dimensional vectors, as configured")
}

// Run checks everything and creates nothing.
func TestRunCreatesNothing(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE articles (id int PRIMARY KEY, title text, body text)`)
	w := weaviateConfig(t)
	cfg := &config.Config{
		Postgres:  config.Postgres{DSN: dsn, Slot: "cdc_indexer", Publication: "cdc_indexer", StateSchema: "cdc_indexer"},
		Weaviate:  w,
		Embedding: config.Embedding{Provider: "hash", Dimensions: 64},
		Tables:    []config.Table{{Table: "public.articles", Collection: testenv.CollectionName(t), Template: "{{.title}}"}},
	}
	report := Run(ctx, cfg)
	if !report.OK() {
		var b strings.Builder
		report.Print(&b)
		t.Fatalf("checks failed on a good setup:\n%s", b.String())
	}
	var slots, pubs, schemas int
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()),
	(SELECT count(*) FROM pg_publication), (SELECT count(*) FROM pg_namespace WHERE nspname = 'cdc_indexer')`).Scan(&slots, &pubs, &schemas); err != nil {
		t.Fatal(err)
	}
	if slots+pubs+schemas != 0 {
		t.Errorf("check created something: %d slots, %d publications, %d schemas", slots, pubs, schemas)
	}
	s, err := sink.New(ctx, w.SinkConfig())
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := collectionExists(ctx, s, cfg.Tables[0].Collection); err != nil || ok {
		t.Errorf("check created the collection (exists %v, err %v)", ok, err)
	}
}
