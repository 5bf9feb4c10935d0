package roster

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/router/routertest"
	"github.com/koi-im/koi/core/stanza"
	sqlbackend "github.com/koi-im/koi/plugins/sql"
	"github.com/koi-im/koi/sdk"
)

// The cache and its transactions run against the real sql backend on a
// temporary SQLite file; only the client connection is a recorder.

type hostKey struct{ name string }

type env struct {
	rs     *Rosters
	r      *router.Router
	store  *sqlbackend.Store
	src    Source
	writes []jid.JID
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := sqlbackend.Open(context.Background(), sqlbackend.Settings{Driver: "sqlite", DSN: t.TempDir() + "/koi.db", SCRAMIterations: 4096}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{r: router.New(), store: st}
	e.src = Source{Host: &hostKey{"example.com"}, Backend: st, On: true, Writable: true}
	e.rs = New(Config{
		Users: e.r,
		Source: func(domain string) (Source, bool) {
			if domain != "example.com" {
				return Source{}, false
			}
			return e.src, true
		},
		Written: func(owner jid.JID) { e.writes = append(e.writes, owner) },
	})
	return e
}

var (
	alice = jid.MustParse("alice@example.com")
	bob   = jid.MustParse("bob@example.com")
)

// A pair transaction writes both rosters, then memory, then pushes to
// the owner's interested resources.
func TestPairCommitWritesBothSidesAndPushes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	rec := &routertest.Recorder{}
	s, _ := e.r.Bind(jid.MustParse("alice@example.com/home"), rec)
	s.SetInterested()

	err := e.rs.WithPair(ctx, alice, bob, func(ra, rb *Roster) error {
		tx := e.rs.Begin()
		if err := tx.SetItem(ra, sdk.RosterItem{JID: bob.String(), Subscription: sdk.SubNone, Ask: true}); err != nil {
			return err
		}
		if err := tx.SetPending(rb, alice, "<presence type='subscribe'/>"); err != nil {
			return err
		}
		if it, ok := tx.Item(ra, bob); !ok || !it.Ask {
			t.Errorf("staged item not visible through the tx: %+v %v", it, ok)
		}
		if _, ok := ra.Item(bob); ok {
			t.Error("roster changed in memory before commit")
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.store.GetRoster(ctx, alice.String())
	if err != nil || len(st.Items) != 1 || !st.Items[0].Ask {
		t.Fatalf("alice's stored roster = %+v, %v", st, err)
	}
	st, err = e.store.GetRoster(ctx, bob.String())
	if err != nil || len(st.Pending) != 1 || st.Pending[0].JID != alice.String() {
		t.Fatalf("bob's stored roster = %+v, %v", st, err)
	}
	if !slices.Contains(e.writes, alice) || !slices.Contains(e.writes, bob) {
		t.Errorf("written callback got %v, want both owners", e.writes)
	}
	got := rec.Take()
	if len(got) != 1 {
		t.Fatalf("alice got %d stanzas, want one push", len(got))
	}
	it := got[0].Child(NS, "query").Child(NS, "item")
	if it == nil || it.Attr("jid") != bob.String() || it.Attr("ask") != "subscribe" {
		t.Errorf("push = %s", got[0])
	}
	e.rs.With(ctx, alice, func(r *Roster) error {
		if it, ok := r.Item(bob); !ok || !it.Ask || r.Version() == "0" {
			t.Errorf("alice's cached roster: item %+v %v, version %q", it, ok, r.Version())
		}
		return nil
	})
}

// A host whose roster backend is read-only refuses the change, and
// nothing is written.
func TestReadOnlyRefused(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.src.Writable = false
	err := e.rs.With(ctx, alice, func(r *Roster) error {
		return e.rs.SetItem(ctx, r, sdk.RosterItem{JID: bob.String()})
	})
	var se *stanza.Error
	if !errors.As(err, &se) || se.Condition != stanza.ErrNotAllowed.Condition {
		t.Fatalf("err = %v, want not-allowed", err)
	}
	if len(e.writes) != 0 {
		t.Errorf("written called for a refused change: %v", e.writes)
	}
}

type sharedDir map[string][]sdk.RosterItem

func (d sharedDir) GetRoster(_ context.Context, owner string) (sdk.RosterState, error) {
	return sdk.RosterState{Version: "s1", Items: d[owner]}, nil
}

// A shared contact merges with the personal item, cannot be removed, and
// keeps the user's own name.
func TestSharedMerge(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.src.Shared = sharedDir{alice.String(): {{JID: bob.String(), Name: "Bob", Groups: []string{"Staff"}}}}
	e.src.SharedOn = true
	err := e.rs.With(ctx, alice, func(r *Roster) error {
		if !r.Shared(bob) {
			t.Error("bob not shared")
		}
		if err := e.rs.SetItem(ctx, r, sdk.RosterItem{JID: bob.String(), Name: "Bobby", Groups: []string{"Friends"}}); err != nil {
			return err
		}
		it, _ := r.Item(bob)
		if it.Name != "Bobby" || it.Subscription != sdk.SubBoth || !slices.Equal(it.Groups, []string{"Staff", "Friends"}) {
			t.Errorf("merged item = %+v", it)
		}
		return e.rs.Begin().DeleteItem(r, bob)
	})
	var se *stanza.Error
	if !errors.As(err, &se) || se.Condition != stanza.ErrNotAllowed.Condition {
		t.Fatalf("deleting a shared contact: err = %v, want not-allowed", err)
	}
}
