package teardown

import (
	"strings"
	"testing"
)

func TestPlanPrint(t *testing.T) {
	var b strings.Builder
	Plan{Slot: "s", Publication: "p", StateSchema: "st", Collections: []string{"A"}, Kept: []string{"x: why"}}.Print(&b)
	for _, want := range []string{"drop replication slot s", "drop publication p", "drop schema st", "delete Weaviate collection A", "keep x: why"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	p := Plan{Kept: []string{"publication p: not ours"}}
	if !p.Empty() {
		t.Fatal("a plan that only keeps things is not empty")
	}
	p.Print(&b)
	if !strings.Contains(b.String(), "nothing to remove") {
		t.Fatalf("empty plan printed %q", b.String())
	}
}
