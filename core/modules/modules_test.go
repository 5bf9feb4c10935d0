package modules

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/auth"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/router/routertest"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	sqlbackend "github.com/koi-im/koi/plugins/sql"
	"github.com/koi-im/koi/plugins/sql/sqltest"
	"github.com/koi-im/koi/sdk"
)

// The module tests run the IM logic against the real sql backend on a
// temporary SQLite file; only the client connection is a recorder.

type recorder = routertest.Recorder

type namedStore struct{ *sqlbackend.Store }

func (namedStore) Name() string { return "sql" }

type env struct {
	t     testing.TB
	m     *Server
	r     *router.Router
	store *sqlbackend.Store
	host  *Host
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	st := sqltest.SQLite(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := st.CreateUser(ctx, "example.com", u, "pw-"+u); err != nil {
			t.Fatal(err)
		}
	}
	h := &Host{
		Name:           "example.com",
		Auth:           auth.NewChain("example.com", []auth.Backend{namedStore{st}}),
		Roster:         Feature[RosterBackend]{Backend: st, On: true, Writable: true},
		Offline:        Feature[sdk.Offline]{Backend: st, On: true, Writable: true},
		VCard:          Feature[VCardBackend]{Backend: st, On: true, Writable: true},
		Private:        Feature[PrivateBackend]{Backend: st, On: true, Writable: true},
		PasswordChange: true,
		OfflineLimit:   3,
	}
	rt := router.New()
	return &env{t: t, m: New(hclog.NewNullLogger(), rt, []*Host{h}, "test"), r: rt, store: st, host: h}
}

type client struct {
	e   *env
	s   *router.Session
	rec *recorder
}

func (e *env) login(full string) *client {
	rec := &recorder{}
	s, _ := e.r.Bind(jid.MustParse(full), rec)
	return &client{e: e, s: s, rec: rec}
}

// send handles a stanza as c2s would after stamping from.
func (c *client) send(x string) {
	c.e.t.Helper()
	el, err := stanza.Parse(x)
	if err != nil {
		c.e.t.Fatalf("bad test stanza %s: %v", x, err)
	}
	el.SetAttr("from", c.s.JID().String())
	c.e.m.Stanza(context.Background(), c.s, el)
}

// online makes c available and interested in its roster.
func (c *client) online(prio string) {
	c.send(`<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>`)
	c.send(`<presence><priority>` + prio + `</priority></presence>`)
	c.rec.Take()
}

func (c *client) logout() {
	if c.e.r.Unbind(c.s) {
		c.e.m.Closed(context.Background(), c.s)
	}
}

func find(els []*xmlstream.Element, match func(*xmlstream.Element) bool) *xmlstream.Element {
	for _, el := range els {
		if match(el) {
			return el
		}
	}
	return nil
}

func isPresence(typ, from string) func(*xmlstream.Element) bool {
	return func(el *xmlstream.Element) bool {
		return el.Local == "presence" && el.Attr("type") == typ && el.Attr("from") == from
	}
}

// pushItem returns the item of a roster push for contact, or nil.
func pushItem(els []*xmlstream.Element, contact string) *xmlstream.Element {
	for _, el := range els {
		if el.Local != "iq" || el.Attr("type") != "set" {
			continue
		}
		if q := el.Child(NSRoster, "query"); q != nil {
			if it := q.Child(NSRoster, "item"); it != nil && it.Attr("jid") == contact {
				return it
			}
		}
	}
	return nil
}

func (e *env) item(owner, contact string) (sdk.RosterItem, bool) {
	st, err := e.store.GetRoster(context.Background(), owner)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, it := range st.Items {
		if it.JID == contact {
			return it, true
		}
	}
	return sdk.RosterItem{}, false
}

