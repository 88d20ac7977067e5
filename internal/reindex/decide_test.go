package reindex

import "testing"

func TestNext(t *testing.T) {
	serving := &Version{Collection: "Docs", Number: 1, Physical: "Docs_v1", Phase: PhaseServing, Fingerprint: "a"}
	legacy := &Version{Collection: "Docs", Number: 0, Physical: "Docs", Phase: PhaseServing, Fingerprint: "a"}
	fillingB := &Version{Collection: "Docs", Number: 2, Physical: "Docs_v2", Phase: PhaseFilling, Fingerprint: "b", Backfills: []int64{7}}
	fillingA := &Version{Collection: "Docs", Number: 2, Physical: "Docs_v2", Phase: PhaseFilling, Fingerprint: "a", Backfills: []int64{7}}
	unrequested := &Version{Collection: "Docs", Number: 2, Physical: "Docs_v2", Phase: PhaseFilling, Fingerprint: "b"}
	tests := []struct {
		name string
		s    Situation
		want Step
	}{
		{"nothing recorded: adopt", Situation{Collection: "Docs", Fingerprint: "a"}, StepAdopt},
		{"nothing recorded, plain collection: adopt", Situation{Collection: "Docs", Fingerprint: "a", PlainExists: true}, StepAdopt},
		{"in step", Situation{Collection: "Docs", Serving: serving, Fingerprint: "a", AliasTarget: "Docs_v1"}, StepNone},
		{"legacy plain collection in step", Situation{Collection: "Docs", Serving: legacy, Fingerprint: "a", PlainExists: true}, StepNone},
		{"alias missing", Situation{Collection: "Docs", Serving: serving, Fingerprint: "a"}, StepPointAlias},
		{"alias moved elsewhere", Situation{Collection: "Docs", Serving: serving, Fingerprint: "a", AliasTarget: "Other"}, StepPointAlias},
		{"configuration changed: fill", Situation{Collection: "Docs", Serving: serving, Fingerprint: "b", AliasTarget: "Docs_v1"}, StepStartFilling},
		{"legacy configuration changed: fill", Situation{Collection: "Docs", Serving: legacy, Fingerprint: "b", PlainExists: true}, StepStartFilling},
		{"reindex asked: fill", Situation{Collection: "Docs", Serving: serving, Fingerprint: "a", AliasTarget: "Docs_v1", Requested: true}, StepStartFilling},
		{"filling for this configuration", Situation{Collection: "Docs", Serving: serving, Filling: fillingB, Fingerprint: "b", AliasTarget: "Docs_v1"}, StepNone},
		{"forced fill survives a restart", Situation{Collection: "Docs", Serving: serving, Filling: fillingA, Fingerprint: "a", AliasTarget: "Docs_v1"}, StepNone},
		{"configuration changed back: drop the fill", Situation{Collection: "Docs", Serving: serving, Filling: fillingB, Fingerprint: "a", AliasTarget: "Docs_v1"}, StepDropFilling},
		{"configuration changed again: drop the fill", Situation{Collection: "Docs", Serving: serving, Filling: fillingB, Fingerprint: "c", AliasTarget: "Docs_v1"}, StepDropFilling},
		{"backfills never recorded", Situation{Collection: "Docs", Serving: serving, Filling: unrequested, Fingerprint: "b", AliasTarget: "Docs_v1"}, StepRequestBackfills},
		{"alias moved, state not: finish", Situation{Collection: "Docs", Serving: serving, Filling: fillingB, Fingerprint: "b", AliasTarget: "Docs_v2"}, StepFinishSwitch},
		{"alias moved, then configuration changed: finish first", Situation{Collection: "Docs", Serving: serving, Filling: fillingB, Fingerprint: "c", AliasTarget: "Docs_v2"}, StepFinishSwitch},
		{"legacy switch cut after the delete", Situation{Collection: "Docs", Serving: legacy, Filling: fillingB, Fingerprint: "b"}, StepAliasToFilling},
		{"legacy collection deleted by hand before any fill", Situation{Collection: "Docs", Serving: legacy, Fingerprint: "a"}, StepNone},
		{"request while filling: consumed", Situation{Collection: "Docs", Serving: serving, Filling: fillingB, Fingerprint: "b", AliasTarget: "Docs_v1", Requested: true}, StepConsumeRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Next(tt.s); got != tt.want {
				t.Errorf("Next = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestFillState(t *testing.T) {
	tests := []struct {
		name      string
		backfills []int64
		statuses  map[int64]string
		want      Fill
	}{
		{"not requested yet", nil, nil, FillRunning},
		{"pending", []int64{1, 2}, map[int64]string{1: "done", 2: "pending"}, FillRunning},
		{"running beats failed", []int64{1, 2}, map[int64]string{1: "failed", 2: "running"}, FillRunning},
		{"failed", []int64{1, 2}, map[int64]string{1: "failed", 2: "done"}, FillFailed},
		{"request gone", []int64{1, 2}, map[int64]string{2: "done"}, FillFailed},
		{"done", []int64{1, 2}, map[int64]string{1: "done", 2: "done"}, FillDone},
		{"no mappings", []int64{}, nil, FillDone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FillState(tt.backfills, tt.statuses); got != tt.want {
				t.Errorf("FillState = %d, want %d", got, tt.want)
			}
		})
	}
}
