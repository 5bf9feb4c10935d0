package e2e

import (
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
)

const nsCSI = "urn:xmpp:csi:0"

// TestCSI covers Client State Indication (XEP-0352): an inactive client
// gets presence and chat states held back and collapsed until something
// urgent comes, or it becomes active again.
func TestCSI(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-csi"
	for _, u := range []string{"alice", "bob"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	tlsCfg := srv.tlsConfig(t, "localhost")

	t.Run("feature", func(t *testing.T) {
		r := dialRaw(t, srv.c2s, nil)
		r.open("localhost")
		if f := r.startTLS("localhost", tlsCfg); f.child(nsCSI, "csi") != nil {
			t.Errorf("<csi/> offered before authentication: %s", f)
		}
		if el := r.auth(sasl.Plain, "bob", pw); !el.is(nsSASL, "success") {
			t.Fatalf("login: %s", el)
		}
		r.restart()
		r.send(header("localhost"))
		if _, err := r.readHeader(); err != nil {
			t.Fatal(err)
		}
		if f := r.mustNext(); f.child(nsCSI, "csi") == nil || f.child(nsBind, "bind") == nil {
			t.Errorf("features after authentication %s, want <bind/> and <csi/>", f)
		}
	})

	local := dialOpts{addr: srv.c2s, tls: tlsCfg}
	alice := login(t, local, "alice@localhost/a", pw)
	bob := login(t, local, "bob@localhost/b", pw)
	for _, c := range []*client{alice, bob} {
		c.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
		c.send("<presence/>")
		c.expect("own presence", isPresence("", c.jid))
	}
	// bob follows alice's presence.
	bob.send("<presence to='alice@localhost' type='subscribe'/>")
	alice.expect("bob's subscription request", isPresence("subscribe", "bob@localhost"))
	alice.send("<presence to='bob@localhost' type='subscribed'/>")
	bob.expect("alice's presence once subscribed", isPresence("", "alice@localhost/a"))

	// sync makes sure the server has handled all that c sent so far, and
	// so routed it: an IQ is answered after what came before it.
	sync := func(c *client) {
		t.Helper()
		if r := c.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Fatalf("%s: ping: %s", c.jid, r)
		}
	}
	anything := func(*element) bool { return true }
	// next returns what bob received next, in order.
	next := func(what string) *element {
		t.Helper()
		return bob.expect(what, anything)
	}
	show := func(e *element) string { return strings.TrimSpace(e.path("show").Text) }
	bob.send("<inactive xmlns='" + nsCSI + "'/>")
	sync(bob)
	bob.mu.Lock()
	bob.backlog = nil // roster pushes, <subscribed/>
	bob.mu.Unlock()

	for _, s := range []string{"away", "xa", "dnd"} {
		alice.send("<presence><show>" + s + "</show></presence>")
	}
	alice.send("<message to='bob@localhost/b' type='chat' id='cs1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
	alice.send("<message to='bob@localhost/b' type='chat' id='cs2'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>")
	sync(alice)
	bob.expectNone("stanza while inactive", 500*time.Millisecond, anything)

	// A message with a body sends what was held, collapsed, then itself.
	alice.send("<message to='bob@localhost/b' type='chat' id='m1'><body>wake up</body></message>")
	if p := next("alice's latest presence"); !isPresence("", "alice@localhost/a")(p) || show(p) != "dnd" {
		t.Errorf("first after the body: %s, want alice's dnd presence", p)
	}
	if m := next("alice's latest chat state"); m.attr("id") != "cs2" {
		t.Errorf("second after the body: %s, want chat state cs2", m)
	}
	if m := next("alice's message"); m.attr("id") != "m1" || m.path("body").Text != "wake up" {
		t.Errorf("third after the body: %s, want message m1", m)
	}
	sync(alice)
	bob.expectNone("more after the flush", 300*time.Millisecond, anything)

	// Still inactive: held again, until <active/> sends it.
	alice.send("<presence><show>chat</show></presence>")
	alice.send("<message to='bob@localhost/b' type='chat' id='cs3'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
	alice.send("<presence type='unavailable'/>")
	sync(alice)
	bob.expectNone("stanza while inactive", 500*time.Millisecond, anything)
	bob.send("<active xmlns='" + nsCSI + "'/>")
	if m := next("alice's chat state"); m.attr("id") != "cs3" {
		t.Errorf("first after <active/>: %s, want chat state cs3", m)
	}
	if p := next("alice going offline"); !isPresence("unavailable", "alice@localhost/a")(p) {
		t.Errorf("second after <active/>: %s, want alice's unavailable presence (it replaces the available one)", p)
	}

	// Active again: straight through.
	alice2 := login(t, local, "alice@localhost/a2", pw)
	alice2.send("<presence/>")
	if p := next("alice's new resource"); !isPresence("", "alice@localhost/a2")(p) {
		t.Errorf("when active: %s, want alice/a2's presence", p)
	}
}