func TestMutualSubscription(t *testing.T) {
	e := newEnv(t)
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	a.online("1")
	b.online("1")

	a.send(`<presence to='bob@example.com' type='subscribe'/>`)
	if it := pushItem(a.rec.Take(), "bob@example.com"); it == nil || it.Attr("ask") != "subscribe" || it.Attr("subscription") != "none" {
		t.Fatalf("alice's push after subscribe: %v", it)
	}
	if p := find(b.rec.Take(), isPresence("subscribe", "alice@example.com")); p == nil {
		t.Fatal("bob did not get alice's subscription request from her bare JID")
	}

	b.send(`<presence to='alice@example.com' type='subscribed'/>`)
	bgot := b.rec.Take()
	if it := pushItem(bgot, "alice@example.com"); it == nil || it.Attr("subscription") != "from" {
		t.Fatalf("bob's push after approving: %v", it)
	}
	agot := a.rec.Take()
	if it := pushItem(agot, "bob@example.com"); it == nil || it.Attr("subscription") != "to" || it.Attr("ask") != "" {
		t.Fatalf("alice's push after approval: %v", it)
	}
	if find(agot, isPresence("subscribed", "bob@example.com")) == nil {
		t.Fatal("alice did not get the subscribed notification")
	}
	if find(agot, isPresence("", "bob@example.com/phone")) == nil {
		t.Fatal("alice did not get bob's presence after the approval")
	}

	b.send(`<presence to='alice@example.com' type='subscribe'/>`)
	a.rec.Take()
	a.send(`<presence to='bob@example.com' type='subscribed'/>`)
	for _, pair := range [][2]string{{"alice@example.com", "bob@example.com"}, {"bob@example.com", "alice@example.com"}} {
		if it, ok := e.item(pair[0], pair[1]); !ok || it.Subscription != sdk.SubBoth || it.Ask {
			t.Fatalf("%s's item for %s = %+v, want both", pair[0], pair[1], it)
		}
	}
	b.rec.Take()
	a.rec.Take()

	// Presence flows both ways; unavailable on disconnect.
	a.send(`<presence><show>away</show></presence>`)
	if p := find(b.rec.Take(), isPresence("", "alice@example.com/pc")); p == nil || p.Child(xmlstream.NSClient, "show").Text() != "away" {
		t.Fatal("bob did not get alice's presence update")
	}
	a.logout()
	if find(b.rec.Take(), isPresence("unavailable", "alice@example.com/pc")) == nil {
		t.Fatal("bob did not get alice's unavailable presence on disconnect")
	}

	// A new login gets bob's presence without asking (probe answered).
	a2 := e.login("alice@example.com/laptop")
	a2.send(`<presence/>`)
	if find(a2.rec.Take(), isPresence("", "bob@example.com/phone")) == nil {
		t.Fatal("a new session did not learn bob's presence")
	}
}

func TestPreApproval(t *testing.T) {
	e := newEnv(t)
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	a.online("0")
	b.online("0")
	b.send(`<presence to='alice@example.com' type='subscribed'/>`)
	if it, ok := e.item("bob@example.com", "alice@example.com"); !ok || !it.Approved || it.Subscription != sdk.SubNone {
		t.Fatalf("pre-approval not stored: %+v", it)
	}
	if len(a.rec.Take()) != 0 {
		t.Fatal("a pre-approval must not be routed to the contact")
	}
	a.send(`<presence to='bob@example.com' type='subscribe'/>`)
	if find(a.rec.Take(), isPresence("subscribed", "bob@example.com")) == nil {
		t.Fatal("pre-approved request was not answered automatically")
	}
	if find(b.rec.Take(), isPresence("subscribe", "alice@example.com")) != nil {
		t.Fatal("a pre-approved request must not reach bob")
	}
	if it, _ := e.item("bob@example.com", "alice@example.com"); it.Subscription != sdk.SubFrom || it.Approved {
		t.Fatalf("bob's item after pre-approved subscribe: %+v", it)
	}
	if it, _ := e.item("alice@example.com", "bob@example.com"); it.Subscription != sdk.SubTo {
		t.Fatalf("alice's item: %+v", it)
	}
}

