package blocking

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/auth"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/router/routertest"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	sqlbackend "github.com/koi-im/koi/plugins/sql"
	"github.com/koi-im/koi/plugins/sql/sqltest"
	"github.com/koi-im/koi/sdk"
)

// The module tests run the blocking command inside the real module server
// against the real sql backend on a temporary SQLite file; only the client
// connections are recorders.

type recorder = routertest.Recorder

type namedStore struct{ *sqlbackend.Store }

func (namedStore) Name() string { return "sql" }

type env struct {
	t     *testing.T
	m     *modules.Server
	r     *router.Router
	b     *Module
	store *sqlbackend.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st := sqltest.SQLite(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := st.CreateUser(ctx, "example.com", u, "pw-"+u); err != nil {
			t.Fatal(err)
		}
	}
	// alice and bob see each other's presence.
	for _, p := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
		it := sdk.RosterItem{JID: p[1] + "@example.com", Subscription: sdk.SubBoth}
		if _, err := st.SetItem(ctx, p[0]+"@example.com", it); err != nil {
			t.Fatal(err)
		}
	}
	return newNode(t, st)
}

// newNode is a module server with the blocking command over st: one node
// of a cluster when several share st.
func newNode(t *testing.T, st *sqlbackend.Store) *env {
	h := &modules.Host{
		Name:      "example.com",
		Auth:      auth.NewChain("example.com", []auth.Backend{namedStore{st}}),
		Roster:    modules.Feature[modules.RosterBackend]{Backend: st, On: true, Writable: true},
		VCard:     modules.Feature[modules.VCardBackend]{Backend: st, On: true, Writable: true},
		Offline:   modules.Feature[sdk.Offline]{Backend: st, On: true, Writable: true},
		Blocklist: modules.Feature[modules.BlocklistBackend]{Backend: st, On: true, Writable: true},
	}
	rt := router.New()
	m := modules.New(hclog.NewNullLogger(), rt, []*modules.Host{h}, "test")
	b := Register(hclog.NewNullLogger(), m, rt)
	return &env{t: t, m: m, r: rt, b: b, store: st}
}

type client struct {
	e   *env
	s   *router.Session
	rec *recorder
}

// online binds full and sends initial presence.
func (e *env) online(full string) *client {
	rec := &recorder{}
	s, _ := e.r.Bind(jid.MustParse(full), rec)
	c := &client{e: e, s: s, rec: rec}
	c.send(`<presence/>`)
	return c
}

func (c *client) send(x string) {
	c.e.t.Helper()
	el, err := stanza.Parse(x)
	if err != nil {
		c.e.t.Fatalf("bad test stanza %s: %v", x, err)
	}
	el.SetAttr("from", c.s.JID().String())
	c.e.m.Stanza(context.Background(), c.s, el)
}

func (c *client) logout() {
	if c.e.r.Unbind(c.s) {
		c.e.m.Closed(context.Background(), c.s)
	}
}

// iq sends an IQ and returns the reply to it, leaving whatever else came
// for take.
func (c *client) iq(x string) *xmlstream.Element {
	c.e.t.Helper()
	c.send(x)
	el, _ := stanza.Parse(x)
	var reply *xmlstream.Element
	var rest []*xmlstream.Element
	for _, got := range c.rec.Take() {
		if reply == nil && got.Local == "iq" && got.Attr("id") == el.Attr("id") && got.Attr("type") != "set" {
			reply = got
		} else {
			rest = append(rest, got)
		}
	}
	c.rec.Unread(rest)
	if reply == nil {
		c.e.t.Fatalf("no reply to %s", x)
	}
	return reply
}

func (c *client) wantResult(x string) *xmlstream.Element {
	c.e.t.Helper()
	r := c.iq(x)
	if r.Attr("type") != "result" {
		c.e.t.Fatalf("%s: got %s, want a result", x, r)
	}
	return r
}

