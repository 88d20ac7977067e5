package connector

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDescribeTables(t *testing.T) {
	_, db := testDB(t)
	ctx := context.Background()
	mustExec(t, db, `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN smallpos AS posint CHECK (VALUE < 100);
CREATE DOMAIN tags AS text[];
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case" (
	tenant text NOT NULL,
	dropped int,
	"Item No" integer NOT NULL,
	title varchar(20),
	m mood,
	p posint,
	s smallpos,
	tg tags,
	arr integer[],
	ts timestamptz,
	n numeric(10,2),
	PRIMARY KEY ("Item No", tenant)
);
ALTER TABLE "Odd Schema"."Mixed Case" DROP COLUMN dropped;
ALTER TABLE "Odd Schema"."Mixed Case" REPLICA IDENTITY FULL;
CREATE TABLE plain (id bigint PRIMARY KEY, body text);
`)
	var moodOID, posintOID, smallposOID, tagsOID uint32
	if err := db.QueryRow(ctx, "SELECT 'mood'::regtype::oid, 'posint'::regtype::oid, 'smallpos'::regtype::oid, 'tags'::regtype::oid").
		Scan(&moodOID, &posintOID, &smallposOID, &tagsOID); err != nil {
		t.Fatal(err)
	}

	infos, err := DescribeTables(ctx, db, []TableName{{"Odd Schema", "Mixed Case"}, {"public", "plain"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("got %d infos", len(infos))
	}
	odd := infos[0]
	if odd.Name != (TableName{"Odd Schema", "Mixed Case"}) {
		t.Errorf("name %v", odd.Name)
	}
	if !reflect.DeepEqual(odd.Key, []string{"Item No", "tenant"}) {
		t.Errorf("key %q, want [Item No tenant] (key order, not column order)", odd.Key)
	}
	if odd.ReplicaIdentity != 'f' {
		t.Errorf("replica identity %q", odd.ReplicaIdentity)
	}
	want := []Column{
		{Name: "tenant", OID: 25, BaseOID: 25, TypeName: "text", Category: 'S', NotNull: true},
		{Name: "Item No", OID: 23, BaseOID: 23, TypeName: "integer", Category: 'N', NotNull: true},
		{Name: "title", OID: 1043, BaseOID: 1043, TypeName: "character varying(20)", Category: 'S'},
		{Name: "m", OID: moodOID, BaseOID: moodOID, TypeName: "mood", Category: 'E'},
		{Name: "p", OID: posintOID, BaseOID: 23, TypeName: "posint", Category: 'N'},
		{Name: "s", OID: smallposOID, BaseOID: 23, TypeName: "smallpos", Category: 'N'},
		{Name: "tg", OID: tagsOID, BaseOID: 1009, TypeName: "tags", Category: 'A', ElemOID: 25},
		{Name: "arr", OID: 1007, BaseOID: 1007, TypeName: "integer[]", Category: 'A', ElemOID: 23},
		{Name: "ts", OID: 1184, BaseOID: 1184, TypeName: "timestamp with time zone", Category: 'D'},
		{Name: "n", OID: 1700, BaseOID: 1700, TypeName: "numeric(10,2)", Category: 'N'},
	}
	if !reflect.DeepEqual(odd.Columns, want) {
		t.Errorf("columns:\n got %+v\nwant %+v", odd.Columns, want)
	}
	if c, ok := odd.Column("Item No"); !ok || c.OID != 23 {
		t.Errorf("Column(Item No) = %+v, %v", c, ok)
	}

	plain := infos[1]
	if plain.ReplicaIdentity != 'd' || !reflect.DeepEqual(plain.Key, []string{"id"}) || len(plain.Columns) != 2 {
		t.Errorf("plain: %+v", plain)
	}
}

func TestDescribeTablesErrors(t *testing.T) {
	_, db := testDB(t)
	ctx := context.Background()
	mustExec(t, db, `CREATE TABLE nokey (a int, b text); CREATE TABLE ok (id int PRIMARY KEY); CREATE VIEW v AS SELECT 1 AS id`)

	_, err := DescribeTables(ctx, db, []TableName{{"public", "ok"}, {"public", "x"}})
	if err == nil || err.Error() != "table public.x does not exist" || !errors.Is(err, ErrTableNotFound) {
		t.Errorf("missing table: %v", err)
	}
	_, err = DescribeTables(ctx, db, []TableName{{"public", "v"}})
	if err == nil || !errors.Is(err, ErrTableNotFound) {
		t.Errorf("view: %v", err)
	}
	_, err = DescribeTables(ctx, db, []TableName{{"public", "nokey"}})
	if err == nil || !errors.Is(err, ErrNoPrimaryKey) || !strings.Contains(err.Error(), "public.nokey") ||
		!strings.Contains(err.Error(), "primary key") {
		t.Errorf("no primary key: %v", err)
	}
}