func TestPendingRequestDeliveredAtLogin(t *testing.T) {
	e := newEnv(t)
	a := e.login("alice@example.com/pc")
	a.online("0")
	a.send(`<presence to='carol@example.com' type='subscribe'><status>hi carol</status></presence>`)
	a.rec.Take()
	c := e.login("carol@example.com/tab")
	c.send(`<presence/>`)
	p := find(c.rec.Take(), isPresence("subscribe", "alice@example.com"))
	if p == nil || p.Child(xmlstream.NSClient, "status").Text() != "hi carol" {
		t.Fatalf("carol did not get the stored request at login: %v", p)
	}
	// Denying it tells alice and clears the pending state.
	c.send(`<presence to='alice@example.com' type='unsubscribed'/>`)
	if it := pushItem(a.rec.Take(), "carol@example.com"); it == nil || it.Attr("ask") != "" || it.Attr("subscription") != "none" {
		t.Fatalf("alice's item after denial: %v", it)
	}
	st, _ := e.store.GetRoster(context.Background(), "carol@example.com")
	if len(st.Pending) != 0 {
		t.Fatalf("pending request kept after denial: %+v", st.Pending)
	}
}

func TestSubscribeToUnknownUser(t *testing.T) {
	e := newEnv(t)
	a := e.login("alice@example.com/pc")
	a.online("0")
	a.send(`<presence to='nobody@example.com' type='subscribe'/>`)
	got := a.rec.Take()
	if find(got, isPresence("unsubscribed", "nobody@example.com")) == nil {
		t.Fatal("a request to an unknown user must be answered unsubscribed")
	}
	if it, _ := e.item("alice@example.com", "nobody@example.com"); it.Ask {
		t.Fatal("pending-out state kept for an unknown user")
	}
}

func TestRosterRemoveCancelsBothWays(t *testing.T) {
	e := newEnv(t)
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	a.online("0")
	b.online("0")
	a.send(`<presence to='bob@example.com' type='subscribe'/>`)
	b.send(`<presence to='alice@example.com' type='subscribed'/>`)
	b.send(`<presence to='alice@example.com' type='subscribe'/>`)
	a.send(`<presence to='bob@example.com' type='subscribed'/>`)
	a.rec.Take()
	b.rec.Take()
	a.send(`<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@example.com' subscription='remove'/></query></iq>`)
	agot := a.rec.Take()
	if it := pushItem(agot, "bob@example.com"); it == nil || it.Attr("subscription") != "remove" {
		t.Fatal("no removal push")
	}
	if find(agot, func(el *xmlstream.Element) bool { return el.Attr("id") == "rm" && el.Attr("type") == "result" }) == nil {
		t.Fatal("no result for the removal")
	}
	if it, ok := e.item("bob@example.com", "alice@example.com"); !ok || it.Subscription != sdk.SubNone {
		t.Fatalf("bob's item after alice removed him: %+v", it)
	}
	if find(b.rec.Take(), isPresence("unavailable", "alice@example.com/pc")) == nil {
		t.Fatal("bob did not see alice go unavailable when she cancelled his subscription")
	}
}

