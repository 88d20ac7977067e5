package sink

import (
	"testing"

	"github.com/google/uuid"
)

func TestObjectIDStableAndExact(t *testing.T) {
	a := ObjectID("Article", "public.articles", "1", 0)
	if a != ObjectID("Article", "public.articles", "1", 0) {
		t.Fatal("ObjectID is not stable")
	}
	// Pinned: changing it would orphan every object ever written.
	if want := "d1e6ab29-f937-52b2-87c3-82d36a44e465"; string(a) != want {
		t.Fatalf("ObjectID = %s, want %s", a, want)
	}
	want := uuid.NewSHA1(Namespace, []byte("Article/public.articles/1/0"))
	if string(a) != want.String() {
		t.Fatalf("ObjectID = %s, want UUIDv5 %s", a, want)
	}
	if uuid.MustParse(string(a)).Version() != 5 {
		t.Fatalf("ObjectID %s is not version 5", a)
	}
	distinct := map[string]bool{}
	for _, id := range []string{
		string(a),
		string(ObjectID("Article", "public.articles", "11", 0)),
		string(ObjectID("Article", "public.articles", "1", 1)),
		string(ObjectID("Article", "public.articles", `["a","1"]`, 0)),
		string(ObjectID("Article", "public.other", "1", 0)),
		string(ObjectID("Other", "public.articles", "1", 0)),
	} {
		if distinct[id] {
			t.Fatalf("ObjectID collision: %s", id)
		}
		distinct[id] = true
	}
}

func TestObjectIDReusesGenerator(t *testing.T) {
	var g idGen
	for i := 0; i < 5; i++ {
		if got, want := g.id("C", "s.t", "k", i), ObjectID("C", "s.t", "k", i); got != want {
			t.Fatalf("chunk %d: %s != %s", i, got, want)
		}
	}
	allocs := testing.AllocsPerRun(100, func() { g.id("C", "public.articles", "12345", 3) })
	if allocs > 1 {
		t.Fatalf("idGen.id allocates %.0f times per call, want <= 1", allocs)
	}
}
