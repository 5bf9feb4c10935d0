package sdktest

import (
	"fmt"

	"github.com/koi-im/koi/sdk"
)

func rosterBatch(c sdk.Capabilities, _ Options) bool { return c.Roster.Writable() && c.RosterBatch }

func (e *env) rosterBatchWriter() sdk.RosterBatchWriter {
	e.t.Helper()
	w, ok := e.b.(sdk.RosterBatchWriter)
	if !ok {
		e.t.Fatal("roster batches are declared but the backend does not implement sdk.RosterBatchWriter")
	}
	return w
}

// applyBatch applies cs, checks that every owner whose items changed got a
// new version, the one GetRoster now reports, and returns the versions.
func (e *env) applyBatch(what string, vs map[string]*versions, cs []sdk.RosterChange) map[string]string {
	e.t.Helper()
	got, err := e.rosterBatchWriter().ApplyRosterChanges(e.ctx, cs)
	e.ok(what, err)
	done := map[string]bool{}
	for _, c := range cs {
		if !c.ChangesItem() || done[c.Owner] {
			continue
		}
		done[c.Owner] = true
		v, ok := got[c.Owner]
		if !ok {
			e.t.Errorf("%s: no version for %s, whose items changed (versions %q)", what, c.Owner, got)
			continue
		}
		vs[c.Owner].next(e, fmt.Sprintf("%s for %s", what, c.Owner), v)
		if st := e.getRoster(c.Owner); st.Version != v {
			e.t.Errorf("%s: version %q for %s, but GetRoster says %q", what, v, c.Owner, st.Version)
		}
	}
	return got
}

// checkRosterBatch plays a subscription between two users as the core
// does: both sides, items and pending requests, in one batch; then the same
// batch again (a retry after a lost answer must leave the same state), and
// the removal of both sides, absent items included.
func checkRosterBatch(e *env) {
	alice, bob, carol := e.owner("alice"), e.owner("bob"), e.owner("carol")
	vs := map[string]*versions{alice: newVersions(), bob: newVersions()}
	w := e.rosterWriter()
	_, err := w.SetItem(e.ctx, alice, sdk.RosterItem{JID: bob, Subscription: sdk.SubNone, Ask: true, Groups: []string{"Friends"}})
	e.ok("SetItem", err)
	vs[alice].next(e, "SetItem", e.getRoster(alice).Version)
	e.ok("SetPending", w.SetPending(e.ctx, bob, sdk.PendingSubscription{JID: alice, Stanza: "<presence type='subscribe'/>"}))

	// bob approves alice: his pending request goes, both items change.
	aliceItem := sdk.RosterItem{JID: bob, Subscription: sdk.SubTo, Groups: []string{"Friends"}}
	bobItem := sdk.RosterItem{JID: alice, Subscription: sdk.SubFrom}
	carolAsks := sdk.PendingSubscription{JID: carol, Stanza: "<presence type='subscribe' from='" + carol + "'/>"}
	batch := []sdk.RosterChange{
		{Owner: bob, Contact: alice, Item: &bobItem, DeletePending: true},
		{Owner: alice, Contact: bob, Item: &aliceItem},
		{Owner: bob, Contact: carol, Pending: &carolAsks},
	}
	e.applyBatch("ApplyRosterChanges(approve)", vs, batch)
	e.wantRoster(alice, "", []sdk.RosterItem{aliceItem}, nil)
	e.wantRoster(bob, "", []sdk.RosterItem{bobItem}, []sdk.PendingSubscription{carolAsks})

	e.applyBatch("ApplyRosterChanges(the same again)", vs, batch)
	e.wantRoster(alice, "", []sdk.RosterItem{aliceItem}, nil)
	e.wantRoster(bob, "", []sdk.RosterItem{bobItem}, []sdk.PendingSubscription{carolAsks})

	remove := []sdk.RosterChange{
		{Owner: alice, Contact: bob, DeleteItem: true, DeletePending: true},
		{Owner: bob, Contact: alice, DeleteItem: true},
		{Owner: bob, Contact: carol, DeleteItem: true, DeletePending: true}, // no item: not an error
	}
	e.applyBatch("ApplyRosterChanges(remove)", vs, remove)
	e.wantRoster(alice, "", nil, nil)
	e.wantRoster(bob, "", nil, nil)
	e.applyBatch("ApplyRosterChanges(remove again)", vs, remove)
}

// checkRosterBatchAtomic checks that a batch whose later change is refused
// changes nothing, not even what came before it.
func checkRosterBatchAtomic(e *env) {
	alice, bob := e.owner("alice"), e.owner("bob")
	w := e.rosterWriter()
	before := sdk.RosterItem{JID: bob, Subscription: sdk.SubNone, Ask: true}
	v, err := w.SetItem(e.ctx, alice, before)
	e.ok("SetItem", err)
	after := sdk.RosterItem{JID: bob, Subscription: sdk.SubTo}
	bad := sdk.RosterItem{JID: alice, Subscription: "sideways"}
	_, err = e.rosterBatchWriter().ApplyRosterChanges(e.ctx, []sdk.RosterChange{
		{Owner: alice, Contact: bob, Item: &after},
		{Owner: bob, Contact: alice, Item: &bad, DeletePending: true},
	})
	e.wantErr("ApplyRosterChanges with an invalid second item", err, sdk.ErrInvalid)
	e.wantRoster(alice, v, []sdk.RosterItem{before}, nil)
	e.wantRoster(bob, "0", nil, nil)

	_, err = e.rosterBatchWriter().ApplyRosterChanges(e.ctx, []sdk.RosterChange{
		{Owner: alice, Contact: bob, Item: &after},
		{Owner: alice, Contact: bob, DeletePending: true},
	})
	e.wantErr("ApplyRosterChanges with one owner and contact twice", err, sdk.ErrInvalid)
	e.wantRoster(alice, v, []sdk.RosterItem{before}, nil)
}