func TestRosterSetAndVersioning(t *testing.T) {
	e := newEnv(t)
	a1 := e.login("alice@example.com/one")
	a2 := e.login("alice@example.com/two")
	a1.online("0")
	a2.online("0")
	a1.send(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='Carol@Example.com' name='Carol'><group>Friends</group><group>Work</group></item></query></iq>`)
	for _, c := range []*client{a1, a2} {
		it := pushItem(c.rec.Take(), "carol@example.com")
		if it == nil || it.Attr("name") != "Carol" || len(it.Elements()) != 2 {
			t.Fatalf("resource %s: push = %v", c.s.JID(), it)
		}
	}
	a1.send(`<iq type='get' id='g1'><query xmlns='jabber:iq:roster'/></iq>`)
	res := find(a1.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "g1" })
	ver := res.Child(NSRoster, "query").Attr("ver")
	if ver == "" || ver == "0" {
		t.Fatalf("roster version = %q", ver)
	}
	a1.send(`<iq type='get' id='g2'><query xmlns='jabber:iq:roster' ver='` + ver + `'/></iq>`)
	res = find(a1.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "g2" })
	if res == nil || res.Attr("type") != "result" || res.FirstChild() != nil {
		t.Fatalf("get with the current version must return an empty result, got %v", res)
	}
	// A second edit moves the version on: its push carries the new
	// version, and a client at the old one gets something, not "current".
	a1.send(`<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='dave@example.com' name='Dave'/></query></iq>`)
	push := find(a1.rec.Take(), func(el *xmlstream.Element) bool { return pushItem([]*xmlstream.Element{el}, "dave@example.com") != nil })
	if push == nil {
		t.Fatal("no push for the second edit")
	}
	ver2 := push.Child(NSRoster, "query").Attr("ver")
	if ver2 == "" || ver2 == ver {
		t.Fatalf("version after a second edit = %q, want a new one (was %q)", ver2, ver)
	}
	a1.send(`<iq type='get' id='g3'><query xmlns='jabber:iq:roster' ver='` + ver + `'/></iq>`)
	res = find(a1.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "g3" })
	if res == nil || res.Attr("type") != "result" || res.FirstChild() == nil || res.FirstChild().Attr("ver") != ver2 {
		t.Fatalf("get with the old version: %v, want the roster at version %q", res, ver2)
	}
	a1.send(`<iq type='get' id='g4'><query xmlns='jabber:iq:roster' ver='` + ver2 + `'/></iq>`)
	res = find(a1.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "g4" })
	if res == nil || res.Attr("type") != "result" || res.FirstChild() != nil {
		t.Fatalf("get with the new version must return an empty result, got %v", res)
	}
	for _, bad := range []string{
		`<iq type='set' id='b1'><query xmlns='jabber:iq:roster'><item jid='x@example.com'/><item jid='y@example.com'/></query></iq>`,
		`<iq type='set' id='b1'><query xmlns='jabber:iq:roster'><item jid='x@example.com'><group>a</group><group>a</group></item></query></iq>`,
		`<iq type='set' id='b1'><query xmlns='jabber:iq:roster'><item jid='@@'/></query></iq>`,
	} {
		a1.send(bad)
		r := find(a1.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "b1" })
		if r == nil || r.Attr("type") != "error" {
			t.Fatalf("%s: want an error, got %v", bad, r)
		}
	}
}

func TestMessageDeliveryRules(t *testing.T) {
	e := newEnv(t)
	a := e.login("alice@example.com/pc")
	a.online("0")
	b1 := e.login("bob@example.com/low")
	b2 := e.login("bob@example.com/high")
	b1.online("1")
	b2.online("5")
	b1.rec.Take()

	a.send(`<message to='bob@example.com' type='chat' id='m1'><body>hi</body></message>`)
	if find(b2.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "m1" }) == nil {
		t.Fatal("chat to the bare JID must reach the highest-priority resource")
	}
	if find(b1.rec.Take(), func(el *xmlstream.Element) bool { return el.Local == "message" }) != nil {
		t.Fatal("chat to the bare JID must not reach a lower-priority resource")
	}
	a.send(`<message to='bob@example.com/low' type='chat' id='m2'><body>direct</body></message>`)
	if m := find(b1.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "m2" }); m == nil || m.Attr("from") != "alice@example.com/pc" {
		t.Fatal("message to a full JID must reach that resource with the sender's full JID")
	}
	a.send(`<message to='bob@example.com/gone' type='chat' id='m3'><body>?</body></message>`)
	if find(b2.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "m3" }) == nil {
		t.Fatal("chat to an unknown resource must be handled as to the bare JID")
	}
	a.send(`<message to='bob@example.com' type='groupchat' id='m4'><body>x</body></message>`)
	if r := find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "m4" }); r == nil || stanza.ErrorFrom(r).Condition != "service-unavailable" {
		t.Fatal("groupchat to a bare JID must bounce with service-unavailable")
	}
	a.send(`<message to='nobody@example.com' id='m5'><body>x</body></message>`)
	if r := find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "m5" }); r == nil || stanza.ErrorFrom(r).Condition != "service-unavailable" {
		t.Fatal("message to an unknown user must bounce with service-unavailable")
	}
	a.send(`<message to='someone@remote.example' id='m6'><body>x</body></message>`)
	if r := find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "m6" }); r == nil || stanza.ErrorFrom(r).Condition != "remote-server-not-found" {
		t.Fatal("message to another domain must bounce with remote-server-not-found")
	}
}

func TestOfflineStorage(t *testing.T) {
	e := newEnv(t)
	a := e.login("alice@example.com/pc")
	a.online("0")
	for i := 0; i < 4; i++ {
		a.send(`<message to='carol@example.com' type='chat' id='o` + string(rune('0'+i)) + `'><body>msg</body></message>`)
	}
	a.send(`<message to='carol@example.com' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	got := a.rec.Take()
	if r := find(got, func(el *xmlstream.Element) bool { return el.Attr("id") == "o3" }); r == nil || stanza.ErrorFrom(r).Condition != "service-unavailable" {
		t.Fatal("the message over the offline limit must bounce")
	}
	if len(got) != 1 {
		t.Fatalf("only the fourth message should bounce, got %d replies", len(got))
	}
	c := e.login("carol@example.com/tab")
	c.send(`<presence><priority>-1</priority></presence>`)
	if find(c.rec.Take(), func(el *xmlstream.Element) bool { return el.Local == "message" }) != nil {
		t.Fatal("a negative-priority session must not receive offline messages")
	}
	c.send(`<presence/>`)
	var msgs []*xmlstream.Element
	for _, el := range c.rec.Take() {
		if el.Local == "message" {
			msgs = append(msgs, el)
		}
	}
	if len(msgs) != 3 {
		t.Fatalf("got %d offline messages, want 3", len(msgs))
	}
	for i, m := range msgs {
		if m.Attr("id") != "o"+string(rune('0'+i)) || m.Child(stanza.NSDelay, "delay") == nil {
			t.Fatalf("offline message %d: %s", i, m.String())
		}
	}
	n, _ := e.store.Count(context.Background(), "carol@example.com")
	if n != 0 {
		t.Fatalf("%d messages left after delivery", n)
	}
}

func TestIQRouting(t *testing.T) {
	e := newEnv(t)
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	cases := []struct {
		iq, cond string
	}{
		{`<iq type='get' id='x' to='example.com'><query xmlns='urn:unknown'/></iq>`, "service-unavailable"},
		{`<iq type='get' id='x' to='bob@example.com'><query xmlns='jabber:iq:roster'/></iq>`, "forbidden"},
		{`<iq type='get' id='x' to='nobody@example.com'><vCard xmlns='vcard-temp'/></iq>`, "service-unavailable"},
		{`<iq type='get' id='x' to='bob@example.com/nope'><ping xmlns='urn:xmpp:ping'/></iq>`, "service-unavailable"},
		{`<iq type='set' id='x' to='bob@example.com'><vCard xmlns='vcard-temp'><FN>B</FN></vCard></iq>`, "forbidden"},
		{`<iq type='get' id='x'><query xmlns='jabber:iq:private'><x xmlns='jabber:client'/></query></iq>`, "not-acceptable"},
		{`<iq type='get' id='x' to='remote.example'><ping xmlns='urn:xmpp:ping'/></iq>`, "remote-server-not-found"},
	}
	for _, tc := range cases {
		a.send(tc.iq)
		r := find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "x" })
		if r == nil || r.Attr("type") != "error" || stanza.ErrorFrom(r).Condition != tc.cond {
			t.Errorf("%s: got %v, want %s", tc.iq, r, tc.cond)
		}
	}
	// An IQ to a full JID reaches that client, and its result comes back.
	a.send(`<iq type='get' id='v1' to='bob@example.com/phone'><query xmlns='jabber:iq:version'/></iq>`)
	if r := find(b.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "v1" }); r == nil || r.Attr("from") != "alice@example.com/pc" {
		t.Fatal("IQ to a full JID not routed")
	}
	b.send(`<iq type='result' id='v1' to='alice@example.com/pc'/>`)
	if find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "v1" && el.Attr("type") == "result" }) == nil {
		t.Fatal("IQ result not routed back")
	}
}

