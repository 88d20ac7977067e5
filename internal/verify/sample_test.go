package verify

import (
	"fmt"
	"math"
	"testing"
)

func TestSampleCoversEveryKeyOncePerCycle(t *testing.T) {
	keys := make([]string, 20_000)
	for i := range keys {
		keys[i] = fmt.Sprintf(`["%d"]`, i)
	}
	for _, frac := range []float64{0.5, 0.25, 0.1, 1.0 / 3} {
		t.Run(fmt.Sprint(frac), func(t *testing.T) {
			rounds := int(math.Round(1 / frac))
			seen := make([]int, len(keys))
			s := Sample{Fraction: frac}
			for r := 0; r < rounds; r++ {
				n := 0
				for i, k := range keys {
					if s.Includes(k) {
						seen[i]++
						n++
					}
				}
				// Each round takes about its fraction of the keys.
				if want := frac * float64(len(keys)); math.Abs(float64(n)-want) > 0.1*want {
					t.Errorf("round %d: %d keys, want about %.0f", r, n, want)
				}
				s = s.Next()
			}
			for i, c := range seen {
				if c != 1 {
					t.Fatalf("key %s sampled %d times in one cycle of %d rounds, want once", keys[i], c, rounds)
				}
			}
		})
	}
}

// Short, similar keys (a serial primary key) spread over the slices too.
func TestSampleSpreadsSerialKeys(t *testing.T) {
	s := Sample{Fraction: 0.25}
	for r := 0; r < 4; r++ {
		n := 0
		for i := 1; i <= 400; i++ {
			if s.Includes(fmt.Sprint(i)) {
				n++
			}
		}
		if n < 60 || n > 140 {
			t.Errorf("slice %d of 4 holds %d of keys 1..400", r, n)
		}
		s = s.Next()
	}
}

func TestSampleAllIncludesEveryKey(t *testing.T) {
	for _, s := range []Sample{All, {}, {From: 0.7, Fraction: 1}} {
		if !s.Includes("x") || !s.Includes("") {
			t.Errorf("%+v does not include every key", s)
		}
	}
}
