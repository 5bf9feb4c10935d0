package sdktest

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/sdk"
)

func (e *env) offline() sdk.Offline {
	e.t.Helper()
	o, ok := e.b.(sdk.Offline)
	if !ok {
		e.t.Fatal("offline is declared but the backend does not implement sdk.Offline")
	}
	return o
}

func (e *env) wantCount(owner string, want int) {
	e.t.Helper()
	n, err := e.offline().Count(e.ctx, owner)
	if e.noErr("Count("+owner+")", err) && n != want {
		e.t.Errorf("Count(%s) = %d, want %d", owner, n, want)
	}
}

// wantPop pops owner's messages and compares them with want, in order.
// Stamps must survive to the microsecond (XEP-0203 stamps carry them).
func (e *env) wantPop(owner string, want ...sdk.OfflineMessage) {
	e.t.Helper()
	got, err := e.offline().Pop(e.ctx, owner)
	if !e.noErr("Pop("+owner+")", err) {
		return
	}
	if len(got) != len(want) {
		e.t.Errorf("Pop(%s) returned %d messages, want %d", owner, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.Stanza != w.Stanza {
			e.t.Errorf("Pop(%s) message %d: stanza %.80q, want %.80q (arrival order)", owner, i, g.Stanza, w.Stanza)
		}
		if !g.Stamp.Equal(w.Stamp) {
			e.t.Errorf("Pop(%s) message %d: stamp %s, want %s (to the microsecond)",
				owner, i, g.Stamp.Format(time.RFC3339Nano), w.Stamp.Format(time.RFC3339Nano))
		}
	}
}

func (e *env) store(owner string, m sdk.OfflineMessage) {
	e.t.Helper()
	e.ok("Store("+owner+")", e.offline().Store(e.ctx, owner, m))
}

func checkOfflineEmpty(e *env) {
	owner := e.owner("nobody")
	e.wantCount(owner, 0)
	e.wantPop(owner)
}

func checkOfflineQueue(e *env) {
	owner, other := e.owner("alice"), e.owner("bob")
	zone := time.FixedZone("IST", 5*3600+1800)
	base := time.Date(2024, 2, 29, 23, 59, 58, 123456000, zone)
	msgs := []sdk.OfflineMessage{
		{Stanza: "<message type='chat'><body>first</body></message>", Stamp: base},
		// Arrival order, not stamp order: this one is stamped earlier.
		{Stanza: "<message><body>second &amp; &lt;escaped&gt; \u2014 \u00fcml\u00e4ut \u4f60\u597d \U0001F600</body></message>", Stamp: base.Add(-time.Hour - time.Microsecond)},
		{Stanza: "<message><body>" + strings.Repeat("long body ", 6000) + "</body></message>", Stamp: base.Add(time.Microsecond)},
		{Stanza: "<message><body>third second</body></message>", Stamp: base.Add(time.Microsecond)},
		{Stanza: "<message><body>utc</body></message>", Stamp: time.Date(2038, 1, 19, 3, 14, 8, 999999000, time.UTC)},
	}
	for _, m := range msgs {
		e.store(owner, m)
	}
	e.store(other, msgs[0])
	e.wantCount(owner, len(msgs))
	e.wantCount(other, 1)

	e.wantPop(owner, msgs...)
	e.wantCount(owner, 0)
	e.wantPop(owner)
	e.wantCount(other, 1)

	// The queue starts again after a Pop.
	e.store(owner, msgs[3])
	e.store(owner, msgs[1])
	e.wantCount(owner, 2)
	e.wantPop(owner, msgs[3], msgs[1])
	e.wantPop(other, msgs[0])
}

func checkOfflineDeleteAll(e *env) {
	o := e.offline()
	owner, other := e.owner("alice"), e.owner("bob")
	stamp := time.Date(2025, 6, 1, 12, 0, 0, 500, time.UTC).Truncate(time.Microsecond)
	for i := range 3 {
		e.store(owner, sdk.OfflineMessage{Stanza: fmt.Sprintf("<message id='%d'/>", i), Stamp: stamp})
	}
	kept := sdk.OfflineMessage{Stanza: "<message id='kept'/>", Stamp: stamp}
	e.store(other, kept)
	e.ok("DeleteAll", o.DeleteAll(e.ctx, owner))
	e.wantCount(owner, 0)
	e.wantPop(owner)
	e.wantCount(other, 1)
	e.ok("DeleteAll of an empty queue", o.DeleteAll(e.ctx, owner))
	e.ok("DeleteAll of an unknown owner", o.DeleteAll(e.ctx, e.owner("nobody")))
	e.wantPop(other, kept)
}

// checkOfflineConcurrentPop stores messages while several goroutines pop
// them: each message must come out exactly once, each Pop's messages in
// arrival order.
func checkOfflineConcurrentPop(e *env) {
	o := e.offline()
	owner := e.owner("alice")
	const total = 200
	stamp := time.Now().Truncate(time.Microsecond)
	var (
		stored atomic.Bool
		mu     sync.Mutex
		got    = map[int]int{} // message number -> times delivered
		wg     sync.WaitGroup
		errs   = make(chan error, e.o.Concurrency+1)
	)
	record := func(msgs []sdk.OfflineMessage) error {
		mu.Lock()
		defer mu.Unlock()
		last := -1
		for _, m := range msgs {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(m.Stanza, "<message id='"), "'/>"))
			if err != nil {
				return fmt.Errorf("a Pop returned a message that was not stored: %.80q", m.Stanza)
			}
			if n <= last {
				return fmt.Errorf("one Pop returned message %d after message %d, not in arrival order", n, last)
			}
			last = n
			got[n]++
		}
		return nil
	}
	wg.Go(func() {
		defer e.recoverPanic()
		defer stored.Store(true)
		for i := range total {
			if err := o.Store(e.ctx, owner, sdk.OfflineMessage{Stanza: fmt.Sprintf("<message id='%d'/>", i), Stamp: stamp}); err != nil {
				errs <- fmt.Errorf("storing message %d: %w", i, err)
				return
			}
		}
	})
	pops := atomic.Int64{}
	for range e.o.Concurrency {
		wg.Go(func() {
			defer e.recoverPanic()
			for !stored.Load() {
				msgs, err := o.Pop(e.ctx, owner)
				if err == nil {
					err = record(msgs)
				}
				if err != nil {
					errs <- err
					return
				}
				pops.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Error(err)
	}
	if e.t.Failed() {
		return
	}
	rest, err := o.Pop(e.ctx, owner)
	e.ok("final Pop", err)
	if err := record(rest); err != nil {
		e.t.Error(err)
	}
	for i := range total {
		if n := got[i]; n != 1 {
			e.t.Errorf("message %d was delivered %d times, want exactly once", i, n)
		}
	}
	e.t.Logf("%d messages stored while %d goroutines popped (%d Pops)", total, e.o.Concurrency, pops.Load()+1)
	e.wantCount(owner, 0)
}
