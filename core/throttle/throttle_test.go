package throttle

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct{ t atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.t.Store(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.t.Add(int64(d)) }

func TestLimit(t *testing.T) {
	c := newClock()
	l := New(3, time.Minute, c.Now)
	for i := range 3 {
		if !l.Allow("1.2.3.4") {
			t.Fatalf("refused after %d failures", i)
		}
		l.Fail("1.2.3.4")
	}
	if l.Allow("1.2.3.4") {
		t.Fatal("allowed after 3 failures")
	}
	if !l.Allow("5.6.7.8") {
		t.Fatal("another key is refused")
	}
	// More failures while blocked do not extend past the newest limit ones.
	l.Fail("1.2.3.4")
	if l.Allow("1.2.3.4") {
		t.Fatal("allowed after 4 failures")
	}
}

// TestSlidingWindow: failures leave the window one by one, each window
// after it happened.
func TestSlidingWindow(t *testing.T) {
	c := newClock()
	l := New(3, time.Minute, c.Now)
	l.Fail("k") // t=0
	c.Advance(20 * time.Second)
	l.Fail("k") // t=20s
	c.Advance(20 * time.Second)
	l.Fail("k") // t=40s
	if l.Allow("k") {
		t.Fatal("allowed with 3 failures in the window")
	}
	c.Advance(20*time.Second - time.Nanosecond) // t=60s-1ns: the first still counts
	if l.Allow("k") {
		t.Fatal("allowed before the first failure left the window")
	}
	c.Advance(time.Nanosecond) // t=60s: it left
	if !l.Allow("k") {
		t.Fatal("refused after the first failure left the window")
	}
	l.Fail("k") // t=60s: failures at 20, 40, 60
	if l.Allow("k") {
		t.Fatal("allowed with 3 failures in the window again")
	}
	c.Advance(20 * time.Second) // t=80s: 40, 60
	if !l.Allow("k") {
		t.Fatal("refused with 2 failures in the window")
	}
	c.Advance(time.Minute) // all gone
	if !l.Allow("k") {
		t.Fatal("refused with none")
	}
	if n := l.Len(); n != 0 {
		t.Errorf("expired key still tracked: Len = %d", n)
	}
}

func TestReset(t *testing.T) {
	c := newClock()
	l := New(2, time.Hour, c.Now)
	l.Fail("juliet@example.com")
	l.Fail("juliet@example.com")
	if l.Allow("juliet@example.com") {
		t.Fatal("allowed after 2 failures")
	}
	l.Reset("juliet@example.com")
	if !l.Allow("juliet@example.com") {
		t.Fatal("refused after Reset")
	}
	l.Fail("juliet@example.com")
	if !l.Allow("juliet@example.com") {
		t.Fatal("Reset did not forget the old failures")
	}
	l.Reset("nobody") // no entry: no effect, no panic
}

func TestDisabled(t *testing.T) {
	for _, tt := range []struct {
		limit  int
		window time.Duration
	}{{0, time.Minute}, {-1, time.Minute}, {3, 0}, {3, -time.Second}} {
		l := New(tt.limit, tt.window, nil)
		for range 5 {
			l.Fail("k")
		}
		if !l.Allow("k") || l.Len() != 0 {
			t.Errorf("New(%d, %v): throttles (Len %d)", tt.limit, tt.window, l.Len())
		}
	}
}

func TestRealClock(t *testing.T) {
	l := New(1, time.Hour, nil)
	l.Fail("k")
	if l.Allow("k") {
		t.Fatal("allowed after a failure with the real clock")
	}
}

// TestSweep: expired keys go away as other keys fail, without anyone asking
// about them again.
func TestSweep(t *testing.T) {
	c := newClock()
	l := New(5, time.Minute, c.Now)
	for i := range 1000 {
		l.Fail(fmt.Sprint("old", i))
	}
	c.Advance(30 * time.Second)
	l.Fail("middle")
	c.Advance(31 * time.Second)
	l.Fail("new")
	if n := l.Len(); n != 2 {
		t.Errorf("Len = %d after the old keys expired, want 2 (middle, new)", n)
	}
	c.Advance(30 * time.Second)
	l.Fail("new")
	if n := l.Len(); n != 1 {
		t.Errorf("Len = %d, want 1", n)
	}
}

// TestMaxKeys: a full table evicts the key that failed least recently.
func TestMaxKeys(t *testing.T) {
	c := newClock()
	l := New(2, time.Hour, c.Now)
	l.maxKeys = 3
	for _, k := range []string{"a", "b", "c"} {
		l.Fail(k)
		l.Fail(k)
		c.Advance(time.Second)
	}
	l.Fail("a") // a is now the most recent
	l.Fail("d") // evicts b
	if n := l.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	if !l.Allow("b") {
		t.Error("b was not evicted")
	}
	if l.Allow("a") || l.Allow("c") {
		t.Error("a or c lost its failures")
	}
	for i := range 100 {
		l.Fail(fmt.Sprint("flood", i))
	}
	if n := l.Len(); n != 3 {
		t.Errorf("Len = %d after a flood, want 3", n)
	}
}

func TestConcurrent(t *testing.T) {
	c := newClock()
	l := New(10, time.Minute, c.Now)
	l.maxKeys = 50
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := fmt.Sprint(g, "/", i%100)
				if l.Allow(k) {
					l.Fail(k)
				}
				if i%50 == 0 {
					l.Reset(k)
					c.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	if n := l.Len(); n > 50 {
		t.Errorf("Len = %d above the cap", n)
	}
	// Per key, failures never exceed what Allow let through.
	l2 := New(5, time.Hour, c.Now)
	var allowed atomic.Int64
	var wg2 sync.WaitGroup
	for range 8 {
		wg2.Go(func() {
			for range 100 {
				if l2.Allow("shared") {
					allowed.Add(1)
					l2.Fail("shared")
				}
			}
		})
	}
	wg2.Wait()
	// Allow and Fail are separate calls, so racing goroutines may each pass
	// Allow before any Fail lands, but never more than one each past 5.
	if a := allowed.Load(); a < 5 || a > 5+8 {
		t.Errorf("%d attempts allowed, want 5..13", a)
	}
	if l2.Allow("shared") {
		t.Error("shared key not blocked")
	}
}

func BenchmarkFailAllow(b *testing.B) {
	l := New(5, time.Minute, nil)
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = fmt.Sprint("10.0.", i>>8, ".", i&255)
	}
	i := 0
	for b.Loop() {
		k := keys[i&(len(keys)-1)]
		l.Allow(k)
		l.Fail(k)
		i++
	}
}

func TestRetryAfterAndCount(t *testing.T) {
	c := newClock()
	l := New(2, time.Minute, c.Now)
	if d := l.RetryAfter("k"); d != 0 {
		t.Fatalf("RetryAfter of an unknown key = %v, want 0", d)
	}
	l.Fail("k") // t=0
	c.Advance(10 * time.Second)
	if d, n := l.RetryAfter("k"), l.Count("k"); d != 0 || n != 1 {
		t.Fatalf("after one failure: RetryAfter %v, Count %d; want 0, 1", d, n)
	}
	l.Fail("k") // t=10s
	c.Advance(5 * time.Second)
	if d := l.RetryAfter("k"); d != 45*time.Second {
		t.Fatalf("RetryAfter = %v, want 45s (the first failure leaves the window at 60s)", d)
	}
	c.Advance(45 * time.Second)
	if d, n := l.RetryAfter("k"), l.Count("k"); d != 0 || n != 1 {
		t.Fatalf("at 60s: RetryAfter %v, Count %d; want 0, 1", d, n)
	}
}

func TestGuardCountsPerAddressAndAccount(t *testing.T) {
	c := newClock()
	g := NewGuard(GuardConfig{PerAddress: 10, PerAccount: 3, Window: time.Minute, SlowdownMax: 2 * time.Second, Now: c.Now})
	const alice = "alice@example.org"
	for range 3 {
		g.Failed("10.0.0.66", alice)
	}
	if _, ok := g.CheckAccount("10.0.0.66", alice); ok {
		t.Fatal("the guessing address may still log in to the account")
	}
	if _, ok := g.CheckAccount("10.0.0.1", alice); !ok {
		t.Fatal("the owner's address is locked out by a stranger's failures")
	}
	if _, ok := g.CheckAddress("10.0.0.66"); !ok {
		t.Fatal("3 failures locked out a whole address with PerAddress 10")
	}
	if _, ok := g.CheckAccount("10.0.0.66", "bob@example.org"); !ok {
		t.Fatal("failures for alice locked out bob")
	}
	// Another account's failures from the same address add up per address.
	for range 7 {
		g.Failed("10.0.0.66", "")
	}
	if d, ok := g.CheckAddress("10.0.0.66"); ok || d <= 0 || d > time.Minute {
		t.Fatalf("CheckAddress after 10 failures = %v, %v; want refused with a retry within the window", d, ok)
	}
	c.Advance(time.Minute)
	if _, ok := g.CheckAddress("10.0.0.66"); !ok {
		t.Fatal("still refused after the window")
	}
}

func TestGuardSucceededResetsOnlyTheAccountAddress(t *testing.T) {
	c := newClock()
	g := NewGuard(GuardConfig{PerAddress: 3, PerAccount: 2, Window: time.Minute, Now: c.Now})
	g.Failed("10.0.0.1", "a@x")
	g.Failed("10.0.0.1", "a@x")
	g.Succeeded("10.0.0.1", "a@x")
	if _, ok := g.CheckAccount("10.0.0.1", "a@x"); !ok {
		t.Fatal("a success did not clear the address's failures for the account")
	}
	g.Failed("10.0.0.1", "b@x")
	if _, ok := g.CheckAddress("10.0.0.1"); ok {
		t.Fatal("a success on one account reset the address's count")
	}
}

func TestGuardSlowdown(t *testing.T) {
	c := newClock()
	g := NewGuard(GuardConfig{PerAddress: 1000, PerAccount: 3, Window: time.Minute, SlowdownMax: 2 * time.Second, Now: c.Now})
	want := []time.Duration{0, 0, 0, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2 * time.Second, 2 * time.Second, 2 * time.Second}
	for i, w := range want {
		if d := g.Slowdown("a@x"); d != w {
			t.Fatalf("after %d failures from different addresses: Slowdown %v, want %v", i, d, w)
		}
		g.Failed(fmt.Sprintf("10.0.%d.1", i), "a@x")
	}
	c.Advance(time.Minute)
	if d := g.Slowdown("a@x"); d != 0 {
		t.Fatalf("Slowdown after the window = %v, want 0", d)
	}
	var nilGuard *Guard
	if _, ok := nilGuard.CheckAddress("x"); !ok || nilGuard.Slowdown("a") != 0 {
		t.Fatal("a nil Guard throttles")
	}
	nilGuard.Failed("x", "a")
}

func TestLimiterTake(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(3, 10*time.Second, func() time.Time { return now })
	for i := range 3 {
		if d := l.Take("a"); d != 0 {
			t.Fatalf("take %d refused: %s", i, d)
		}
		now = now.Add(time.Second)
	}
	// Three events at 0, 1, 2 s; now is 3 s: the first leaves at 10 s.
	if d := l.Take("a"); d != 7*time.Second {
		t.Fatalf("fourth take: retry %s, want 7s", d)
	}
	if d := l.Take("b"); d != 0 {
		t.Fatalf("another key refused: %s", d)
	}
	// Refused takes are not recorded: at 10 s one slot is free again.
	now = now.Add(7 * time.Second)
	if d := l.Take("a"); d != 0 {
		t.Fatalf("take after the window refused: %s", d)
	}
	if d := l.Take("a"); d != time.Second {
		t.Fatalf("retry %s, want 1s", d)
	}
	if d := New(0, time.Second, nil).Take("x"); d != 0 {
		t.Fatal("a disabled limiter refused")
	}
}

// TestSetLimit: a reload changes a limiter's limit and window in place:
// events already counted count under the new limit, a disabled limiter can
// be turned on and off again, and changing it while others use it is safe.
func TestSetLimit(t *testing.T) {
	c := newClock()
	l := New(5, time.Minute, c.Now)
	for range 3 {
		if d := l.Take("a"); d != 0 {
			t.Fatalf("refused under 5: %s", d)
		}
	}
	l.SetLimit(2, time.Minute)
	if d := l.Take("a"); d == 0 {
		t.Fatal("3 events counted, limit lowered to 2: still taken")
	}
	l.SetLimit(10, time.Minute)
	if d := l.Take("a"); d != 0 {
		t.Fatalf("limit raised to 10: refused (%s)", d)
	}
	// Failures: more kept than the new limit are trimmed as they come.
	for range 5 {
		l.Fail("f")
	}
	l.SetLimit(2, time.Minute)
	if l.Allow("f") {
		t.Fatal("5 failures under a limit of 2: allowed")
	}
	l.Fail("f")
	if n := l.Count("f"); n != 2 {
		t.Fatalf("count %d after a failure under limit 2, want the newest 2", n)
	}
	l.SetLimit(0, time.Minute)
	if !l.Allow("f") || l.Take("a") != 0 {
		t.Fatal("a limiter set to 0 still refuses")
	}
	if n, w := l.Limit(); n != 0 || w != time.Minute {
		t.Fatalf("Limit() = %d, %s", n, w)
	}
	// A shorter window lets old events go at once.
	l.SetLimit(2, time.Minute)
	c.Advance(30 * time.Second)
	l.SetLimit(2, 10*time.Second)
	if !l.Allow("f") {
		t.Fatal("failures 30s old count in a 10s window")
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				l.Take(fmt.Sprint(j % 7))
				l.SetLimit(1+(i+j)%5, time.Second)
			}
		})
	}
	wg.Wait()
	var nilL *Limiter
	nilL.SetLimit(3, time.Second) // no panic
}

func TestGuardReconfigure(t *testing.T) {
	c := newClock()
	g := NewGuard(GuardConfig{PerAddress: 10, PerAccount: 5, Window: time.Minute, Now: c.Now})
	for range 3 {
		g.Failed("1.1.1.1", "a@x")
	}
	if _, ok := g.CheckAccount("1.1.1.1", "a@x"); !ok {
		t.Fatal("refused after 3 of 5")
	}
	g.Reconfigure(GuardConfig{PerAddress: 10, PerAccount: 3, Window: time.Minute, SlowdownMax: time.Second})
	if _, ok := g.CheckAccount("1.1.1.1", "a@x"); ok {
		t.Fatal("3 failures, limit lowered to 3: still allowed")
	}
	if d := g.Slowdown("a@x"); d == 0 {
		t.Fatal("no slowdown once the per-account limit is reached and slowdown_max set")
	}
	// The clock is the one given at NewGuard.
	c.Advance(2 * time.Minute)
	if _, ok := g.CheckAccount("1.1.1.1", "a@x"); !ok {
		t.Fatal("the fake clock was replaced by Reconfigure")
	}
}