func TestVCardAndPrivate(t *testing.T) {
	e := newEnv(t)
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	a.send(`<iq type='set' id='v'><vCard xmlns='vcard-temp'><FN>Alice Ä</FN><NICKNAME>al</NICKNAME></vCard></iq>`)
	a.rec.Take()
	b.send(`<iq type='get' id='g' to='alice@example.com'><vCard xmlns='vcard-temp'/></iq>`)
	r := find(b.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "g" })
	if r == nil || r.Attr("type") != "result" || r.Child("vcard-temp", "vCard").Child("vcard-temp", "FN").Text() != "Alice Ä" {
		t.Fatalf("vCard get: %v", r)
	}
	a.send(`<iq type='set' id='p'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'><color>blue</color></prefs></query></iq>`)
	a.rec.Take()
	a.send(`<iq type='get' id='p2'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query></iq>`)
	r = find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "p2" })
	if r == nil || !strings.Contains(r.String(), "<color>blue</color>") {
		t.Fatalf("private get: %v", r)
	}
	b.send(`<iq type='get' id='p3' to='alice@example.com'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query></iq>`)
	if r := find(b.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "p3" }); r == nil || stanza.ErrorFrom(r).Condition != "forbidden" {
		t.Fatal("another user's private storage must be forbidden")
	}
}

