package verify

import (
	"crypto/sha256"
	"encoding/binary"
)

// Sample selects a slice of a mapping's key space: the keys whose hash,
// read as a fraction of the whole hash range, falls in [From, From+Fraction)
// (wrapping past 1). Successive rounds that advance From by Fraction take
// successive, disjoint slices and cover every key in 1/Fraction rounds. A
// key's place does not depend on the round, so a key is compared once per
// cycle however the table changes.
type Sample struct {
	From, Fraction float64
}

// All is the sample of every key.
var All = Sample{Fraction: 1}

// Includes reports whether key (a source_key) is in the sample.
func (s Sample) Includes(key string) bool {
	if s.Fraction >= 1 || s.Fraction <= 0 {
		return true
	}
	// A hash that spreads short, similar keys ("1", "2", ...) evenly:
	// FNV-1a's high bits keep them together, one slice would hold most.
	sum := sha256.Sum256([]byte(key))
	at := float64(binary.BigEndian.Uint64(sum[:8])) / (1 << 64) // in [0, 1)
	off := at - s.From
	if off < 0 {
		off++
	}
	return off < s.Fraction
}

// Next is the sample of the following round.
func (s Sample) Next() Sample {
	from := s.From + s.Fraction
	if from >= 1 {
		from--
	}
	return Sample{From: from, Fraction: s.Fraction}
}
