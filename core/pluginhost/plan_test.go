package pluginhost

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

// TestPlanReplacesAddsRemoves: a plan restarts a plugin whose config
// changed as a new process, starts a new one, keeps an unchanged one, and
// the host serves the old processes until Commit; the replaced process is
// stopped after.
func TestPlanReplacesAddsRemoves(t *testing.T) {
	h, logs := startHost(t, spec("a", map[string]any{"greeting": "one"}), spec("b", nil))
	oldA, b := mustBackend(t, h, "a"), mustBackend(t, h, "b")
	oldPID := oldA.PID()
	ctx := context.Background()

	p, err := h.Prepare(ctx, []Spec{spec("a", map[string]any{"greeting": "two"}), spec("b", nil), spec("c", nil)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Replaced(), []string{"a"}) || !slices.Equal(p.Started(), []string{"c"}) || len(p.Removed()) != 0 || !p.Changed() {
		t.Fatalf("replaced %v started %v removed %v", p.Replaced(), p.Started(), p.Removed())
	}
	newA, _ := p.Backend("a")
	if newA == oldA || newA.PID() == 0 || newA.PID() == oldPID || newA.Capabilities().Roster != sdk.AccessReadWrite {
		t.Fatalf("the plan's a: pid %d (old %d), caps %+v", newA.PID(), oldPID, newA.Capabilities())
	}
	if pb, _ := p.Backend("b"); pb != b {
		t.Fatal("an unchanged plugin was replaced")
	}
	if cur := mustBackend(t, h, "a"); cur != oldA {
		t.Fatal("before Commit the host already serves the new a")
	}
	// The plugin's log reaches the host through its stderr pipe, which
	// may lag behind the Configure call's answer.
	eventually(t, 5*time.Second, "the new a configured with the new greeting", func() bool { return strings.Contains(logs.String(), "greeting=two") })
	if _, ok := h.Backend("c"); ok {
		t.Fatal("c visible before Commit")
	}
	if err := oldA.Ping(ctx); err != nil {
		t.Fatalf("the old a stopped serving before Commit: %v", err)
	}
	if err := p.Commit(0, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(0, time.Second); err == nil {
		t.Fatal("a plan committed twice")
	}
	if mustBackend(t, h, "a") != newA || mustBackend(t, h, "b") != b || len(h.Backends()) != 3 {
		t.Fatal("after Commit the host does not serve the plan's plugins")
	}
	eventually(t, 5*time.Second, "the replaced process stops", func() bool { return processGone(oldPID) })
	// The new process is supervised: killed, it comes back.
	c := mustBackend(t, h, "c")
	cpid := c.PID()
	c.Restart()
	eventually(t, 5*time.Second, "c restarted by its supervisor", func() bool { return c.Healthy() && c.PID() != 0 && c.PID() != cpid })

	// Removing c.
	p, err = h.Prepare(ctx, []Spec{spec("a", map[string]any{"greeting": "two"}), spec("b", nil)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Removed(), []string{"c"}) || len(p.Started())+len(p.Replaced()) != 0 {
		t.Fatalf("removing c: replaced %v started %v removed %v", p.Replaced(), p.Started(), p.Removed())
	}
	cpid = c.PID()
	if err := p.Commit(0, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.Backend("c"); ok {
		t.Fatal("c still there after its removal")
	}
	eventually(t, 5*time.Second, "the removed process stops", func() bool { return processGone(cpid) })

	// Nothing to do.
	p, err = h.Prepare(ctx, []Spec{spec("a", map[string]any{"greeting": "two"}), spec("b", nil)})
	if err != nil || p.Changed() {
		t.Fatalf("an unchanged config: %v, changed %v", err, p != nil && p.Changed())
	}
	p.Abort()
}

// TestPlanFailureChangesNothing: a plugin that refuses its new config
// fails the whole plan; the processes it started are stopped and the old
// ones serve on. Abort does the same for a plan the caller refuses.
func TestPlanFailureChangesNothing(t *testing.T) {
	h, _ := startHost(t, spec("a", nil), spec("b", nil))
	a, b := mustBackend(t, h, "a"), mustBackend(t, h, "b")
	pids := []int{a.PID(), b.PID()}
	ctx := context.Background()
	_, err := h.Prepare(ctx, []Spec{spec("a", map[string]any{"greeting": "x"}), spec("b", map[string]any{"bogus_key": 1}), spec("c", nil)})
	if err == nil || !strings.Contains(err.Error(), `plugin "b"`) || !strings.Contains(err.Error(), "bogus_key") {
		t.Fatalf("Prepare with a bad config: %v", err)
	}
	if _, err := h.Prepare(ctx, []Spec{spec("a", nil), spec("a", nil)}); err == nil {
		t.Fatal("a plan with a plugin twice")
	}
	p, err := h.Prepare(ctx, []Spec{spec("a", map[string]any{"greeting": "x"}), spec("b", nil)})
	if err != nil {
		t.Fatal(err)
	}
	na, _ := p.Backend("a")
	npid := na.PID()
	p.Abort()
	eventually(t, 5*time.Second, "the aborted plan's process stops", func() bool { return processGone(npid) })
	if mustBackend(t, h, "a") != a || mustBackend(t, h, "b") != b || a.PID() != pids[0] || b.PID() != pids[1] {
		t.Fatal("a failed or aborted plan changed the plugins")
	}
	if _, ok := h.Backend("c"); ok {
		t.Fatal("c added by a failed plan")
	}
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(0, 0); err == nil {
		t.Fatal("an aborted plan committed")
	}
}

// TestPlanCommitUnderLoad: calls made all through a commit, through
// whichever handle the host gives at the time, all succeed: the replaced
// process takes calls for the grace period and finishes those in flight.
func TestPlanCommitUnderLoad(t *testing.T) {
	h, _ := startHost(t, spec("a", nil))
	ctx := context.Background()
	var stop atomic.Bool
	var calls, fails atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				b, _ := h.Backend("a")
				if err := b.Ping(ctx); err != nil {
					fails.Add(1)
					t.Log(err)
				}
				calls.Add(1)
			}
		})
	}
	for i := range 3 {
		p, err := h.Prepare(ctx, []Spec{spec("a", map[string]any{"greeting": strings.Repeat("x", i+1)})})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Commit(300*time.Millisecond, time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if fails.Load() > 0 || calls.Load() == 0 {
		t.Fatalf("%d of %d calls failed across commits", fails.Load(), calls.Load())
	}
}
