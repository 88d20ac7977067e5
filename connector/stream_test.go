package connector

import (
	"context"
	"fmt"
	"math/big"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"
)

const typesDDL = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE typed (
	id int PRIMARY KEY,
	c_text text,
	c_varchar varchar(20),
	c_int2 int2,
	c_int4 int4,
	c_int8 int8,
	c_numeric numeric(20,3),
	c_bool bool,
	c_float4 float4,
	c_float8 float8,
	c_uuid uuid,
	c_json json,
	c_jsonb jsonb,
	c_timestamptz timestamptz,
	c_timestamp timestamp,
	c_date date,
	c_texts text[],
	c_ints int[],
	c_mood mood,
	c_posint posint,
	c_bytea bytea,
	c_interval interval,
	c_inet inet
);`

// goTypes is the Go type each column of typed decodes to ("" = no Go value).
var goTypes = map[string]string{
	"id":            "int32",
	"c_text":        "string",
	"c_varchar":     "string",
	"c_int2":        "int16",
	"c_int4":        "int32",
	"c_int8":        "int64",
	"c_numeric":     "pgtype.Numeric",
	"c_bool":        "bool",
	"c_float4":      "float32",
	"c_float8":      "float64",
	"c_uuid":        "[16]uint8",
	"c_json":        "map[string]interface {}",
	"c_jsonb":       "map[string]interface {}",
	"c_timestamptz": "time.Time",
	"c_timestamp":   "time.Time",
	"c_date":        "time.Time",
	"c_texts":       "[]interface {}",
	"c_ints":        "[]interface {}",
	"c_mood":        "",      // enum: text only
	"c_posint":      "int32", // domain: decoded as its base type
	"c_bytea":       "[]uint8",
	"c_interval":    "pgtype.Interval",
	"c_inet":        "netip.Prefix",
}

// checkAgainstDB compares a stream-decoded row with what PostgreSQL prints
// for the same row: the type's output function (text result format), which
// is also col::text for every type but bool ("t" vs "true"). types
// overrides goTypes.
func checkAgainstDB(t *testing.T, h *harness, table string, id int, row Row, types map[string]string) {
	t.Helper()
	info := h.info(table)
	for _, c := range info.Columns {
		v, ok := row[c.Name]
		if !ok {
			t.Errorf("%s: column %s missing", table, c.Name)
			continue
		}
		var want, cast *string
		q := fmt.Sprintf("SELECT %[1]s, %[1]s::text FROM %[2]s WHERE id = $1", QuoteIdent(c.Name), info.Name)
		if err := h.db.QueryRow(context.Background(), q, TextResult, id).Scan(&want, &cast); err != nil {
			t.Fatal(err)
		}
		if v.OID != c.OID {
			t.Errorf("%s: OID %d, want %d", c.Name, v.OID, c.OID)
		}
		if want == nil {
			if !v.Null || v.Text != "" || v.Go != nil {
				t.Errorf("%s: got %#v, want NULL", c.Name, v)
			}
			continue
		}
		if v.Null || v.Text != *want {
			t.Errorf("%s: Text %q (null %v), PostgreSQL prints %q", c.Name, v.Text, v.Null, *want)
		}
		if c.OID != pgtype.BoolOID && v.Text != *cast {
			t.Errorf("%s: Text %q, %s::text is %q", c.Name, v.Text, c.Name, *cast)
		}
		gotType := ""
		if v.Go != nil {
			gotType = reflect.TypeOf(v.Go).String()
		}
		wantType, ok := types[c.Name]
		if !ok {
			wantType, ok = goTypes[c.Name]
		}
		if ok && gotType != wantType {
			t.Errorf("%s: Go %s (%#v), want %s", c.Name, gotType, v.Go, wantType)
		}
	}
}

func TestStreamDecodesTypes(t *testing.T) {
	h := newHarness(t, typesDDL, "typed")
	h.start(16, 100*time.Millisecond, nil)
	mustExec(t, h.db, `INSERT INTO typed VALUES (1,
		'héllo wörld 🌍🎉 日本語 '' "q" \ back', 'ünï 😀', -32768, 2147483647, 9007199254740993,
		'12345678901234567.891', true, 1.5, 3.141592653589793,
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2, {"b": "ü😀"}], "n": null}', '{"k": "v", "x": 1.25}',
		'2024-02-29 13:14:15.123456+00', '2001-02-03 04:05:06', '2024-02-29',
		ARRAY['a', 'b c', NULL, 'd"e', 'ü😀'], ARRAY[1, -2, 3],
		'happy', 42, '\xdeadbeef', '1 day 02:03:04', '192.168.0.1/24')`)
	mustExec(t, h.db, `INSERT INTO typed (id) VALUES (2)`)

	c := h.one()
	if c.Op != OpInsert || c.Table != (TableName{"public", "typed"}) || !c.Key.Equal(Key{"1"}) || c.Key.String() != "1" {
		t.Errorf("insert: %+v", c)
	}
	if len(c.Unchanged) != 0 || c.OldKey != nil {
		t.Errorf("insert: unchanged %v oldkey %v", c.Unchanged, c.OldKey)
	}
	checkAgainstDB(t, h, "typed", 1, c.Row, nil)
	r := c.Row
	if r["c_text"].Go != "héllo wörld 🌍🎉 日本語 ' \"q\" \\ back" {
		t.Errorf("c_text Go %q", r["c_text"].Go)
	}
	if r["c_int8"].Go != int64(9007199254740993) || r["c_bool"].Go != true || r["c_float8"].Go != 3.141592653589793 {
		t.Errorf("numbers: %v %v %v", r["c_int8"].Go, r["c_bool"].Go, r["c_float8"].Go)
	}
	if n, ok := r["c_numeric"].Go.(pgtype.Numeric); !ok || n.Exp != -3 || n.Int.Cmp(big.NewInt(0).SetBytes(mustBig("12345678901234567891"))) != 0 {
		t.Errorf("numeric %#v", r["c_numeric"].Go)
	}
	if ts, ok := r["c_timestamptz"].Go.(time.Time); !ok || !ts.Equal(time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)) {
		t.Errorf("timestamptz %v", r["c_timestamptz"].Go)
	}
	if a, ok := r["c_texts"].Go.([]any); !ok || !reflect.DeepEqual(a, []any{"a", "b c", nil, `d"e`, "ü😀"}) {
		t.Errorf("text[] %#v", r["c_texts"].Go)
	}
	if a, ok := r["c_ints"].Go.([]any); !ok || !reflect.DeepEqual(a, []any{int32(1), int32(-2), int32(3)}) {
		t.Errorf("int[] %#v", r["c_ints"].Go)
	}
	if j, ok := r["c_jsonb"].Go.(map[string]any); !ok || j["k"] != "v" || j["x"] != 1.25 {
		t.Errorf("jsonb %#v", r["c_jsonb"].Go)
	}
	if r["c_mood"].Text != "happy" || r["c_mood"].Go != nil {
		t.Errorf("enum %#v", r["c_mood"])
	}
	if r["c_posint"].Text != "42" || r["c_posint"].Go != int32(42) {
		t.Errorf("domain %#v", r["c_posint"])
	}
	if r["c_inet"].Go != netip.MustParsePrefix("192.168.0.1/24") {
		t.Errorf("inet %#v", r["c_inet"].Go)
	}

	c = h.one()
	if c.Op != OpInsert || !c.Key.Equal(Key{"2"}) {
		t.Errorf("insert 2: %+v", c)
	}
	checkAgainstDB(t, h, "typed", 2, c.Row, nil)
	if len(c.Row) != len(h.info("typed").Columns) {
		t.Errorf("row of NULLs has %d columns", len(c.Row))
	}

	// Values pgx cannot represent keep their text and do not stop the stream.
	mustExec(t, h.db, `INSERT INTO typed (id, c_timestamptz, c_date, c_numeric, c_float8) VALUES (3, 'infinity', '-infinity', 'NaN', 'NaN')`)
	c = h.one()
	checkAgainstDB(t, h, "typed", 3, c.Row, map[string]string{
		"c_timestamptz": "pgtype.InfinityModifier",
		"c_date":        "pgtype.InfinityModifier",
	})
	if n, ok := c.Row["c_numeric"].Go.(pgtype.Numeric); !ok || !n.NaN {
		t.Errorf("numeric NaN: %#v", c.Row["c_numeric"].Go)
	}
}

