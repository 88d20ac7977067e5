package verify

import "hash/fnv"

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
	h := fnv.New64a()
	h.Write([]byte(key))
	at := float64(mix(h.Sum64())) / (1 << 64) // in [0, 1)
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

// mix is splitmix64's finalizer: FNV-1a leaves the high bits of short keys
// ("1", "2", ...) close together, which would put them in one slice.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
