package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/koi-im/koi/core/jid"
)

// Settle confirms what was forwarded before it, lets callers with nothing
// new through without a flush, and shares one flush among concurrent
// callers.
func TestSettle(t *testing.T) {
	ctx := context.Background()
	a, b := startedPair(t)
	if err := a.Settle(ctx); err != nil {
		t.Fatalf("Settle with nothing forwarded: %v", err)
	}
	bob := jid.MustParse("bob@x/phone")
	b.rt.Bind(bob, &sink{})
	rs := &remoteSession{c: a.Cluster, node: "b", full: bob}
	rs.s, _ = a.rt.BindRemote(bob, rs)

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if !rs.Send(msg(fmt.Sprint("g", g, "-", i))) {
					t.Error("forward not published")
					return
				}
				want := a.settle.published.Load() // this forward among them
				if err := a.Settle(ctx); err != nil {
					t.Errorf("Settle: %v", err)
					return
				}
				if s := a.settle.settled.Load(); s < want {
					t.Errorf("Settle returned with %d forwards confirmed, %d published before it", s, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := a.settle.published.Load(); p != 8*50 {
		t.Fatalf("%d forwards counted, want %d", p, 8*50)
	}
	if err := a.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	if s := a.settle.settled.Load(); s != 8*50 {
		t.Fatalf("settled %d of %d", s, 8*50)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := a.Settle(done); err != nil {
		t.Fatalf("Settle with nothing new, its context done: %v", err)
	}
}
