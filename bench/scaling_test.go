package main

import (
	"math"
	"testing"
)

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	cases := []struct {
		name string
		q    float64
		h    buckets
		want float64
	}{
		{"empty", 0.99, buckets{0.01: 0, inf: 0}, 0},
		{"all in the first bucket", 0.5, buckets{0.01: 10, 0.02: 10, inf: 10}, 0.005},
		{"interpolated in its bucket", 0.99, buckets{0.01: 90, 0.02: 100, inf: 100}, 0.019},
		{"past the last bound", 0.99, buckets{0.01: 50, 0.02: 90, inf: 100}, 0.02},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := histogramQuantile(c.q, c.h); math.Abs(got-c.want) > 1e-9 {
				t.Fatalf("histogramQuantile(%v) = %v, want %v", c.q, got, c.want)
			}
		})
	}
}

func TestBucketsMinus(t *testing.T) {
	got := buckets{0.01: 30, 1: 50}.minus(buckets{0.01: 10, 1: 20})
	if got[0.01] != 20 || got[1] != 30 {
		t.Fatalf("minus = %v", got)
	}
}
