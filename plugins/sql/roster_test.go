package sqlbackend

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/koi-im/koi/sdk"
)

func getRoster(t *testing.T, s *Store, owner string) sdk.RosterState {
	t.Helper()
	st, err := s.GetRoster(t.Context(), owner)
	if err != nil {
		t.Fatalf("GetRoster(%s): %v", owner, err)
	}
	return st
}

func setItem(t *testing.T, s *Store, owner string, it sdk.RosterItem) int {
	t.Helper()
	v, err := s.SetItem(t.Context(), owner, it)
	if err != nil {
		t.Fatalf("SetItem(%s, %s): %v", owner, it.JID, err)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("version %q is not a decimal counter", v)
	}
	return n
}

func TestRosterUnknownOwner(t *testing.T) { forEachDB(t, testRosterUnknownOwner) }

func testRosterUnknownOwner(t *testing.T, s *Store) {
	st := getRoster(t, s, "nobody@example.org")
	if st.Version != "0" || len(st.Items) != 0 || len(st.Pending) != 0 {
		t.Errorf("GetRoster of unknown owner = %+v, want empty at version 0", st)
	}
}

func TestRosterItems(t *testing.T) { forEachDB(t, testRosterItems) }

func testRosterItems(t *testing.T, s *Store) {
	ctx := t.Context()
	const owner = "ann@example.org"
	bob := sdk.RosterItem{JID: "bob@example.org", Name: "Bob", Subscription: sdk.SubBoth, Groups: []string{"Zeta", "Alpha", "Mid"}}
	carl := sdk.RosterItem{JID: "carl@example.net", Subscription: sdk.SubNone, Ask: true, Approved: true}

	v1 := setItem(t, s, owner, bob)
	v2 := setItem(t, s, owner, carl)
	if v1 < 1 || v2 <= v1 {
		t.Errorf("versions %d then %d, want increasing from 1", v1, v2)
	}
	st := getRoster(t, s, owner)
	if want := (sdk.RosterState{Version: strconv.Itoa(v2), Items: []sdk.RosterItem{bob, carl}}); !reflect.DeepEqual(st, want) {
		t.Errorf("GetRoster =\n%+v\nwant\n%+v", st, want)
	}

	// Replacing an item replaces its groups and flags.
	bob2 := sdk.RosterItem{JID: bob.JID, Name: "Robert", Subscription: sdk.SubTo, Groups: []string{"Mid"}}
	v3 := setItem(t, s, owner, bob2)
	if v3 <= v2 {
		t.Errorf("version after replace %d, want > %d", v3, v2)
	}
	st = getRoster(t, s, owner)
	if want := []sdk.RosterItem{bob2, carl}; !reflect.DeepEqual(st.Items, want) {
		t.Errorf("items after replace %+v, want %+v", st.Items, want)
	}

	v4, err := s.DeleteItem(ctx, owner, carl.JID)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(v4); n <= v3 {
		t.Errorf("version after delete %s, want > %d", v4, v3)
	}
	_, err = s.DeleteItem(ctx, owner, carl.JID)
	wantErr(t, "DeleteItem of absent item", err, sdk.ErrNotFound)
	if st := getRoster(t, s, owner); st.Version != v4 || len(st.Items) != 1 {
		t.Errorf("after failed delete: version %s (want %s unchanged), %d items", st.Version, v4, len(st.Items))
	}

	// Another owner's roster is separate, with its own version.
	if v := setItem(t, s, "bob@example.org", sdk.RosterItem{JID: owner, Subscription: sdk.SubBoth}); v != 1 {
		t.Errorf("first version of a new owner %d, want 1", v)
	}
	if st := getRoster(t, s, owner); len(st.Items) != 1 || st.Version != v4 {
		t.Errorf("owner's roster changed by another owner's write: %+v", st)
	}
}

func TestRosterPending(t *testing.T) { forEachDB(t, testRosterPending) }

