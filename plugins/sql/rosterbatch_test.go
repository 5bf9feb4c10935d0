package sqlbackend

import (
	"errors"
	"reflect"
	"strconv"
	"testing"

	"github.com/koi-im/koi/sdk"
)

// trapContact is refused by a trigger of the database itself, so that a
// write fails inside the transaction, after the writes before it went in.
const trapContact = "trap@example.org"

func installTrap(t *testing.T, s *Store) {
	t.Helper()
	var stmts []string
	switch s.d.name() {
	case "sqlite":
		stmts = []string{`CREATE TRIGGER koi_test_trap BEFORE INSERT ON koi_roster_items
			WHEN NEW.contact = '` + trapContact + `' BEGIN SELECT RAISE(ABORT, 'trap'); END`}
	case "postgres":
		stmts = []string{
			`CREATE FUNCTION koi_test_trap() RETURNS trigger AS $$ BEGIN
				IF NEW.contact = '` + trapContact + `' THEN RAISE EXCEPTION 'trap'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`,
			`CREATE TRIGGER koi_test_trap BEFORE INSERT ON koi_roster_items FOR EACH ROW EXECUTE FUNCTION koi_test_trap()`,
		}
	case "mysql":
		stmts = []string{`CREATE TRIGGER koi_test_trap BEFORE INSERT ON koi_roster_items FOR EACH ROW
			IF NEW.contact = '` + trapContact + `' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'trap'; END IF`}
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("installing the trap trigger: %v", err)
		}
	}
}

func TestApplyRosterChangesAtomic(t *testing.T) { forEachDB(t, testApplyRosterChangesAtomic) }

// testApplyRosterChangesAtomic: the second change of a batch fails in the
// database, after the first was written in the same transaction; neither
// roster may show any of it, versions included.
func testApplyRosterChangesAtomic(t *testing.T, s *Store) {
	ctx := t.Context()
	const alice, bob = "alice@example.org", "bob@example.org"
	before := sdk.RosterItem{JID: bob, Subscription: sdk.SubNone, Ask: true}
	setItem(t, s, alice, before)
	pending := sdk.PendingSubscription{JID: trapContact, Stanza: "<presence type='subscribe'/>"}
	if err := s.SetPending(ctx, bob, pending); err != nil {
		t.Fatal(err)
	}
	aliceBefore, bobBefore := getRoster(t, s, alice), getRoster(t, s, bob)
	installTrap(t, s)

	after := sdk.RosterItem{JID: bob, Subscription: sdk.SubTo}
	trapped := sdk.RosterItem{JID: trapContact, Subscription: sdk.SubFrom}
	_, err := s.ApplyRosterChanges(ctx, []sdk.RosterChange{
		{Owner: alice, Contact: bob, Item: &after},
		{Owner: bob, Contact: trapContact, Item: &trapped, DeletePending: true},
	})
	if err == nil {
		t.Fatal("ApplyRosterChanges: no error, want the trigger's")
	}
	if errors.Is(err, sdk.ErrInvalid) {
		t.Fatalf("ApplyRosterChanges: %v, want the database's refusal, not a check before it", err)
	}
	if got := getRoster(t, s, alice); !reflect.DeepEqual(got, aliceBefore) {
		t.Errorf("alice's roster after a failed batch = %+v, want it unchanged: %+v", got, aliceBefore)
	}
	if got := getRoster(t, s, bob); !reflect.DeepEqual(got, bobBefore) {
		t.Errorf("bob's roster after a failed batch = %+v, want it unchanged: %+v", got, bobBefore)
	}

	// Without the trap's contact the same shape goes in whole, one new
	// version per owner.
	other := sdk.RosterItem{JID: alice, Subscription: sdk.SubFrom}
	vs, err := s.ApplyRosterChanges(ctx, []sdk.RosterChange{
		{Owner: alice, Contact: bob, Item: &after},
		{Owner: bob, Contact: alice, Item: &other},
		{Owner: bob, Contact: trapContact, DeletePending: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	for owner, was := range map[string]sdk.RosterState{alice: aliceBefore, bob: bobBefore} {
		n, _ := strconv.Atoi(was.Version)
		if want := strconv.Itoa(n + 1); vs[owner] != want {
			t.Errorf("version of %s = %q, want %q", owner, vs[owner], want)
		}
	}
	if got := getRoster(t, s, bob); len(got.Pending) != 0 || !reflect.DeepEqual(got.Items, []sdk.RosterItem{other}) {
		t.Errorf("bob's roster = %+v, want only %+v", got, other)
	}
}
