package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
	"github.com/cdc-indexer/cdc-indexer/internal/status"
)

// Multi-tenancy (contract section 3): a mapping with tables[].tenant keeps
// each row's objects in the Weaviate tenant its column names, and the
// oracle checks every object's tenant besides its document.

const notesSchema = `CREATE TABLE notes (
  tenant_id text NOT NULL,
  id int NOT NULL,
  body text,
  PRIMARY KEY (tenant_id, id)
)`

func notes() mapping {
	return mapping{
		Table: "public.notes", Template: "{{.body}}", Tenant: "tenant_id",
		KeySQL:  "'[' || to_json(tenant_id)::text || ',' || to_json(id::text)::text || ']'",
		TextSQL: "coalesce(body, '')",
	}
}

// TestTenantsFromAColumnOfTheKey: 50 tenants from tenant_id in the primary
// key, through a snapshot, inserts, updates, deletes, rows moving to another
// tenant, an invalid tenant name, a truncate and a restart.
func TestTenantsFromAColumnOfTheKey(t *testing.T) {
	h := newHarness(t, notesSchema, notes())
	h.exec(`INSERT INTO notes SELECT 'org-' || (g % 50), g, 'note ' || g || repeat(' word', g % 30) FROM generate_series(1, 400) g`)
	h.runSnapshot(indexer.SnapshotOptions{})
	h.requireEqual("snapshot into 50 tenants")
	tenants, err := h.weaviate.Tenants(context.Background(), h.maps[0].Collection)
	if err != nil || len(tenants) != 50 {
		t.Fatalf("tenants after the snapshot: %d (%v), want 50", len(tenants), err)
	}

	c := h.start()
	h.exec(`INSERT INTO notes SELECT 'org-' || (g % 50), g, 'new ' || g FROM generate_series(401, 500) g`)
	h.exec(`UPDATE notes SET body = body || ' edited' WHERE id % 7 = 0`)
	h.exec(`DELETE FROM notes WHERE id % 11 = 0`)
	h.requireInSync("inserts, updates and deletes across tenants")

	h.exec(`UPDATE notes SET tenant_id = 'org-49' WHERE tenant_id = 'org-0' AND id % 3 = 0`)
	h.exec(`UPDATE notes SET tenant_id = 'org-new', body = 'moved and edited' WHERE tenant_id = 'org-1' AND id % 2 = 1`)
	h.requireInSync("rows moved to another tenant, one of them new")

	h.exec(`INSERT INTO notes VALUES ('not a tenant!', 1, 'bad tenant name')`)
	h.exec(`INSERT INTO notes VALUES ('org-2', 9001, 'fine')`)
	h.waitCaughtUp()
	letters := h.deadLetters()
	if len(letters) != 1 || !strings.Contains(letters[0].Error, "not a valid Weaviate tenant name") {
		t.Fatalf("dead letters %+v; want the row with an invalid tenant name", letters)
	}
	h.exec(`DELETE FROM notes WHERE tenant_id = 'not a tenant!'`)
	h.requireInSync("invalid tenant name dead-lettered, the rest indexed")

	report, err := status.Collect(context.Background(), h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tb := report.Tables[0]; tb.Tenants == nil || *tb.Tenants != 51 || tb.Objects == nil || tb.Chunks == nil || *tb.Objects != *tb.Chunks {
		t.Fatalf("status of the tenanted table: %+v; want 51 tenants and as many objects as the state expects", tb)
	}

	c.stop(t)
	h.exec(`UPDATE notes SET body = 'while stopped' WHERE id % 13 = 0`)
	h.exec(`UPDATE notes SET tenant_id = 'org-3' WHERE tenant_id = 'org-4' AND id % 5 = 0`)
	c = h.start()
	h.requireInSync("restart")

	h.exec(`TRUNCATE notes`)
	h.requireInSync("truncate reaches every tenant")
	h.exec(`INSERT INTO notes SELECT 'org-' || (g % 5), g, 'after truncate ' || g FROM generate_series(1, 50) g`)
	h.requireInSync("inserts after the truncate")
	c.stop(t)
}

// TestTenantColumnOutsideTheKey: under REPLICA IDENTITY FULL the tenant
// column need not be in the key; a row whose tenant changes under the same
// key moves. Without FULL, the mapping is refused at start, naming the key.
func TestTenantColumnOutsideTheKey(t *testing.T) {
	const schema = `CREATE TABLE docs (id int PRIMARY KEY, org text NOT NULL, body text)`
	m := mapping{Table: "public.docs", Template: "{{.body}}", Tenant: "org", KeySQL: "id::text", TextSQL: "coalesce(body, '')"}
	h := newHarness(t, schema, m)
	err := h.runUntilExit(time.Minute)
	if err == nil || !strings.Contains(err.Error(), "tables[0].tenant") || !strings.Contains(err.Error(), "REPLICA IDENTITY FULL") {
		t.Fatalf("start with a tenant column outside the key and no FULL identity: %v; want a refusal naming tables[0].tenant and the fix", err)
	}
	h.exec(`ALTER TABLE docs REPLICA IDENTITY FULL`)
	h.start()
	h.exec(`INSERT INTO docs SELECT g, 'team' || (g % 4), 'doc ' || g FROM generate_series(1, 40) g`)
	h.requireInSync("inserts")
	h.exec(`UPDATE docs SET org = 'team9' WHERE id % 3 = 0`)
	h.exec(`UPDATE docs SET org = 'team8', body = 'moved and edited' WHERE id % 5 = 0`)
	h.exec(`DELETE FROM docs WHERE id % 7 = 0`)
	h.requireInSync("rows moved between tenants under the same key, and deletes")
}
