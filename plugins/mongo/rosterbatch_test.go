package mongobackend

import (
	"reflect"
	"testing"

	"github.com/koi-im/koi/sdk"
)

// TestRosterBatchCrashRecovery builds what a crash in the middle of a batch
// leaves (journal written, the first change in, the second not) and checks
// that a new process sets it back to where both rosters were, leaving alone
// an item changed since by someone else.
func TestRosterBatchCrashRecovery(t *testing.T) {
	s, _ := open(t, Settings{})
	ctx := t.Context()
	const alice, bob, carol = "alice@example.org", "bob@example.org", "carol@example.org"
	asked := sdk.RosterItem{JID: bob, Subscription: sdk.SubNone, Ask: true}
	if _, err := s.SetItem(ctx, alice, asked); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPending(ctx, bob, sdk.PendingSubscription{JID: alice, Stanza: "<presence type='subscribe'/>"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetItem(ctx, carol, sdk.RosterItem{JID: bob, Subscription: sdk.SubNone}); err != nil {
		t.Fatal(err)
	}
	aliceBefore, bobBefore := s.mustRoster(t, alice), s.mustRoster(t, bob)

	to, from := sdk.RosterItem{JID: bob, Subscription: sdk.SubTo}, sdk.RosterItem{JID: alice, Subscription: sdk.SubFrom}
	carolNew := sdk.RosterItem{JID: bob, Subscription: sdk.SubTo}
	changes := []sdk.RosterChange{
		{Owner: alice, Contact: bob, Item: &to},
		{Owner: carol, Contact: bob, Item: &carolNew},
		{Owner: bob, Contact: alice, Item: &from, DeletePending: true},
	}
	j, err := s.beginBatch(ctx, changes)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes[:2] {
		if err := s.writeChange(ctx, j.ID, c); err != nil {
			t.Fatal(err)
		}
	}
	// carol's item changes again after the batch: that change stays.
	carolLater := sdk.RosterItem{JID: bob, Subscription: sdk.SubBoth, Name: "Bob"}
	if _, err := s.SetItem(ctx, carol, carolLater); err != nil {
		t.Fatal(err)
	}

	// The entry is young: a live batch could still be at work on it.
	if err := s.recoverJournal(ctx, journalGrace); err != nil {
		t.Fatal(err)
	}
	if got := s.mustRoster(t, alice); reflect.DeepEqual(got.Items, aliceBefore.Items) {
		t.Fatal("a young journal entry was set back")
	}

	if err := s.recoverJournal(ctx, 0); err != nil {
		t.Fatal(err)
	}
	aliceAfter, bobAfter := s.mustRoster(t, alice), s.mustRoster(t, bob)
	if !reflect.DeepEqual(aliceAfter.Items, aliceBefore.Items) || !reflect.DeepEqual(bobAfter, bobBefore) {
		t.Errorf("after recovery alice %+v, bob %+v; want as before: %+v, %+v", aliceAfter, bobAfter, aliceBefore, bobBefore)
	}
	if aliceAfter.Version == aliceBefore.Version {
		t.Errorf("alice's version stayed %s although her item was written and set back", aliceAfter.Version)
	}
	if got := s.mustRoster(t, carol); !reflect.DeepEqual(got.Items, []sdk.RosterItem{carolLater}) {
		t.Errorf("carol's roster %+v, want the later change kept: %+v", got.Items, carolLater)
	}
	if n, err := s.rosterJournal.CountDocuments(ctx, map[string]any{}); err != nil || n != 0 {
		t.Errorf("%d journal entries left (%v), want none", n, err)
	}
}

func (s *Store) mustRoster(t *testing.T, owner string) sdk.RosterState {
	t.Helper()
	st, err := s.GetRoster(t.Context(), owner)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