func testRosterPending(t *testing.T, s *Store) {
	ctx := t.Context()
	const owner = "ann@example.org"
	v := setItem(t, s, owner, sdk.RosterItem{JID: "bob@example.org", Subscription: sdk.SubNone})
	p1 := sdk.PendingSubscription{JID: "dora@example.org", Stanza: "<presence type='subscribe' from='dora@example.org'/>"}
	p2 := sdk.PendingSubscription{JID: "carl@example.org", Stanza: "<presence type='subscribe'/>"}
	for _, p := range []sdk.PendingSubscription{p1, p2} {
		if err := s.SetPending(ctx, owner, p); err != nil {
			t.Fatal(err)
		}
	}
	p1.Stanza = "<presence type='subscribe'><status>again</status></presence>"
	if err := s.SetPending(ctx, owner, p1); err != nil {
		t.Fatalf("SetPending replace: %v", err)
	}
	st := getRoster(t, s, owner)
	if want := []sdk.PendingSubscription{p2, p1}; !reflect.DeepEqual(st.Pending, want) {
		t.Errorf("pending %+v, want %+v", st.Pending, want)
	}
	if st.Version != strconv.Itoa(v) {
		t.Errorf("pending changed the roster version to %s, want %d", st.Version, v)
	}
	if err := s.DeletePending(ctx, owner, p2.JID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePending(ctx, owner, p2.JID); err != nil {
		t.Errorf("DeletePending of absent request: %v", err)
	}
	if st := getRoster(t, s, owner); !reflect.DeepEqual(st.Pending, []sdk.PendingSubscription{p1}) {
		t.Errorf("pending after delete %+v", st.Pending)
	}
}

func TestDeleteRoster(t *testing.T) { forEachDB(t, testDeleteRoster) }

func testDeleteRoster(t *testing.T, s *Store) {
	ctx := t.Context()
	const owner, other = "ann@example.org", "bob@example.org"
	setItem(t, s, owner, sdk.RosterItem{JID: other, Subscription: sdk.SubBoth, Groups: []string{"g"}})
	setItem(t, s, other, sdk.RosterItem{JID: owner, Subscription: sdk.SubBoth, Groups: []string{"g"}})
	if err := s.SetPending(ctx, owner, sdk.PendingSubscription{JID: "x@example.org", Stanza: "<presence/>"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRoster(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if st := getRoster(t, s, owner); st.Version != "0" || len(st.Items)+len(st.Pending) != 0 {
		t.Errorf("roster after DeleteRoster %+v", st)
	}
	for _, table := range []string{"koi_roster_items", "koi_roster_groups", "koi_roster_pending", "koi_roster_versions"} {
		var n int
		if err := s.db.QueryRowContext(ctx, s.q("SELECT COUNT(*) FROM "+table+" WHERE owner = ?"), owner).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s rows left: %d, %v", table, n, err)
		}
	}
	if st := getRoster(t, s, other); len(st.Items) != 1 || len(st.Items[0].Groups) != 1 {
		t.Errorf("other owner's roster touched: %+v", st)
	}
	if err := s.DeleteRoster(ctx, "nobody@example.org"); err != nil {
		t.Errorf("DeleteRoster of unknown owner: %v", err)
	}
}

func TestRosterUnicode(t *testing.T) { forEachDB(t, testRosterUnicode) }

func testRosterUnicode(t *testing.T, s *Store) {
	owners := []string{"benoît@例え.jp", "Benoît@例え.jp", "иван@пример.рф"}
	item := sdk.RosterItem{JID: "ψ@ελλάδα.gr", Name: "Ψ 👪", Subscription: sdk.SubFrom, Groups: []string{"家族", "👪", ""}}
	for _, o := range owners {
		setItem(t, s, o, item)
	}
	for _, o := range owners {
		st := getRoster(t, s, o)
		if len(st.Items) != 1 || !reflect.DeepEqual(st.Items[0], item) || st.Version != "1" {
			t.Errorf("roster of %s = %+v", o, st)
		}
	}
}

func TestRosterInvalid(t *testing.T) { forEachDB(t, testRosterInvalid) }

func testRosterInvalid(t *testing.T, s *Store) {
	ctx := t.Context()
	ok := sdk.RosterItem{JID: "bob@example.org", Subscription: sdk.SubNone}
	items := map[string]sdk.RosterItem{
		"empty jid":        {Subscription: sdk.SubNone},
		"bad subscription": {JID: "bob@example.org", Subscription: "maybe"},
		"no subscription":  {JID: "bob@example.org"},
		"long jid":         {JID: strings.Repeat("a", maxKeyChars+1), Subscription: sdk.SubNone},
		"bad group":        {JID: "bob@example.org", Subscription: sdk.SubNone, Groups: []string{"a\xff"}},
		"nul name":         {JID: "bob@example.org", Subscription: sdk.SubNone, Name: "a\x00"},
	}
	for name, it := range items {
		_, err := s.SetItem(ctx, "ann@example.org", it)
		wantErr(t, "SetItem "+name, err, sdk.ErrInvalid)
	}
	_, err := s.SetItem(ctx, "", ok)
	wantErr(t, "SetItem empty owner", err, sdk.ErrInvalid)
	_, err = s.GetRoster(ctx, "")
	wantErr(t, "GetRoster empty owner", err, sdk.ErrInvalid)
	_, err = s.DeleteItem(ctx, "ann@example.org", "")
	wantErr(t, "DeleteItem empty contact", err, sdk.ErrInvalid)
	wantErr(t, "SetPending empty contact", s.SetPending(ctx, "ann@example.org", sdk.PendingSubscription{Stanza: "<presence/>"}), sdk.ErrInvalid)
	wantErr(t, "DeletePending empty owner", s.DeletePending(ctx, "", "bob@example.org"), sdk.ErrInvalid)
	wantErr(t, "DeleteRoster empty owner", s.DeleteRoster(ctx, ""), sdk.ErrInvalid)
	if st := getRoster(t, s, "ann@example.org"); st.Version != "0" {
		t.Errorf("rejected writes changed the version to %s", st.Version)
	}
}

// Concurrent writers each get a distinct version, and the last one is the
// number of writes.
func TestRosterVersionsConcurrent(t *testing.T) { forEachDB(t, testRosterVersionsConcurrent) }

func testRosterVersionsConcurrent(t *testing.T, s *Store) {
	const owner, writers, each = "ann@example.org", 4, 10
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				v, err := s.SetItem(context.Background(), owner, sdk.RosterItem{JID: fmt.Sprintf("c%d-%d@example.org", w, i), Subscription: sdk.SubNone})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if seen[v] {
					errs <- fmt.Errorf("version %s returned twice", v)
				}
				seen[v] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := getRoster(t, s, owner); st.Version != strconv.Itoa(writers*each) || len(st.Items) != writers*each {
		t.Errorf("final version %s with %d items, want %d", st.Version, len(st.Items), writers*each)
	}
}