// wantNothing fails if c received anything.
func (c *client) wantNothing(what string) {
	c.e.t.Helper()
	if got := c.rec.Take(); len(got) > 0 {
		c.e.t.Errorf("%s: %s received %d stanzas, first %s", what, c.s.JID(), len(got), got[0])
	}
}

// list returns the JIDs of a blocklist, blocklist push or result.
func items(el *xmlstream.Element) []string {
	var out []string
	for _, q := range el.Elements() {
		for _, it := range q.Elements() {
			out = append(out, it.Attr("jid"))
		}
	}
	return out
}

func (c *client) blocklist() []string {
	c.e.t.Helper()
	return items(c.wantResult(`<iq type='get' id='bl'><blocklist xmlns='urn:xmpp:blocking'/></iq>`))
}

func hasError(el *xmlstream.Element, cond string) bool {
	e := el.Child(el.Space, "error")
	return el.Attr("type") == "error" && e != nil && e.Child(stanza.NSStanzas, cond) != nil
}

func TestBlockingCommand(t *testing.T) {
	e := newEnv(t)
	alice := e.online("alice@example.com/a")
	alice2 := e.online("alice@example.com/b")
	alice3 := e.online("alice@example.com/c") // never asks for the list: no pushes
	bob := e.online("bob@example.com/phone")
	carol := e.online("carol@example.com/x")
	for _, c := range []*client{alice, alice2, alice3, bob, carol} {
		c.rec.Take()
	}

	if got := alice.blocklist(); len(got) != 0 {
		t.Fatalf("initial blocklist %q, want empty", got)
	}
	alice2.blocklist()

	alice.wantResult(`<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='bob@example.com'/></block></iq>`)
	for _, c := range []*client{alice, alice2} {
		push := c.rec.Take()
		if len(push) != 1 || push[0].Attr("type") != "set" || push[0].Child("urn:xmpp:blocking", "block") == nil ||
			strings.Join(items(push[0]), " ") != "bob@example.com" {
			t.Errorf("%s: push %v, want one block of bob", c.s.JID(), push)
		}
	}
	alice3.wantNothing("block without having asked for the list")
	// bob had alice's presence: he learns each of her resources left.
	if got := bob.rec.Take(); len(got) != 3 || got[0].Attr("type") != "unavailable" {
		t.Errorf("bob got %v, want alice's three resources unavailable", got)
	}

	// Nothing from bob reaches alice.
	bob.send(`<message to='alice@example.com' type='chat' id='m1'><body>hi</body></message>`)
	bob.send(`<message to='alice@example.com/a' type='chat' id='m2'><body>hi</body></message>`)
	bob.send(`<presence to='alice@example.com/a'/>`)
	bob.send(`<presence><show>away</show></presence>`)
	// The messages bounce with service-unavailable, as from an account
	// without storage (XEP-0191 §3.3); the directed presence is dropped;
	// bob's broadcast reaches only himself.
	msgs := bob.rec.Take()
	if len(msgs) != 3 || !hasError(msgs[0], "service-unavailable") || msgs[0].Attr("id") != "m1" ||
		!hasError(msgs[1], "service-unavailable") || msgs[1].Attr("id") != "m2" ||
		msgs[2].Local != "presence" || msgs[2].Attr("to") != "bob@example.com/phone" {
		t.Errorf("bob got %v, want his two messages bounced and his own broadcast", msgs)
	}
	bob.wantNothing("bob's presence to alice") // dropped silently
	for _, x := range []string{
		`<iq type='get' id='v1' to='alice@example.com/a'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<iq type='get' id='v2' to='alice@example.com'><vCard xmlns='vcard-temp'/></iq>`,
	} {
		if r := bob.iq(x); !hasError(r, "service-unavailable") {
			t.Errorf("bob's %s: got %s, want service-unavailable", x, r)
		}
	}
	for _, c := range []*client{alice, alice2, alice3} {
		c.wantNothing("stanzas from blocked bob")
	}

	// Nothing from alice reaches bob, and she is told why.
	alice.send(`<message to='bob@example.com' type='chat' id='m3'><body>hi</body></message>`)
	got := alice.rec.Take()
	if len(got) != 1 || !hasError(got[0], "not-acceptable") ||
		got[0].Child(got[0].Space, "error").Child(NSErrors, "blocked") == nil {
		t.Errorf("alice's message to bob: got %v, want not-acceptable with <blocked/>", got)
	}
	if r := alice.iq(`<iq type='get' id='p1' to='bob@example.com/phone'><ping xmlns='urn:xmpp:ping'/></iq>`); !hasError(r, "not-acceptable") {
		t.Errorf("alice's IQ to bob: got %s, want not-acceptable", r)
	}
	alice.send(`<presence><show>dnd</show></presence>`)
	alice.rec.Take()
	bob.wantNothing("alice's stanzas to bob")

	// carol is unaffected.
	carol.send(`<message to='alice@example.com/a' id='m4'><body>hi</body></message>`)
	if got := alice.rec.Take(); len(got) != 1 || got[0].Local != "message" {
		t.Errorf("carol's message: alice got %v", got)
	}

	// A domain covers every user of it, but never the owner herself.
	alice.wantResult(`<iq type='set' id='b2'><block xmlns='urn:xmpp:blocking'><item jid='example.com'/></block></iq>`)
	alice.rec.Take()
	alice2.rec.Take()
	carol.send(`<message to='alice@example.com/a' id='m5'><body>hi</body></message>`)
	alice.wantNothing("a message from a blocked domain")
	alice2.send(`<message to='alice@example.com/a' id='m6'><body>me</body></message>`)
	if got := alice.rec.Take(); len(got) != 1 {
		t.Errorf("alice's message to herself: got %v", got)
	}
	if got := alice.blocklist(); strings.Join(got, " ") != "bob@example.com example.com" {
		t.Errorf("blocklist %q", got)
	}

	// The list outlives the sessions.
	for _, c := range []*client{alice, alice2, alice3} {
		c.logout()
	}
	bob.rec.Take()
	alice = e.online("alice@example.com/again")
	if got := alice.blocklist(); strings.Join(got, " ") != "bob@example.com example.com" {
		t.Errorf("blocklist after logging in again %q", got)
	}
	bob.wantNothing("alice's new session's presence")

	// Unblocking the domain leaves bob blocked by his own item.
	alice.wantResult(`<iq type='set' id='u0'><unblock xmlns='urn:xmpp:blocking'><item jid='example.com'/></unblock></iq>`)
	alice.rec.Take()
	bob.wantNothing("unblocking the domain")
	carol.send(`<message to='alice@example.com/again' id='m9'><body>hi</body></message>`)
	if got := alice.rec.Take(); len(got) != 1 {
		t.Errorf("carol's message after the domain's unblock: alice got %v", got)
	}

	// Unblocking bob: he gets alice's presence again (she has a subscription
	// from him) and she gets his.
	alice.wantResult(`<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'><item jid='bob@example.com'/></unblock></iq>`)
	if got := alice.rec.Take(); find(got, "presence", "bob@example.com/phone") == nil || find(got, "iq", "") == nil {
		t.Errorf("alice after unblocking got %v, want the push and bob's presence", got)
	}
	if got := bob.rec.Take(); find(got, "presence", "alice@example.com/again") == nil {
		t.Errorf("bob after unblocking got %v, want alice's presence", got)
	}
	bob.send(`<message to='alice@example.com' type='chat' id='m7'><body>hi</body></message>`)
	if got := alice.rec.Take(); len(got) != 1 || got[0].Local != "message" {
		t.Errorf("bob's message after unblock: alice got %v", got)
	}

	// Unblock all: an empty unblock.
	alice.wantResult(`<iq type='set' id='b3'><block xmlns='urn:xmpp:blocking'><item jid='carol@example.com'/><item jid='x.example'/></block></iq>`)
	alice.rec.Take()
	alice.wantResult(`<iq type='set' id='u2'><unblock xmlns='urn:xmpp:blocking'/></iq>`)
	if got := alice.rec.Take(); len(got) != 1 || got[0].Child(NS, "unblock") == nil || len(items(got[0])) != 0 {
		t.Errorf("push of unblock-all %v", got)
	}
	if got := alice.blocklist(); len(got) != 0 {
		t.Errorf("blocklist after unblock-all %q", got)
	}
	carol.send(`<message to='alice@example.com/again' id='m8'><body>hi</body></message>`)
	if got := alice.rec.Take(); len(got) != 1 {
		t.Errorf("carol's message after unblock-all: alice got %v", got)
	}
	if got, err := e.store.GetBlocklist(context.Background(), "alice@example.com"); err != nil || len(got) != 0 {
		t.Errorf("stored list %q, %v", got, err)
	}
}

