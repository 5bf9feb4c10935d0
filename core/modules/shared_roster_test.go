package modules

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// groupRoster is a read-only roster computed from groups the way the ldap
// plugin computes it from a directory (plugins/ldap, tested there against
// slapd and Samba AD): the members of a group see each other, subscribed
// both ways, in a roster group named after it. It is the fixture for the
// merge logic only.
type groupRoster struct {
	mu     sync.Mutex
	groups map[string][]string // group name -> local parts
	err    error
}

func (g *groupRoster) GetRoster(_ context.Context, owner string) (sdk.RosterState, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return sdk.RosterState{}, g.err
	}
	local, host, _ := strings.Cut(owner, "@")
	items := map[string]*sdk.RosterItem{}
	var names []string
	for name := range g.groups {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		members := g.groups[name]
		if !slices.Contains(members, local) {
			continue
		}
		for _, m := range members {
			if m == local {
				continue
			}
			it := items[m]
			if it == nil {
				it = &sdk.RosterItem{JID: m + "@" + host, Name: "Dir " + m, Subscription: sdk.SubBoth}
				items[m] = it
			}
			it.Groups = append(it.Groups, name)
		}
	}
	st := sdk.RosterState{Version: "0"}
	for _, it := range items {
		st.Items = append(st.Items, *it)
	}
	slices.SortFunc(st.Items, func(a, b sdk.RosterItem) int { return strings.Compare(a.JID, b.JID) })
	if len(st.Items) > 0 {
		st.Version = fmt.Sprintf("d%d", len(st.Items))
	}
	return st, nil
}

func (g *groupRoster) set(name string, members ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.groups[name] = members
}

// newSharedEnv is newEnv with a shared roster: alice, bob and carol are in
// the directory group Everyone.
func newSharedEnv(t *testing.T) (*env, *groupRoster) {
	e := newEnv(t)
	g := &groupRoster{groups: map[string][]string{"Everyone": {"alice", "bob", "carol"}}}
	e.host.SharedRoster = Feature[sdk.Roster]{Backend: g, On: true}
	return e, g
}

// rosterGet returns the items of a roster get, by JID.
func (c *client) rosterGet(id string) (ver string, items map[string]*xmlstream.Element) {
	c.e.t.Helper()
	c.send(`<iq type='get' id='` + id + `'><query xmlns='jabber:iq:roster'/></iq>`)
	res := find(c.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == id })
	if res == nil || res.Attr("type") != "result" {
		c.e.t.Fatalf("roster get: %v", res)
	}
	q := res.Child(NSRoster, "query")
	items = map[string]*xmlstream.Element{}
	for _, it := range q.Elements() {
		items[it.Attr("jid")] = it
	}
	return q.Attr("ver"), items
}

func groupsOf(it *xmlstream.Element) []string {
	var gs []string
	for _, g := range it.Elements() {
		gs = append(gs, g.Text())
	}
	slices.Sort(gs)
	return gs
}

func errorCondition(el *xmlstream.Element) string {
	if el == nil || el.Attr("type") != "error" {
		return ""
	}
	if e := el.Child(xmlstream.NSClient, "error"); e != nil {
		for _, c := range e.Elements() {
			if c.Local != "text" {
				return c.Local
			}
		}
	}
	return ""
}

func TestSharedRosterMerge(t *testing.T) {
	e, _ := newSharedEnv(t)
	ctx := context.Background()
	// alice's own roster: bob, subscribed to, with her own name and group.
	if _, err := e.store.SetItem(ctx, "alice@example.com", sdk.RosterItem{
		JID: "bob@example.com", Name: "Bobby", Subscription: sdk.SubTo, Groups: []string{"Friends"},
	}); err != nil {
		t.Fatal(err)
	}
	a := e.login("alice@example.com/pc")
	ver, items := a.rosterGet("g1")
	if len(items) != 2 {
		t.Fatalf("alice's roster: %v", items)
	}
	bob, carol := items["bob@example.com"], items["carol@example.com"]
	if bob.Attr("subscription") != "both" || bob.Attr("name") != "Bobby" || !slices.Equal(groupsOf(bob), []string{"Everyone", "Friends"}) {
		t.Errorf("merged bob: %v", bob)
	}
	if carol.Attr("subscription") != "both" || carol.Attr("name") != "Dir carol" || !slices.Equal(groupsOf(carol), []string{"Everyone"}) {
		t.Errorf("shared carol: %v", carol)
	}
	if !strings.Contains(ver, "~") {
		t.Errorf("version %q does not cover the shared part", ver)
	}
	// The personal roster keeps what it had; nothing shared leaked into it.
	if it, _ := e.item("alice@example.com", "bob@example.com"); it.Subscription != sdk.SubTo || !slices.Equal(it.Groups, []string{"Friends"}) {
		t.Errorf("alice's stored item for bob: %+v", it)
	}
	if _, ok := e.item("alice@example.com", "carol@example.com"); ok {
		t.Error("the shared contact carol was written to alice's own roster")
	}
}

