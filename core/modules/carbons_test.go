package modules

import (
	"testing"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/xmlstream"
)

func carbonOf(els []*xmlstream.Element, kind string) *xmlstream.Element {
	for _, el := range els {
		if c := el.Child(nsCarbons, kind); el.Local == "message" && c != nil {
			if fwd := c.Child(nsForward, "forwarded"); fwd != nil {
				return fwd.Child(xmlstream.NSClient, "message")
			}
		}
	}
	return nil
}

func TestCarbonsCarryTheArchiveIDs(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{})
	alicePC := e.login("alice@example.com/pc")
	alicePhone := e.login("alice@example.com/phone")
	bobA := e.login("bob@example.com/a")
	bobB := e.login("bob@example.com/b")
	alicePC.online("1")
	alicePhone.online("1")
	bobA.online("5")
	bobB.online("1")
	for _, c := range []*client{alicePhone, bobB} {
		c.send(`<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
		if r := find(c.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "c" }); r == nil || r.Attr("type") != "result" {
			t.Fatalf("enabling carbons: %v", r)
		}
	}

	alicePC.send(`<message to='bob@example.com' type='chat' id='c1'><body>to all of bob's devices</body></message>`)
	delivered := find(bobA.rec.Take(), func(el *xmlstream.Element) bool { return el.Local == "message" })
	if delivered == nil {
		t.Fatal("bob's top resource got nothing")
	}
	bobID := stanzaID(delivered, "bob@example.com")
	received := carbonOf(bobB.rec.Take(), "received")
	if received == nil || received.Child(xmlstream.NSClient, "body").Text() != "to all of bob's devices" {
		t.Fatalf("bob's other device got no received carbon: %v", received)
	}
	if stanzaID(received, "bob@example.com") != bobID || bobID == "" {
		t.Errorf("received carbon has stanza-id %q, delivered copy %q", stanzaID(received, "bob@example.com"), bobID)
	}
	sent := carbonOf(alicePhone.rec.Take(), "sent")
	if sent == nil || sent.Attr("to") != "bob@example.com" {
		t.Fatalf("alice's other device got no sent carbon: %v", sent)
	}
	aliceID := stanzaID(sent, "alice@example.com")
	if stanzaID(sent, "bob@example.com") != "" {
		t.Errorf("the sent carbon carries bob's archive id: %s", sent)
	}
	if r := alicePhone.mam(t, nsMAM2, ""); len(r.ids) != 1 || r.ids[0] != aliceID {
		t.Errorf("alice's archive ids %v, sent carbon's %q", r.ids, aliceID)
	}
	if carbonOf(alicePC.rec.Take(), "sent") != nil {
		t.Error("the sending device got a carbon of its own message")
	}

	// Private messages are not copied; nor is anything to a device that
	// disabled carbons.
	alicePC.send(`<message to='bob@example.com' type='chat'><body>private</body><private xmlns='urn:xmpp:carbons:2'/></message>`)
	if carbonOf(bobB.rec.Take(), "received") != nil || carbonOf(alicePhone.rec.Take(), "sent") != nil {
		t.Error("a private message was copied")
	}
	bobB.send(`<iq type='set' id='d'><disable xmlns='urn:xmpp:carbons:2'/></iq>`)
	bobB.rec.Take()
	alicePC.send(`<message to='bob@example.com' type='chat'><body>again</body></message>`)
	if carbonOf(bobB.rec.Take(), "received") != nil {
		t.Error("a device that disabled carbons got one")
	}
	if carbonOf(alicePhone.rec.Take(), "sent") == nil {
		t.Error("alice's phone stopped getting sent carbons")
	}
	// Chat states alone are copied (they are chat messages) but not
	// archived: the carbon has no stanza-id.
	alicePC.send(`<message to='bob@example.com' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	if s := carbonOf(alicePhone.rec.Take(), "sent"); s == nil || stanzaID(s, "alice@example.com") != "" {
		t.Errorf("carbon of a chat state: %v", s)
	}
}
