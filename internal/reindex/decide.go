package reindex

// Phases of a version, as <state_schema>.collection_versions records them.
const (
	PhaseServing = "serving" // the alias points at it
	PhaseFilling = "filling" // being backfilled; the stream writes to it too
	PhaseRetired = "retired" // replaced; deleted after reindex.retention
)

// Version is one physical version of a configured collection.
type Version struct {
	Collection  string // the configured name, served as an alias
	Number      int
	Physical    string // the Weaviate collection
	Phase       string
	Fingerprint string
	Spec        Spec
	// Backfills are the fill's backfill requests; nil until they were
	// asked for.
	Backfills []int64
}

// Situation is what a start knows about one configured collection.
type Situation struct {
	Collection  string
	Serving     *Version // nil: none recorded yet
	Filling     *Version // nil: no reindex under way
	Fingerprint string   // of the configuration now
	Requested   bool     // `cdc-indexer reindex` asked for a rebuild
	AliasTarget string   // where the alias of Collection points; "" when there is none
	PlainExists bool     // a collection named Collection itself exists (it predates aliases)
}

// Step is the next thing to do for a collection; a start applies steps,
// re-reading the situation after each, until StepNone.
type Step int

const (
	// StepNone: the collection is as it should be.
	StepNone Step = iota
	// StepAdopt records a serving version for a collection that has none:
	// the plain collection of the configured name, the alias's target, or
	// (nothing exists) a new version 1 created with the alias.
	StepAdopt
	// StepFinishSwitch records a switch Weaviate already made: the alias
	// points at the filling version (a stop came between the two).
	StepFinishSwitch
	// StepAliasToFilling completes a first switch of a collection that
	// predates aliases, stopped after its plain collection was deleted
	// and before the alias was created.
	StepAliasToFilling
	// StepPointAlias makes the alias point at the serving version
	// (created, or moved back after someone moved it).
	StepPointAlias
	// StepDropFilling abandons a fill made for another configuration (the
	// configuration changed again, or back, before it finished).
	StepDropFilling
	// StepStartFilling creates a new version and asks for its backfills.
	StepStartFilling
	// StepRequestBackfills asks (again) for the fill's backfills, which a
	// stop prevented from being recorded.
	StepRequestBackfills
	// StepConsumeRequest forgets a reindex request that the fill under way
	// already answers (it reads every row after the request was made).
	StepConsumeRequest
)

var stepNames = [...]string{"none", "adopt", "finish switch", "alias to filling", "point alias",
	"drop filling", "start filling", "request backfills", "consume request"}

func (s Step) String() string {
	if int(s) < len(stepNames) {
		return stepNames[s]
	}
	return "unknown"
}

// Next is the rule a start follows for one collection.
func Next(s Situation) Step {
	serving, filling := s.Serving, s.Filling
	if serving == nil {
		return StepAdopt
	}
	if filling != nil && s.AliasTarget != "" && s.AliasTarget == filling.Physical {
		return StepFinishSwitch
	}
	if filling != nil && serving.Physical == s.Collection && !s.PlainExists && s.AliasTarget == "" &&
		filling.Backfills != nil {
		return StepAliasToFilling
	}
	if serving.Physical != s.Collection && s.AliasTarget != serving.Physical {
		return StepPointAlias
	}
	if filling != nil && filling.Fingerprint != s.Fingerprint {
		return StepDropFilling
	}
	if filling == nil && (serving.Fingerprint != s.Fingerprint || s.Requested) {
		return StepStartFilling
	}
	if filling != nil && filling.Backfills == nil {
		return StepRequestBackfills
	}
	if filling != nil && s.Requested {
		return StepConsumeRequest
	}
	return StepNone
}

// Fill is how far a filling version's backfills are.
type Fill int

const (
	FillRunning Fill = iota // some backfill is pending or running
	FillFailed              // none runs, but one failed: ask again
	FillDone                // every backfill is done: switch
)

// FillState sums up the statuses of a fill's backfill requests (by id;
// a request missing from statuses counts as failed: it was deleted).
func FillState(backfills []int64, statuses map[int64]string) Fill {
	if backfills == nil {
		return FillRunning
	}
	failed := false
	for _, id := range backfills {
		switch statuses[id] {
		case "pending", "running":
			return FillRunning
		case "done":
		default:
			failed = true
		}
	}
	if failed {
		return FillFailed
	}
	return FillDone
}
