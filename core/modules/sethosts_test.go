package modules

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/plugins/sql/sqltest"
	"github.com/koi-im/koi/sdk"
)

// TestSetHostsSwitchesBackends: a host switched to another roster backend
// serves the next roster request from it while the session stays bound;
// the settings (offline_limit) are the new version's too; requests made
// while the hosts are swapped are all answered.
func TestSetHostsSwitchesBackends(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b := sqltest.SQLite(t)
	if _, err := e.store.SetItem(ctx, "alice@example.com", sdk.RosterItem{JID: "bob@example.com", Subscription: sdk.SubNone, Name: "in A"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetItem(ctx, "alice@example.com", sdk.RosterItem{JID: "carol@example.com", Subscription: sdk.SubNone, Name: "in B"}); err != nil {
		t.Fatal(err)
	}
	a := e.login("alice@example.com/pc")
	a.online("")
	roster := func(id string) string {
		t.Helper()
		a.send(`<iq type='get' id='` + id + `'><query xmlns='jabber:iq:roster'/></iq>`)
		for _, el := range a.rec.Take() {
			if el.Attr("id") == id {
				return string(el.AppendXML(nil, ""))
			}
		}
		t.Fatalf("no answer to roster get %s", id)
		return ""
	}
	if got := roster("r1"); !strings.Contains(got, "in A") {
		t.Fatalf("roster before the switch: %s", got)
	}

	next := *e.host
	next.Roster = Feature[RosterBackend]{Backend: b, On: true, Writable: true}
	next.OfflineLimit = 7
	// Requests race the swap (go test -race): each gets an answer from
	// one version or the other.
	var wg sync.WaitGroup
	other := e.login("bob@example.com/x")
	for i := range 50 {
		wg.Go(func() {
			el, _ := stanza.Parse(`<iq type='get' id='c` + string(rune('a'+i%26)) + `'><query xmlns='jabber:iq:roster'/></iq>`)
			el.SetAttr("from", other.s.JID().String())
			e.m.Stanza(ctx, other.s, el)
		})
	}
	e.m.SetHosts([]*Host{&next})
	wg.Wait()
	if got := roster("r2"); !strings.Contains(got, "in B") || strings.Contains(got, "in A") {
		t.Fatalf("roster after the switch: %s", got)
	}
	if h := e.m.Host("example.com"); h != &next || h.OfflineLimit != 7 {
		t.Fatal("Host does not return the new version")
	}
	if hs := e.m.Hosts(); len(hs) != 1 || hs[0] != &next {
		t.Fatalf("Hosts = %v", hs)
	}
	if e.m.router.Session(jid.MustParse("alice@example.com/pc")) == nil {
		t.Fatal("the session did not stay bound")
	}
	// A change through the session goes to B.
	a.send(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='dave@example.com' name='new'/></query></iq>`)
	a.rec.Take()
	st, err := b.GetRoster(ctx, "alice@example.com")
	if err != nil || len(st.Items) != 2 {
		t.Fatalf("B after a roster set: %+v, %v", st, err)
	}
	if st, _ := e.store.GetRoster(ctx, "alice@example.com"); len(st.Items) != 1 {
		t.Fatalf("A was written after the switch: %+v", st)
	}
}

// TestOnHostChange: hooks hear of each replaced host, after the new one
// is served.
func TestOnHostChange(t *testing.T) {
	e := newEnv(t)
	var got []string
	e.m.OnHostChange(func(old, new *Host) {
		if e.m.Host(new.Name) != new {
			t.Error("hook called before the new version is served")
		}
		got = append(got, old.Name+":"+new.Name)
	})
	e.m.SetHosts([]*Host{e.host}) // the same version: no change
	next := *e.host
	e.m.SetHosts([]*Host{&next})
	if len(got) != 1 || got[0] != "example.com:example.com" {
		t.Fatalf("hook calls: %v", got)
	}
}
