// Package reindex decides when a configured collection must be rebuilt and
// what a rebuild must keep apart.
//
// Applications query the configured collection name. The connector serves
// it as a Weaviate alias pointing at one physical version (Name_v1,
// Name_v2, ...). Everything that shapes a version's objects (the templates,
// metadata columns and tenancy of the mappings into it, the chunking, the
// embedding provider, model and dimensions, Weaviate's vectorizer) is its
// Spec; the Spec's Fingerprint is recorded with the version in the state
// schema (<state_schema>.collection_versions).
//
// # Why a new version, and why both are written
//
// Objects rendered by two templates or embedded by two models must never be
// mixed in what a query sees: a nearVector query over vectors of two models
// ranks nonsense, and a half-reindexed collection answers with the old text
// for some rows and the new for others. A start whose configuration no
// longer matches the serving version's fingerprint therefore creates a
// filling version and backfills it from the tables (package snapshot's
// online backfill, at lower priority than live changes), while the stream
// writes every change to both versions, each rendered and embedded by its
// own spec. The serving version thus stays exact under its old shape the
// whole time, and the filling one becomes exact under the new shape once
// its backfill is done: the online backfill's argument (snapshot/doc.go)
// holds for it as for any mapping, because the stream delivers to it every
// change committed after its backfill's snapshot.
//
// # The switch
//
// When every backfill of the filling version is done, the alias moves to
// it in one Weaviate schema operation: a query sees the old version before
// and the new one after, never a mix and never an empty one. The state then
// records the new version as serving and the old as retired, the stream
// stops writing the old one, and it is deleted after reindex.retention.
// A deployment that predates aliases has a plain collection of the
// configured name: its first switch must delete that collection before the
// alias can take the name, and for that moment (measured in
// docs/reindex.md) the name does not resolve.
//
// # Crashes
//
// Every step is recorded before or after it is made so that a start finds
// where it stopped: a filling version without recorded backfills asks for
// them again; an alias that already points at the filling version finishes
// the switch in the state; a retired version past its retention is deleted
// (again). Decide is the whole rule, as a pure function.
package reindex
