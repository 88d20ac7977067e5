package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestTeardownRemovesWhatTheConnectorCreated: teardown refuses while the
// connector streams; afterwards it leaves no slot, publication, state schema
// or (with --collections) collection, as the catalogs show; a publication
// an operator made is kept.
func TestTeardownRemovesWhatTheConnectorCreated(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	coll := h.maps[0].Collection
	c := h.start()
	seedArticles(h, 10)
	h.requireInSync("seed")

	out, code := h.cliExit("teardown", "--yes")
	if code == 0 || !strings.Contains(out, "is streamed") || h.replicationSlots() != 1 {
		t.Fatalf("teardown while run streams: exit %d, slots %d; want a refusal\n%s", code, h.replicationSlots(), out)
	}
	c.stop(t)
	out, code = h.cliExit("teardown", "--collections") // no answer on stdin
	if code == 0 || !strings.Contains(out, "nothing done") || h.replicationSlots() != 1 {
		t.Fatalf("teardown without yes: exit %d; want nothing done\n%s", code, out)
	}
	out, code = h.cliExit("teardown", "--collections", "--json") // the plan only
	var plan struct {
		Plan struct {
			Slot        string   `json:"slot"`
			Collections []string `json:"collections"`
			Aliases     []string `json:"aliases"`
		} `json:"plan"`
		Done bool `json:"done"`
	}
	if err := json.Unmarshal([]byte(out), &plan); code != 0 || err != nil || plan.Done || plan.Plan.Slot != "cdc_indexer" ||
		!slices.Equal(plan.Plan.Collections, []string{coll + "_v1"}) || !slices.Equal(plan.Plan.Aliases, []string{coll}) || h.replicationSlots() != 1 {
		t.Fatalf("teardown --json: exit %d, %v, %+v; want the plan (slot, the version behind the alias), nothing done\n%s", code, err, plan, out)
	}
	out, code = h.cliExit("teardown", "--collections", "--yes")
	if code != 0 {
		t.Fatalf("teardown --collections --yes: exit %d\n%s", code, out)
	}
	if h.aliasTarget(coll) != "" || h.hasCollection(coll+"_v1") {
		t.Error("the alias or its version is left")
	}
	if n := h.replicationSlots(); n != 0 {
		t.Errorf("%d replication slots left", n)
	}
	if h.publicationExists("cdc_indexer") {
		t.Error("the connector's publication is left")
	}
	if h.schemaExists("cdc_indexer") {
		t.Error("the state schema is left")
	}
	if h.hasCollection(coll) {
		t.Error("the collection is left")
	}

	// An operator's own publication stays; the rest goes again.
	h.exec(`CREATE PUBLICATION cdc_indexer FOR TABLE articles`)
	c = h.start()
	c.stop(t)
	out, code = h.cliExit("teardown", "--yes")
	if code != 0 || !strings.Contains(out, "keep publication cdc_indexer") {
		t.Fatalf("teardown with an operator's publication: exit %d\n%s", code, out)
	}
	if !h.publicationExists("cdc_indexer") || h.replicationSlots() != 0 || h.schemaExists("cdc_indexer") {
		t.Fatal("want the operator's publication kept and the slot and state schema gone")
	}
}

func (h *harness) publicationExists(name string) bool {
	return h.catalogHas(`SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, name)
}

func (h *harness) schemaExists(name string) bool {
	return h.catalogHas(`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, name)
}

// catalogHas runs an EXISTS query of the catalogs for name.
func (h *harness) catalogHas(query, name string) bool {
	h.t.Helper()
	var ok bool
	if err := h.db.QueryRow(context.Background(), query, name).Scan(&ok); err != nil {
		h.t.Fatal(err)
	}
	return ok
}
