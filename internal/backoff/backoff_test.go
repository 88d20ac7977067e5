package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelayDoublesToTheCapWithJitter(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.5}
	cases := []struct {
		n        int
		min, max time.Duration
	}{
		{1, 100 * time.Millisecond, 150 * time.Millisecond},
		{2, 200 * time.Millisecond, 300 * time.Millisecond},
		{4, 800 * time.Millisecond, 1200 * time.Millisecond},
		{5, time.Second, 1500 * time.Millisecond},
		{60, time.Second, 1500 * time.Millisecond},
	}
	for _, c := range cases {
		for range 50 {
			if d := p.Delay(c.n); d < c.min || d > c.max {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", c.n, d, c.min, c.max)
			}
		}
	}
	if d := (Policy{Initial: time.Second, Max: time.Second}).Delay(3); d != time.Second {
		t.Fatalf("without jitter Delay = %s, want exactly the cap", d)
	}
}

func TestSleepEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a done context = %v", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