// Shared contacts count for presence: broadcasts reach them and probes
// answer, both ways, with no subscription stored anywhere.
func TestSharedRosterPresence(t *testing.T) {
	e, _ := newSharedEnv(t)
	a := e.login("alice@example.com/pc")
	c := e.login("carol@example.com/phone")
	a.online("1")
	c.send(`<presence/>`)
	if find(c.rec.Take(), isPresence("", "alice@example.com/pc")) == nil {
		t.Error("carol's initial presence did not bring alice's (probe)")
	}
	if find(a.rec.Take(), isPresence("", "carol@example.com/phone")) == nil {
		t.Error("alice did not get carol's broadcast")
	}
	c.logout()
	if find(a.rec.Take(), isPresence("unavailable", "carol@example.com/phone")) == nil {
		t.Error("alice did not get carol's unavailable presence")
	}
	// A subscription request between shared contacts is already granted:
	// nobody is asked, nothing waits.
	b := e.login("bob@example.com/x")
	b.online("0")
	a.rec.Take()
	b.send(`<presence to='alice@example.com' type='subscribe'/>`)
	if find(a.rec.Take(), isPresence("subscribe", "bob@example.com")) != nil {
		t.Error("alice was asked to approve a shared contact")
	}
	if st, err := e.store.GetRoster(context.Background(), "alice@example.com"); err != nil || len(st.Pending) != 0 || len(st.Items) != 0 {
		t.Errorf("alice's own roster after bob's request: %+v, %v", st, err)
	}
	// Cancelling a shared subscription changes nothing stored.
	a.send(`<presence to='bob@example.com' type='unsubscribe'/>`)
	if _, ok := e.item("alice@example.com", "bob@example.com"); ok {
		t.Error("unsubscribe from a shared contact wrote alice's own roster")
	}
	_, items := a.rosterGet("g2")
	if items["bob@example.com"].Attr("subscription") != "both" {
		t.Errorf("bob after unsubscribe: %v", items["bob@example.com"])
	}
}

func TestSharedRosterChanges(t *testing.T) {
	e, g := newSharedEnv(t)
	a := e.login("alice@example.com/pc")
	a.online("0")
	// Removing a shared contact is not allowed.
	a.send(`<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='carol@example.com' subscription='remove'/></query></iq>`)
	res := find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "r1" })
	if got := errorCondition(res); got != "not-allowed" {
		t.Fatalf("removing a shared contact: %v", res)
	}
	// Renaming one is the user's business: it goes to the personal roster.
	a.send(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='carol@example.com' name='CC'><group>Everyone</group><group>Close</group></item></query></iq>`)
	got := a.rec.Take()
	if res := find(got, func(el *xmlstream.Element) bool { return el.Attr("id") == "s1" }); res == nil || res.Attr("type") != "result" {
		t.Fatalf("renaming a shared contact: %v", res)
	}
	if it := pushItem(got, "carol@example.com"); it == nil || it.Attr("name") != "CC" || it.Attr("subscription") != "both" {
		t.Fatalf("push after the rename: %v", it)
	}
	if it, ok := e.item("alice@example.com", "carol@example.com"); !ok || it.Name != "CC" || it.Subscription != sdk.SubNone {
		t.Fatalf("stored personal item: %+v", it)
	}
	// A personal contact is still the user's to remove.
	a.send(`<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='dave@example.com'/></query></iq>`)
	a.send(`<iq type='set' id='r2'><query xmlns='jabber:iq:roster'><item jid='dave@example.com' subscription='remove'/></query></iq>`)
	if res := find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "r2" }); res == nil || res.Attr("type") != "result" {
		t.Fatalf("removing a personal contact: %v", res)
	}
	// Directory changes show at the next login.
	ver1, _ := a.rosterGet("g1")
	a.logout()
	g.set("Everyone", "alice", "bob")
	a = e.login("alice@example.com/pc2")
	ver2, items := a.rosterGet("g2")
	if ver1 == ver2 {
		t.Errorf("version %q unchanged after the directory changed", ver1)
	}
	if it := items["carol@example.com"]; it == nil || it.Attr("subscription") != "none" || it.Attr("name") != "CC" {
		t.Errorf("carol, no longer shared, is alice's personal contact again: %v", it)
	}
}

// A host whose roster is only the directory's: reads work, writes do not.
func TestSharedRosterOnly(t *testing.T) {
	e, _ := newSharedEnv(t)
	e.host.Roster = Feature[RosterBackend]{}
	a := e.login("alice@example.com/pc")
	if _, items := a.rosterGet("g1"); len(items) != 2 {
		t.Fatalf("shared-only roster: %v", items)
	}
	a.send(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='dave@example.com'/></query></iq>`)
	if res := find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "s1" }); errorCondition(res) != "not-allowed" {
		t.Fatalf("roster set on a read-only roster: %v", res)
	}
}

// A directory that cannot answer leaves the personal roster working.
func TestSharedRosterUnavailable(t *testing.T) {
	e, g := newSharedEnv(t)
	g.err = fmt.Errorf("%w: directory down", sdk.ErrUnavailable)
	if _, err := e.store.SetItem(context.Background(), "alice@example.com", sdk.RosterItem{JID: "bob@example.com", Subscription: sdk.SubNone}); err != nil {
		t.Fatal(err)
	}
	a := e.login("alice@example.com/pc")
	if _, items := a.rosterGet("g1"); len(items) != 1 || items["bob@example.com"] == nil {
		t.Fatalf("roster with the directory down: %v", items)
	}
}
