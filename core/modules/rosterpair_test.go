package modules

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// flakyRoster is the sql store seen through the plain RosterWriter calls
// (no batches), with chosen writes failing: the core's retried pair.
type flakyRoster struct {
	RosterBackend
	mu     sync.Mutex
	writes int
	// fail says what write n (from 1) does: fail before writing, or write
	// and lose the answer; nil errors write normally.
	fail func(n int) (err error, afterWrite bool)
}

func (f *flakyRoster) next() (error, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if f.fail == nil {
		return nil, false
	}
	return f.fail(f.writes)
}

func flaky[T any](f *flakyRoster, write func() (T, error)) (T, error) {
	err, after := f.next()
	if err != nil && !after {
		var zero T
		return zero, err
	}
	v, werr := write()
	if err != nil {
		return v, err
	}
	return v, werr
}

func (f *flakyRoster) SetItem(ctx context.Context, owner string, it sdk.RosterItem) (string, error) {
	return flaky(f, func() (string, error) { return f.RosterBackend.SetItem(ctx, owner, it) })
}

func (f *flakyRoster) DeleteItem(ctx context.Context, owner, contact string) (string, error) {
	return flaky(f, func() (string, error) { return f.RosterBackend.DeleteItem(ctx, owner, contact) })
}

func (f *flakyRoster) SetPending(ctx context.Context, owner string, p sdk.PendingSubscription) error {
	_, err := flaky(f, func() (struct{}, error) { return struct{}{}, f.RosterBackend.SetPending(ctx, owner, p) })
	return err
}

func (f *flakyRoster) DeletePending(ctx context.Context, owner, contact string) error {
	_, err := flaky(f, func() (struct{}, error) { return struct{}{}, f.RosterBackend.DeletePending(ctx, owner, contact) })
	return err
}

// batchRoster is the sql store with its batches counted, and refused when
// refuse is set (before the store sees them).
type batchRoster struct {
	RosterBackend
	calls  int
	refuse error
}

func (b *batchRoster) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{Roster: sdk.AccessReadWrite, RosterBatch: true}
}

func (b *batchRoster) ApplyRosterChanges(ctx context.Context, cs []sdk.RosterChange) (map[string]string, error) {
	b.calls++
	if b.refuse != nil {
		return nil, b.refuse
	}
	return b.RosterBackend.(sdk.RosterBatchWriter).ApplyRosterChanges(ctx, cs)
}

// rosterOf is owner's stored roster, items and pending requests.
func (e *env) rosterOf(owner string) sdk.RosterState {
	st, err := e.store.GetRoster(context.Background(), owner)
	if err != nil {
		e.t.Fatal(err)
	}
	st.Version = ""
	return st
}

// requested has alice ask bob for his presence and returns both rosters,
// stored, afterwards.
func requested(t *testing.T, e *env) (a, b *client, alice, bob sdk.RosterState) {
	a = e.login("alice@example.com/pc")
	b = e.login("bob@example.com/phone")
	a.online("0")
	b.online("0")
	a.send(`<presence to='bob@example.com' type='subscribe'/>`)
	a.rec.Take()
	b.rec.Take()
	alice, bob = e.rosterOf("alice@example.com"), e.rosterOf("bob@example.com")
	if len(bob.Pending) != 1 || len(alice.Items) != 1 || !alice.Items[0].Ask {
		t.Fatalf("after the request: alice %+v, bob %+v", alice, bob)
	}
	return a, b, alice, bob
}

// wantApproved checks that bob's approval of alice is stored on both
// sides, and that alice heard of it.
func wantApproved(t *testing.T, e *env, a *client) {
	t.Helper()
	if it, ok := e.item("alice@example.com", "bob@example.com"); !ok || it.Subscription != sdk.SubTo || it.Ask {
		t.Errorf("alice's item = %+v, want to without ask", it)
	}
	if it, ok := e.item("bob@example.com", "alice@example.com"); !ok || it.Subscription != sdk.SubFrom {
		t.Errorf("bob's item = %+v, want from", it)
	}
	if st := e.rosterOf("bob@example.com"); len(st.Pending) != 0 {
		t.Errorf("bob's pending requests = %+v, want none", st.Pending)
	}
	if it := pushItem(a.rec.Take(), "bob@example.com"); it == nil || it.Attr("subscription") != "to" {
		t.Errorf("alice's push = %v, want subscription to", it)
	}
}

