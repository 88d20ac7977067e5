package e2e

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/cdc-indexer/cdc-indexer/internal/indexer"
	"github.com/cdc-indexer/cdc-indexer/internal/preflight"
)

// TestLeastPrivilegeRole (docs/deployment.md, "A role with least privilege"): a role that
// is neither a superuser nor the tables' owner, with REPLICATION and only
// the documented grants, passes `check` and runs `snapshot` and `run`; while
// a grant is missing, `check` fails and prints that grant as the fix.
func TestLeastPrivilegeRole(t *testing.T) {
	h := newHarness(t, articlesSchema, articles())
	seedArticles(h, 50)
	h.exec(`CREATE ROLE cdc_least LOGIN REPLICATION`)
	u, err := url.Parse(h.dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User("cdc_least")
	h.setConfig("postgres.dsn", u.String())
	ctx := context.Background()

	grants := []struct{ check, fix, sql string }{
		{"tables[0] public.articles exists", "GRANT SELECT ON public.articles TO cdc_least;",
			`GRANT SELECT ON articles TO cdc_least`},
		{"postgres state schema", "GRANT CREATE ON DATABASE",
			`DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO cdc_least', current_database()); END $$`},
		{"publication cdc_indexer", "CREATE PUBLICATION cdc_indexer FOR TABLE public.articles WITH (publish_via_partition_root = true);",
			`CREATE PUBLICATION cdc_indexer FOR TABLE articles WITH (publish_via_partition_root = true)`},
	}
	for i, g := range grants {
		fixes := map[string]string{}
		report := preflight.Run(ctx, h.cfg)
		for _, r := range report {
			if r.Status == preflight.Fail {
				fixes[r.Check] = r.Fix
			}
		}
		for _, missing := range grants[i:] {
			if fix, ok := fixes[missing.check]; !ok || !strings.Contains(fix, missing.fix) {
				t.Errorf("without %q, check %q: fix %q, want it to name %q", missing.sql, missing.check, fix, missing.fix)
			}
		}
		if len(fixes) != len(grants)-i {
			t.Errorf("with %d of %d grants, failing checks %v; want only the missing grants'", i, len(grants), fixes)
		}
		h.exec(g.sql)
	}
	if report := preflight.Run(ctx, h.cfg); !report.OK() {
		var b strings.Builder
		report.Print(&b)
		t.Fatalf("check with every documented grant:\n%s", b.String())
	}

	h.runSnapshot(indexer.SnapshotOptions{})
	h.requireEqual("snapshot as the least-privilege role")
	h.start()
	h.exec(`UPDATE articles SET title = title || ' edited' WHERE id % 3 = 0`)
	h.exec(`DELETE FROM articles WHERE id % 5 = 0`)
	h.exec(`INSERT INTO articles VALUES (900, 'new', 'row', 'ann', 1, NULL)`)
	h.requireInSync("streaming as the least-privilege role")
}
