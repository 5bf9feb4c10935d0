package admission

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoolBoundsConcurrency(t *testing.T) {
	p, err := New(2, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var running, peak atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			release, err := p.Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			n := running.Add(1)
			for {
				m := peak.Load()
				if n <= m || peak.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			running.Add(-1)
			release()
		})
	}
	wg.Wait()
	if got := peak.Load(); got != 2 {
		t.Fatalf("peak concurrency %d, want 2", got)
	}
	if s := p.Stats(); s.Admitted != 50 || s.Refused != 0 || s.Running != 0 || s.Waiting != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPoolQueueFullRefuses(t *testing.T) {
	p, _ := New(1, 1, 0)
	release, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// One waiter fills the queue.
	got := make(chan error, 1)
	go func() {
		r, err := p.Acquire(context.Background())
		if err == nil {
			r()
		}
		got <- err
	}()
	for p.Stats().Waiting != 1 {
		time.Sleep(time.Millisecond)
	}
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("third caller: %v, want ErrBusy", err)
	}
	release()
	if err := <-got; err != nil {
		t.Fatalf("queued caller: %v", err)
	}
	if s := p.Stats(); s.Refused != 1 || s.Admitted != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPoolWaitExpires(t *testing.T) {
	p, _ := New(1, 10, 20*time.Millisecond)
	release, _ := p.Acquire(context.Background())
	defer release()
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("got %v, want ErrBusy after the maximum wait", err)
	}
	if p.RetryAfter() != 20*time.Millisecond {
		t.Fatalf("RetryAfter %s", p.RetryAfter())
	}
	if p.Stats().Waiting != 0 {
		t.Fatal("an expired waiter is still counted")
	}
}

func TestPoolContextEnds(t *testing.T) {
	p, _ := New(1, 10, 0)
	release, _ := p.Acquire(context.Background())
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Acquire(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrBusy) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestPoolNilAdmitsAll(t *testing.T) {
	var p *Pool
	for range 3 {
		r, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		r()
	}
}

func TestNewRejectsBadSizes(t *testing.T) {
	if _, err := New(0, 1, 0); err == nil {
		t.Fatal("size 0 accepted")
	}
	if _, err := New(1, -1, 0); err == nil {
		t.Fatal("negative queue accepted")
	}
}

// TestPoolResize: a reload resizes the pool; steps admitted before finish
// under the old size, new callers get the new one.
func TestPoolResize(t *testing.T) {
	p, err := New(1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("second acquire of a pool of 1 without queue: %v", err)
	}
	if err := p.Resize(0, 0, 0); err == nil {
		t.Fatal("resize to 0 accepted")
	}
	if err := Check(2, -1, 0); err == nil {
		t.Fatal("Check accepted a negative queue")
	}
	if err := p.Resize(2, 0, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if p.RetryAfter() != 3*time.Second {
		t.Fatalf("retry after %s", p.RetryAfter())
	}
	var rels []func()
	for i := range 2 {
		r, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatalf("acquire %d after resize to 2: %v", i, err)
		}
		rels = append(rels, r)
	}
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("third acquire of the new pool of 2: %v", err)
	}
	rel() // into the old slots: must not free a new one nor block
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("an old release freed a new slot: %v", err)
	}
	for _, r := range rels {
		r()
	}
	if s := p.Stats(); s.Running != 0 {
		t.Fatalf("running %d after all released", s.Running)
	}
}
