package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBudgetAcquireWaitsForRelease(t *testing.T) {
	b := NewBudget(100)
	if got, err := b.Acquire(context.Background(), 60); err != nil || got != 60 {
		t.Fatalf("Acquire(60) = %d, %v", got, err)
	}
	if _, ok := b.TryAcquire(50); ok {
		t.Fatal("TryAcquire(50) succeeded with 40 of 100 free")
	}
	got := make(chan int64)
	go func() {
		n, _ := b.Acquire(context.Background(), 50)
		got <- n
	}()
	select {
	case n := <-got:
		t.Fatalf("Acquire(50) returned %d before anything was released", n)
	case <-time.After(50 * time.Millisecond):
	}
	b.Release(60)
	if n := <-got; n != 50 {
		t.Fatalf("Acquire(50) took %d", n)
	}
	if b.Held() != 50 {
		t.Fatalf("held %d, want 50", b.Held())
	}
}

func TestBudgetRowLargerThanBudgetGoesThroughAlone(t *testing.T) {
	b := NewBudget(100)
	n, err := b.Acquire(context.Background(), 1_000)
	if err != nil || n != 100 {
		t.Fatalf("Acquire(1000) = %d, %v; want the whole budget", n, err)
	}
	if _, ok := b.TryAcquire(1); ok {
		t.Fatal("anything else fits beside a row that took the whole budget")
	}
	b.Release(n)
	if b.Held() != 0 {
		t.Fatalf("held %d after release", b.Held())
	}
}

func TestBudgetChargeOverdrawsAndBlocksNewWork(t *testing.T) {
	b := NewBudget(100)
	n, _ := b.Acquire(context.Background(), 80)
	if c := b.Charge(50); c != 50 || b.Held() != 130 {
		t.Fatalf("Charge(50) = %d, held %d; want 50, 130", c, b.Held())
	}
	b.Release(n)
	if _, ok := b.TryAcquire(60); ok {
		t.Fatal("new work fit while the overdraft was unpaid (50 held + 60 > 100)")
	}
	b.Release(50)
	if _, ok := b.TryAcquire(60); !ok {
		t.Fatal("TryAcquire(60) failed on an empty budget")
	}
}

func TestBudgetAcquireEndsWithContext(t *testing.T) {
	b := NewBudget(10)
	b.Acquire(context.Background(), 10)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.Acquire(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire on a spent budget = %v, want the context's error", err)
	}
}

func TestNilBudgetIsUnbounded(t *testing.T) {
	var b *Budget
	if NewBudget(0) != nil {
		t.Fatal("NewBudget(0) is not the unbounded nil budget")
	}
	if _, err := b.Acquire(context.Background(), 1<<40); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.TryAcquire(1 << 40); !ok {
		t.Fatal("TryAcquire failed on an unbounded budget")
	}
	b.Release(5)
	if b.Held() != 0 || b.Total() != 0 {
		t.Fatal("an unbounded budget holds nothing")
	}
}