func TestDirectedPresence(t *testing.T) {
	e := newEnv(t)
	a := e.login("alice@example.com/pc")
	c := e.login("carol@example.com/tab")
	a.online("0")
	c.online("0")
	a.send(`<presence to='carol@example.com/tab'><status>psst</status></presence>`)
	if find(c.rec.Take(), isPresence("", "alice@example.com/pc")) == nil {
		t.Fatal("directed presence not delivered")
	}
	a.logout()
	if find(c.rec.Take(), isPresence("unavailable", "alice@example.com/pc")) == nil {
		t.Fatal("a directed-presence target must get the unavailable presence")
	}
}

func TestPasswordChangeAndRemoval(t *testing.T) {
	e := newEnv(t)
	e.host.Registration = true
	a := e.login("alice@example.com/pc")
	a.send(`<iq type='set' id='pw'><query xmlns='jabber:iq:register'><username>alice</username><password>new-secret</password></query></iq>`)
	if r := find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "pw" }); r == nil || r.Attr("type") != "result" {
		t.Fatalf("password change: %v", r)
	}
	ok, err := e.store.CheckPassword(context.Background(), "example.com", "alice", "new-secret")
	if err != nil || !ok {
		t.Fatal("new password does not work")
	}
	a.send(`<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>`)
	if r := find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "rm" }); r == nil || r.Attr("type") != "result" {
		t.Fatalf("removal: %v", r)
	}
	if a.rec.Closed() != "not-authorized" {
		t.Fatalf("removed account's stream closed with %q", a.rec.Closed())
	}
	if ok, _ := e.store.UserExists(context.Background(), "example.com", "alice"); ok {
		t.Fatal("account still exists")
	}
}