// A user who is offline is still protected: the list is read from the
// backend, and a blocked sender's message is not stored for later.
func TestBlockedWhileOffline(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.store.Block(ctx, "alice@example.com", []string{"bob@example.com"}); err != nil {
		t.Fatal(err)
	}
	bob := e.online("bob@example.com/b")
	carol := e.online("carol@example.com/c")
	bob.send(`<message to='alice@example.com' type='chat'><body>stored?</body></message>`)
	carol.send(`<message to='alice@example.com' type='chat'><body>stored</body></message>`)
	if n, err := e.store.Count(ctx, "alice@example.com"); err != nil || n != 1 {
		t.Errorf("offline messages for alice: %d, %v; want only carol's", n, err)
	}
	alice := e.online("alice@example.com/a")
	got := alice.rec.Take()
	if m := find(got, "message", ""); m == nil || !strings.Contains(m.String(), "carol@") || len(got) != 2 {
		t.Errorf("alice got %v, want her own presence and carol's message", got)
	}
}

func find(els []*xmlstream.Element, local, from string) *xmlstream.Element {
	for _, el := range els {
		if el.Local == local && (from == "" || el.Attr("from") == from) {
			return el
		}
	}
	return nil
}

func TestBlockingRequests(t *testing.T) {
	e := newEnv(t)
	alice := e.online("alice@example.com/a")
	bob := e.online("bob@example.com/b")
	alice.rec.Take()
	for _, c := range []struct{ x, cond string }{
		{`<iq type='set' id='1'><block xmlns='urn:xmpp:blocking'/></iq>`, "bad-request"},
		{`<iq type='set' id='2'><block xmlns='urn:xmpp:blocking'><item jid='@@'/></block></iq>`, "jid-malformed"},
		{`<iq type='set' id='3'><block xmlns='urn:xmpp:blocking'><item/></block></iq>`, "jid-malformed"},
		{`<iq type='get' id='4'><block xmlns='urn:xmpp:blocking'/></iq>`, "bad-request"},
	} {
		if r := alice.iq(c.x); !hasError(r, c.cond) {
			t.Errorf("%s: got %s, want %s", c.x, r, c.cond)
		}
	}
	// Another user's list is not for reading.
	if r := bob.iq(`<iq type='get' id='5' to='alice@example.com'><blocklist xmlns='urn:xmpp:blocking'/></iq>`); !hasError(r, "service-unavailable") {
		t.Errorf("reading alice's list: got %s", r)
	}
	r := alice.wantResult(`<iq type='get' id='d' to='example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if !strings.Contains(r.String(), `var="urn:xmpp:blocking"`) && !strings.Contains(r.String(), `var='urn:xmpp:blocking'`) {
		t.Errorf("disco#info does not advertise urn:xmpp:blocking: %s", r)
	}
	// JIDs are stored normalised.
	alice.wantResult(`<iq type='set' id='6'><block xmlns='urn:xmpp:blocking'><item jid='Dave@Example.ORG/Home'/></block></iq>`)
	if got := alice.blocklist(); strings.Join(got, " ") != "dave@example.org/Home" {
		t.Errorf("blocklist %q", got)
	}
}