// TestSubscriptionPairRetried: without batches, a write of the pair that
// fails for a passing reason (before writing, or after with the answer
// lost) is made again, and both rosters agree.
func TestSubscriptionPairRetried(t *testing.T) {
	for _, afterWrite := range []bool{false, true} {
		t.Run(fmt.Sprintf("answer-lost=%v", afterWrite), func(t *testing.T) {
			e := newEnv(t)
			f := &flakyRoster{RosterBackend: e.store}
			e.host.Roster.Backend = f
			a, b, _, _ := requested(t, e)
			// bob's approval writes his item, his pending request, alice's
			// item: the last fails once.
			start := f.writes
			f.fail = func(n int) (error, bool) {
				if n == start+3 {
					return fmt.Errorf("database restarting: %w", sdk.ErrUnavailable), afterWrite
				}
				return nil, false
			}
			b.send(`<presence to='alice@example.com' type='subscribed'/>`)
			if got := f.writes - start; got != 4 {
				t.Errorf("%d writes, want 4 (3 and a retry)", got)
			}
			wantApproved(t, e, a)
		})
	}
}

// TestSubscriptionPairUndone: without batches, when the second side cannot
// be written at all, the first is set back: neither roster changed, and the
// approving user gets an error.
func TestSubscriptionPairUndone(t *testing.T) {
	e := newEnv(t)
	f := &flakyRoster{RosterBackend: e.store}
	e.host.Roster.Backend = f
	a, b, alice, bob := requested(t, e)
	// bob's item and pending request go in; alice's item is refused.
	start := f.writes
	f.fail = func(n int) (error, bool) {
		if n == start+3 {
			return fmt.Errorf("refused: %w", sdk.ErrInvalid), false
		}
		return nil, false
	}
	b.send(`<presence to='alice@example.com' type='subscribed'/>`)
	f.fail = nil
	if got := e.rosterOf("alice@example.com"); !reflect.DeepEqual(got, alice) {
		t.Errorf("alice's roster = %+v, want it as before: %+v", got, alice)
	}
	if got := e.rosterOf("bob@example.com"); !reflect.DeepEqual(got, bob) {
		t.Errorf("bob's roster = %+v, want it as before: %+v", got, bob)
	}
	if find(b.rec.Take(), func(el *xmlstream.Element) bool { return el.Local == "presence" && el.Attr("type") == "error" }) == nil {
		t.Error("bob got no error for the approval that was not stored")
	}
	if len(a.rec.Take()) != 0 {
		t.Error("alice heard of an approval that was not stored")
	}
	// The cached rosters match the backend: approving again works.
	b.send(`<presence to='alice@example.com' type='subscribed'/>`)
	wantApproved(t, e, a)
}

// TestSubscriptionBatch: with a backend that declares batches, bob's
// approval is one call for both rosters; a refused call changes neither.
func TestSubscriptionBatch(t *testing.T) {
	e := newEnv(t)
	br := &batchRoster{RosterBackend: e.store}
	e.host.Roster.Backend = br
	a, b, alice, bob := requested(t, e)
	if br.calls != 1 {
		t.Errorf("the request made %d batch calls, want 1", br.calls)
	}
	br.refuse = fmt.Errorf("no: %w", sdk.ErrUnavailable)
	b.send(`<presence to='alice@example.com' type='subscribed'/>`)
	if got := e.rosterOf("alice@example.com"); !reflect.DeepEqual(got, alice) {
		t.Errorf("alice's roster = %+v, want it as before: %+v", got, alice)
	}
	if got := e.rosterOf("bob@example.com"); !reflect.DeepEqual(got, bob) {
		t.Errorf("bob's roster = %+v, want it as before: %+v", got, bob)
	}
	if len(a.rec.Take()) != 0 {
		t.Error("alice heard of an approval that was not stored")
	}
	b.rec.Take()
	br.refuse, br.calls = nil, 0
	b.send(`<presence to='alice@example.com' type='subscribed'/>`)
	if br.calls != 1 {
		t.Errorf("the approval made %d batch calls, want 1", br.calls)
	}
	wantApproved(t, e, a)
}

// BenchmarkSubscriptionCycle measures a request, its approval and its
// cancellation between two online users on the sql store (SQLite): with
// both sides in one transaction, and as the pair of single writes a
// backend without batches gets.
func BenchmarkSubscriptionCycle(b *testing.B) {
	for _, mode := range []string{"batch", "pair"} {
		b.Run(mode, func(b *testing.B) {
			e := newEnv(b)
			if mode == "pair" {
				e.host.Roster.Backend = &flakyRoster{RosterBackend: e.store}
			}
			a := e.login("alice@example.com/pc")
			c := e.login("bob@example.com/phone")
			a.online("0")
			c.online("0")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.send(`<presence to='bob@example.com' type='subscribe'/>`)
				c.send(`<presence to='alice@example.com' type='subscribed'/>`)
				a.send(`<presence to='bob@example.com' type='unsubscribe'/>`)
				a.rec.Take()
				c.rec.Take()
			}
			b.StopTimer()
			if it, ok := e.item("bob@example.com", "alice@example.com"); !ok || it.Subscription != sdk.SubNone {
				b.Fatalf("bob's item after the cycles: %+v", it)
			}
		})
	}
}
