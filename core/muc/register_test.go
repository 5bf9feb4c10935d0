package muc

import (
	"slices"
	"testing"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/xmlstream"
)

// registerIQ sends a jabber:iq:register IQ of type typ with body to room
// from j, and returns the answer.
func registerIQ(n *testNet, j, room, typ, body string) *xmlstream.Element {
	n.send(j, `<iq type='`+typ+`' id='reg' to='`+room+`'><query xmlns='jabber:iq:register'>`+body+`</query></iq>`)
	for _, el := range n.take(j) {
		if el.Local == "iq" {
			return el
		}
	}
	n.t.Fatalf("no answer to a registration %s from %s", typ, j)
	return nil
}

func registerForm(nick string) string {
	return `<x xmlns='jabber:x:data' type='submit'>` +
		`<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>` +
		`<field var='muc#register_roomnick'><value>` + nick + `</value></field></x>`
}

// reservedNickOf asks the room for j's reserved nickname (XEP-0045 §7.12).
func reservedNickOf(t *testing.T, n *testNet, j, room string) string {
	t.Helper()
	n.send(j, `<iq type='get' id='rn' to='`+room+`'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>`)
	r := n.one(j)
	q := r.Child(NSDiscoInfo, "query")
	if r.Attr("type") != "result" || q == nil || q.Attr("node") != "x-roomuser-item" {
		t.Fatalf("reserved nickname: %s", r)
	}
	if id := q.Child(NSDiscoInfo, "identity"); id != nil {
		return id.Attr("name")
	}
	return ""
}

// TestRegister: a member registers a nickname with a room (XEP-0045
// §7.10), which then is theirs: reported on a get and on the
// x-roomuser-item node, refused to others; the unaffiliated and the
// banned may not register; removing the registration ends a membership.
func TestRegister(t *testing.T) {
	h := newRestartable(t)
	const room = "club@conference.example.com"
	n := h.start(nil)
	alice, bob, carol, eve := n.user("alice@example.com/pc"), n.user("bob@example.com/phone"), n.user("carol@example.com/x"), n.user("eve@example.net/x")
	n.create(alice, room+"/Alice")
	for _, item := range []string{"<item affiliation='member' jid='bob@example.com'/>", "<item affiliation='outcast' jid='eve@example.net'/>", "<item affiliation='admin' jid='carol@example.com'/>"} {
		n.send(alice, `<iq type='set' id='a' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#admin'>`+item+`</query></iq>`)
	}
	n.take(alice)

	if f, _ := roomInfo(t, n, bob, room); !slices.Contains(f, NSRegister) {
		t.Fatalf("jabber:iq:register not advertised: %v", f)
	}
	dave := n.user("dave@example.com/x")
	if r := registerIQ(n, dave, room, "get", ""); condition(r) != "registration-required" {
		t.Fatalf("an unaffiliated user's get: %s", r)
	}
	if r := registerIQ(n, eve, room, "set", registerForm("Eve")); condition(r) != "forbidden" {
		t.Fatalf("an outcast registers: %s", r)
	}

	r := registerIQ(n, bob, room, "get", "")
	q := r.Child(NSRegister, "query")
	if r.Attr("type") != "result" || q == nil || q.Child(NSData, "x") == nil || q.Child(NSRegister, "registered") != nil {
		t.Fatalf("the registration form: %s", r)
	}
	if v := dataform.Values(q.Child(NSData, "x")); firstValue(v, "FORM_TYPE") != nsRegisterForm || v[fRegisterNick] == nil {
		t.Fatalf("the registration form's fields: %v", v)
	}
	if r := registerIQ(n, bob, room, "set", `<x xmlns='jabber:x:data' type='submit'><field var='muc#register_roomnick'><value>B</value></field></x>`); condition(r) != "bad-request" {
		t.Fatalf("a form without its FORM_TYPE: %s", r)
	}
	if r := registerIQ(n, bob, room, "set", registerForm("Alice")); condition(r) != "conflict" {
		t.Fatalf("a nickname another occupant uses: %s", r)
	}
	if r := registerIQ(n, bob, room, "set", registerForm("Bobby")); r.Attr("type") != "result" {
		t.Fatalf("a member registers: %s", r)
	}
	r = registerIQ(n, bob, room, "get", "")
	if q := r.Child(NSRegister, "query"); q.Child(NSRegister, "registered") == nil || q.Child(NSRegister, "username").Text() != "Bobby" {
		t.Fatalf("a registered member's get: %s", r)
	}
	if nick := reservedNickOf(t, n, bob, room); nick != "Bobby" {
		t.Fatalf("bob's reserved nickname: %q", nick)
	}
	if nick := reservedNickOf(t, n, dave, room); nick != "" {
		t.Fatalf("dave's reserved nickname: %q", nick)
	}
	if r := registerIQ(n, carol, room, "set", registerForm("Bobby")); condition(r) != "conflict" {
		t.Fatalf("a nickname reserved by another: %s", r)
	}
	wantError(t, n.join(dave, room+"/Bobby"), "conflict")

	// The reservation outlives a restart.
	n = h.start(nil)
	bob, carol = n.user(bob), n.user(carol)
	if nick := reservedNickOf(t, n, bob, room); nick != "Bobby" {
		t.Fatalf("bob's reserved nickname after a restart: %q", nick)
	}
	if got := n.join(bob, room+"/Bobby"); len(got) == 0 || got[0].Attr("type") == "error" {
		t.Fatalf("bob enters under his nickname: %v", got)
	}

	// An admin who gives up the nickname stays an admin; a member who
	// does is no longer one.
	if r := registerIQ(n, carol, room, "set", registerForm("Carol")); r.Attr("type") != "result" {
		t.Fatalf("an admin registers: %s", r)
	}
	if r := registerIQ(n, carol, room, "set", "<remove/>"); r.Attr("type") != "result" {
		t.Fatalf("an admin unregisters: %s", r)
	}
	if nick := reservedNickOf(t, n, carol, room); nick != "" {
		t.Fatalf("carol's nickname after unregistering: %q", nick)
	}
	if r := registerIQ(n, bob, room, "set", "<remove/>"); r.Attr("type") != "result" {
		t.Fatalf("a member unregisters: %s", r)
	}
	r1 := n.svc.room("club")
	r1.mu.Lock()
	bobAff, carolAff := r1.storedAffiliation(mustJID("bob@example.com")), r1.storedAffiliation(mustJID("carol@example.com"))
	r1.mu.Unlock()
	if bobAff != AffNone || carolAff != AffAdmin {
		t.Fatalf("after unregistering: bob %v, carol %v", bobAff, carolAff)
	}
	if r := registerIQ(n, bob, room, "get", ""); condition(r) != "registration-required" {
		t.Fatalf("a former member's get: %s", r)
	}
}