func mustBig(s string) []byte {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return n.Bytes()
}

func TestStreamOperations(t *testing.T) {
	h := newHarness(t, `
CREATE TABLE items (tenant text, no int, title text, PRIMARY KEY (tenant, no));
CREATE TABLE single (id bigint PRIMARY KEY, v text);
CREATE TABLE ignored (id int PRIMARY KEY, v text);
`, "items", "single")
	// ignored is published too but not configured: its changes are dropped.
	mustExec(t, h.db, `ALTER PUBLICATION cdc_test ADD TABLE ignored`)
	h.start(16, 100*time.Millisecond, nil)
	items := TableName{"public", "items"}

	mustExec(t, h.db, `INSERT INTO items VALUES ('acme', 7, 'first')`)
	c := h.one()
	if c.Op != OpInsert || c.Table != items || !c.Key.Equal(Key{"acme", "7"}) || c.Key.String() != `["acme","7"]` {
		t.Errorf("insert: %+v key %s", c, c.Key)
	}

	// A transaction: several changes, one CommitLSN, then the Commit.
	tx, err := h.db.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO single VALUES (1, 'a')`,
		`INSERT INTO ignored VALUES (1, 'x')`,
		`UPDATE items SET title = 'second' WHERE tenant = 'acme'`,
		`INSERT INTO single VALUES (2, 'b')`,
		`DELETE FROM single WHERE id = 1`,
	} {
		if _, err := tx.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	lsnAfter := currentLSN(t, h.db, true)
	changes, commit := h.tx()
	var ops []string
	for _, c := range changes {
		ops = append(ops, c.Op.String()+" "+c.Table.Name+" "+c.Key.String())
	}
	if got := strings.Join(ops, ", "); got != `insert single 1, update items ["acme","7"], insert single 2, delete single 1` {
		t.Errorf("transaction: %s", got)
	}
	if commit.CommitLSN == 0 || commit.CommitLSN > lsnAfter || commit.CommitTime.IsZero() ||
		time.Since(commit.CommitTime) > time.Minute {
		t.Errorf("commit %s at %s (wal now %s)", commit.CommitLSN, commit.CommitTime, lsnAfter)
	}
	if upd := changes[1]; upd.Row["title"].Text != "second" || upd.OldKey != nil || len(upd.Unchanged) != 0 {
		t.Errorf("update: %+v", upd)
	}
	if del := changes[3]; del.Row != nil || del.OldKey != nil {
		t.Errorf("delete: %+v", del)
	}

	// Primary key change: OldKey is the old key.
	mustExec(t, h.db, `UPDATE items SET no = 8 WHERE tenant = 'acme' AND no = 7`)
	c = h.one()
	if c.Op != OpUpdate || !c.Key.Equal(Key{"acme", "8"}) || !c.OldKey.Equal(Key{"acme", "7"}) {
		t.Errorf("key change: key %v old %v", c.Key, c.OldKey)
	}
	mustExec(t, h.db, `UPDATE single SET id = 20 WHERE id = 2`)
	c = h.one()
	if !c.Key.Equal(Key{"20"}) || !c.OldKey.Equal(Key{"2"}) || c.Row["v"].Text != "b" {
		t.Errorf("single key change: %+v", c)
	}

	// Changes of ignored alone produce nothing.
	mustExec(t, h.db, `INSERT INTO ignored VALUES (2, 'y')`)
	h.quiet(300 * time.Millisecond)

	// A truncate of several tables is one Change listing the configured ones.
	mustExec(t, h.db, `TRUNCATE single, ignored, items`)
	c = h.one()
	if c.Op != OpTruncate || c.Table != c.Tables[0] || len(c.Tables) != 2 ||
		!slices.Contains(c.Tables, items) || !slices.Contains(c.Tables, TableName{"public", "single"}) || c.Key != nil {
		t.Errorf("truncate: %+v", c)
	}
}

func TestStreamFollowsSchemaChanges(t *testing.T) {
	h := newHarness(t, `CREATE TABLE docs (id int PRIMARY KEY, a text, b text)`, "docs")
	h.start(16, 100*time.Millisecond, nil)

	mustExec(t, h.db, `INSERT INTO docs VALUES (1, 'a1', 'b1')`)
	if c := h.one(); len(c.Row) != 3 || c.Row["b"].Text != "b1" {
		t.Errorf("before: %+v", c.Row)
	}
	mustExec(t, h.db, `ALTER TABLE docs ADD COLUMN c int DEFAULT 5`)
	mustExec(t, h.db, `INSERT INTO docs VALUES (2, 'a2', 'b2', 9)`)
	if c := h.one(); len(c.Row) != 4 || c.Row["c"].Go != int32(9) || c.Row["b"].Text != "b2" {
		t.Errorf("after add: %+v", c.Row)
	}
	mustExec(t, h.db, `UPDATE docs SET a = 'a1x' WHERE id = 1`)
	if c := h.one(); c.Row["c"].Text != "5" || c.Row["a"].Text != "a1x" {
		t.Errorf("update after add: %+v", c.Row)
	}
	mustExec(t, h.db, `ALTER TABLE docs DROP COLUMN b`)
	mustExec(t, h.db, `INSERT INTO docs VALUES (3, 'a3', 10)`)
	c := h.one()
	if _, has := c.Row["b"]; has || len(c.Row) != 3 || c.Row["c"].Text != "10" || c.Row["a"].Text != "a3" {
		t.Errorf("after drop: %+v", c.Row)
	}
	mustExec(t, h.db, `ALTER TABLE docs ALTER COLUMN c TYPE bigint`)
	mustExec(t, h.db, `INSERT INTO docs VALUES (4, 'a4', 11)`)
	if c := h.one(); c.Row["c"].Go != int64(11) || c.Row["c"].OID != 20 {
		t.Errorf("after retype: %+v", c.Row["c"])
	}
}

func TestStreamUnchangedToast(t *testing.T) {
	for _, full := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "full"}[full], func(t *testing.T) {
			h := newHarness(t, `CREATE TABLE big (id int PRIMARY KEY, title text, body text)`, "big")
			if full {
				mustExec(t, h.db, `ALTER TABLE big REPLICA IDENTITY FULL`)
			}
			// Incompressible, so it is stored out of line (TOASTed).
			mustExec(t, h.db, `ALTER TABLE big ALTER COLUMN body SET STORAGE EXTERNAL`)
			h.start(16, 100*time.Millisecond, nil)

			body := strings.Repeat("0123456789abcdef🙂", 100*1024/20)
			mustExec(t, h.db, `INSERT INTO big VALUES (1, 't', $1)`, body)
			if c := h.one(); c.Row["body"].Text != body {
				t.Errorf("insert: body of %d bytes", len(c.Row["body"].Text))
			}
			mustExec(t, h.db, `UPDATE big SET title = 't2' WHERE id = 1`)
			c := h.one()
			if c.Row["title"].Text != "t2" {
				t.Errorf("title %q", c.Row["title"].Text)
			}
			if full {
				if len(c.Unchanged) != 0 || c.Row["body"].Text != body || c.Row["body"].Go != body {
					t.Errorf("FULL: unchanged %v, body of %d bytes", c.Unchanged, len(c.Row["body"].Text))
				}
				return
			}
			if !slices.Equal(c.Unchanged, []string{"body"}) {
				t.Errorf("DEFAULT: unchanged %v", c.Unchanged)
			}
			if _, has := c.Row["body"]; has {
				t.Errorf("DEFAULT: unchanged body is in Row")
			}
			rows, err := FetchRows(context.Background(), h.db, h.info("big"), []Key{c.Key, {"404"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 || rows["1"]["body"].Text != body || rows["1"]["body"].Go != body || rows["1"]["title"].Text != "t2" {
				t.Errorf("FetchRows: %d rows", len(rows))
			}
		})
	}
}

// With nothing confirmed, the slot must not pass the first transaction.
func TestStreamConfirmsOnlyConfirmed(t *testing.T) {
	h := newHarness(t, `CREATE TABLE t (id int PRIMARY KEY)`, "t")
	h.start(16, 50*time.Millisecond, func() pglogrepl.LSN { return 0 })
	mustExec(t, h.db, `INSERT INTO t VALUES (1)`)
	_, commit := h.tx()
	mustExec(t, h.db, `CREATE TABLE unrelated (id int); INSERT INTO unrelated VALUES (1)`)
	time.Sleep(500 * time.Millisecond)
	st, err := SlotInfo(context.Background(), h.db, h.slot)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Active || st.ConfirmedFlush > commit.CommitLSN {
		t.Errorf("slot confirmed %s past unconfirmed commit %s (active %v)", st.ConfirmedFlush, commit.CommitLSN, st.Active)
	}
	if h.stream.LastStatus() > commit.CommitLSN {
		t.Errorf("reported %s past unconfirmed commit %s", h.stream.LastStatus(), commit.CommitLSN)
	}
}

// Once everything sent is confirmed, an idle stream confirms the server's
// WAL end: the slot does not retain WAL written after the last change.
func TestStreamIdleAdvances(t *testing.T) {
	h := newHarness(t, `CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE unrelated (id int)`, "t")
	h.start(16, 50*time.Millisecond, nil)
	mustExec(t, h.db, `INSERT INTO t VALUES (1)`)
	_, commit := h.tx()
	h.confirmed.Store(uint64(commit.CommitLSN))
	target := currentLSN(t, h.db, false)
	st := waitSlot(t, h.db, h.slot, 5*time.Second, func(st SlotState) bool { return st.ConfirmedFlush >= target })
	if st.ConfirmedFlush < commit.CommitLSN {
		t.Errorf("confirmed %s before the commit %s", st.ConfirmedFlush, commit.CommitLSN)
	}

	// Writes to tables that are not published advance it too.
	mustExec(t, h.db, `INSERT INTO unrelated SELECT generate_series(1, 1000)`)
	target = currentLSN(t, h.db, false)
	waitSlot(t, h.db, h.slot, 5*time.Second, func(st SlotState) bool { return st.ConfirmedFlush >= target })

	// After a restart the stream resumes after what was confirmed.
	h.stop()
	// The server lets go of the slot only once its walsender has noticed the
	// disconnect; a busy machine can take a moment.
	waitSlot(t, h.db, h.slot, 30*time.Second, func(st SlotState) bool { return !st.Active })
	mustExec(t, h.db, `INSERT INTO t VALUES (2)`)
	h.start(16, 50*time.Millisecond, nil)
	if c := h.one(); !c.Key.Equal(Key{"2"}) {
		t.Errorf("after restart: %+v", c)
	}
}

// A consumer that does not take messages must not let the server time the
// connection out: status updates continue while the send blocks.
func TestStreamKeepsAliveWhileBlocked(t *testing.T) {
	h := newHarness(t, `CREATE TABLE t (id int PRIMARY KEY)`, "t")
	h.dsn += "&options=-c%20wal_sender_timeout%3D1s"
	h.start(0, 100*time.Millisecond, nil)
	mustExec(t, h.db, `INSERT INTO t SELECT generate_series(1, 50)`)
	time.Sleep(3 * time.Second) // nobody reads; the server would give up after 1s of silence
	changes, commit := h.tx()
	if len(changes) != 50 {
		t.Fatalf("got %d changes", len(changes))
	}
	h.confirmed.Store(uint64(commit.CommitLSN))
	waitSlot(t, h.db, h.slot, 5*time.Second, func(st SlotState) bool { return st.ConfirmedFlush >= commit.CommitLSN })
	mustExec(t, h.db, `INSERT INTO t VALUES (51)`)
	if c := h.one(); !c.Key.Equal(Key{"51"}) {
		t.Errorf("after block: %+v", c)
	}
}

func TestStreamStopsOnCancel(t *testing.T) {
	h := newHarness(t, `CREATE TABLE t (id int PRIMARY KEY)`, "t")
	h.start(0, time.Hour, nil)
	mustExec(t, h.db, `INSERT INTO t VALUES (1)`)
	time.Sleep(300 * time.Millisecond) // Run is now blocked sending
	start := time.Now()
	if err := h.stream.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-h.errc; err != context.Canceled {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	h.cancel = nil
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %s", d)
	}
	waitSlot(t, h.db, h.slot, 5*time.Second, func(st SlotState) bool { return !st.Active })
}
