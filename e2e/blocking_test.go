package e2e

import (
	"slices"
	"testing"
	"time"
)

const (
	nsBlocking       = "urn:xmpp:blocking"
	nsBlockingErrors = "urn:xmpp:blocking:errors"
)

// TestBlocking covers the blocking command (XEP-0191) between two users of
// one server who see each other's presence: the list and its pushes,
// nothing passing either way while blocked, the error the blocker gets,
// unblocking, unblock-all, and the list surviving a reconnect and a
// restart.
func TestBlocking(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-blocking"
	for _, u := range []string{"alice", "bob"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	alice := login(t, local, "alice@localhost/a", pw)
	alice2 := login(t, local, "alice@localhost/b", pw)
	bob := login(t, local, "bob@localhost/b", pw)
	subscribeBoth(t, alice, bob)
	alice2.send("<presence/>")
	bob.expect("alice's second resource", isPresence("", "alice@localhost/b"))
	alice2.expect("bob's presence", isPresence("", "bob@localhost/b"))

	r := alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if !hasFeature(r, nsBlocking) {
		t.Errorf("disco#info does not advertise %s: %s", nsBlocking, r)
	}
	for _, c := range []*client{alice, alice2} {
		if got := blocklist(t, c); len(got) != 0 {
			t.Fatalf("%s: blocklist %q, want empty", c.jid, got)
		}
	}

	// Blocking: both resources that asked for the list get the push, and
	// bob sees alice go away.
	set(t, alice, "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>")
	for _, c := range []*client{alice, alice2} {
		c.expect("block push", isBlockPush("block", "bob@localhost"))
	}
	bob.expect("alice/a unavailable", isPresence("unavailable", "alice@localhost/a"))
	bob.expect("alice/b unavailable", isPresence("unavailable", "alice@localhost/b"))

	// Nothing of bob's reaches alice.
	bob.send("<message to='alice@localhost' type='chat' id='b1'><body>blocked 1</body></message>")
	bob.send("<message to='alice@localhost/a' type='chat' id='b2'><body>blocked 2</body></message>")
	// The messages bounce as if alice had no account (XEP-0191 §3.3).
	for _, id := range []string{"b1", "b2"} {
		e := bob.expect("error for message "+id, func(e *element) bool {
			return e.is("", "message") && e.attr("type") == "error" && e.attr("id") == id
		})
		if _, cond := e.stanzaError(); cond != "service-unavailable" {
			t.Errorf("bob's message %s to alice: %s, want service-unavailable", id, e)
		}
	}
	bob.send("<presence><show>away</show></presence>")
	bob.send("<presence to='alice@localhost/a'/>")
	r = bob.iq("<iq type='get' to='alice@localhost/a'><ping xmlns='urn:xmpp:ping'/></iq>")
	if _, cond := r.stanzaError(); cond != "service-unavailable" {
		t.Errorf("bob's IQ to alice: %s, want service-unavailable", r)
	}
	r = bob.iq("<iq type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
	if _, cond := r.stanzaError(); cond != "service-unavailable" {
		t.Errorf("bob's vCard request to alice: %s, want service-unavailable", r)
	}
	fromBob := func(e *element) bool { return len(e.attr("from")) > 4 && e.attr("from")[:4] == "bob@" }
	for _, c := range []*client{alice, alice2} {
		c.expectNone("stanza from blocked bob", 300*time.Millisecond, fromBob)
	}

	// Nothing of alice's reaches bob, and she learns why.
	alice.send("<message to='bob@localhost' type='chat' id='m1'><body>to a blocked contact</body></message>")
	e := alice.expect("error for the message to bob", func(e *element) bool {
		return e.is("", "message") && e.attr("type") == "error" && e.attr("id") == "m1"
	})
	if _, cond := e.stanzaError(); cond != "not-acceptable" || e.child("", "error").child(nsBlockingErrors, "blocked") == nil {
		t.Errorf("error %s, want not-acceptable with <blocked xmlns='%s'/>", e, nsBlockingErrors)
	}
	r = alice.iq("<iq type='get' to='bob@localhost/b'><ping xmlns='urn:xmpp:ping'/></iq>")
	if _, cond := r.stanzaError(); cond != "not-acceptable" {
		t.Errorf("alice's IQ to bob: %s, want not-acceptable", r)
	}
	alice.send("<presence><show>dnd</show></presence>")
	fromAlice := func(e *element) bool { return len(e.attr("from")) > 6 && e.attr("from")[:6] == "alice@" }
	bob.expectNone("stanza from alice, who blocked him", 300*time.Millisecond, fromAlice)

	// Unblocking from the other resource: pushes to both, presence again
	// both ways, messages pass.
	set(t, alice2, "<unblock xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></unblock>")
	for _, c := range []*client{alice, alice2} {
		c.expect("unblock push", isBlockPush("unblock", "bob@localhost"))
	}
	bob.expect("alice/a's presence again", isPresence("", "alice@localhost/a"))
	alice.expect("bob's presence again", isPresence("", "bob@localhost/b"))
	bob.send("<message to='alice@localhost/a' type='chat'><body>hello again</body></message>")
	alice.expect("bob's message after unblock", isMessageFrom("bob@localhost/b"))

	// Unblock all.
	set(t, alice, "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/><item jid='spam.example'/></block>")
	alice2.expect("block push", isBlockPush("block", "bob@localhost"))
	set(t, alice, "<unblock xmlns='urn:xmpp:blocking'/>")
	alice2.expect("unblock-all push", isBlockPush("unblock", ""))
	if got := blocklist(t, alice); len(got) != 0 {
		t.Errorf("blocklist after unblock-all %q", got)
	}
	bob.send("<message to='alice@localhost/a' type='chat'><body>after unblock-all</body></message>")
	alice.expect("bob's message after unblock-all", isMessageFrom("bob@localhost/b"))

	// The list outlives the sessions and the server.
	set(t, alice, "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/><item jid='spam.example'/></block>")
	alice.close()
	alice2.close()
	alice = login(t, local, "alice@localhost/c", pw)
	if got, want := blocklist(t, alice), []string{"bob@localhost", "spam.example"}; !slices.Equal(got, want) {
		t.Errorf("blocklist after reconnecting %q, want %q", got, want)
	}
	bob.send("<message to='alice@localhost/c' type='chat'><body>still blocked</body></message>")
	alice.expectNone("message from bob after reconnecting", 300*time.Millisecond, fromBob)
	alice.close()
	bob.close()

	srv.stop(t)
	launch(t, srv.dir, srv.config, srv.c2s, srv.c2sTLS, srv.opt, nil)
	alice = login(t, local, "alice@localhost/d", pw)
	if got, want := blocklist(t, alice), []string{"bob@localhost", "spam.example"}; !slices.Equal(got, want) {
		t.Errorf("blocklist after a restart %q, want %q", got, want)
	}
}

// subscribeBoth makes a and b subscribe to each other and go online.
func subscribeBoth(t *testing.T, a, b *client) {
	t.Helper()
	for _, c := range []*client{a, b} {
		c.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
		c.send("<presence/>")
		c.expect("own presence", isPresence("", c.jid))
	}
	for _, p := range [][2]*client{{a, b}, {b, a}} {
		from, to := p[0], p[1]
		fromBare, toBare := bare(from.jid), bare(to.jid)
		from.send("<presence to='" + toBare + "' type='subscribe'/>")
		to.expect("subscription request", isPresence("subscribe", fromBare))
		to.send("<presence to='" + fromBare + "' type='subscribed'/>")
		from.expect("subscribed", isPresence("subscribed", toBare))
		from.expect("presence once subscribed", isPresence("", to.jid))
	}
}

func bare(full string) string {
	for i := range full {
		if full[i] == '/' {
			return full[:i]
		}
	}
	return full
}

// blocklist returns c's blocklist, subscribing c to pushes.
func blocklist(t *testing.T, c *client) []string {
	t.Helper()
	r := c.iq("<iq type='get'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	l := r.child(nsBlocking, "blocklist")
	if r.attr("type") != "result" || l == nil {
		t.Fatalf("%s: blocklist get: %s", c.jid, r)
	}
	var out []string
	for _, it := range l.children(nsBlocking, "item") {
		out = append(out, it.attr("jid"))
	}
	slices.Sort(out)
	return out
}

// set sends a blocking command and wants an empty result.
func set(t *testing.T, c *client, payload string) {
	t.Helper()
	if r := c.iq("<iq type='set'>" + payload + "</iq>"); r.attr("type") != "result" {
		t.Fatalf("%s: %s: %s", c.jid, payload, r)
	}
}

// isBlockPush matches a push of a block or unblock whose first item is
// first ("" for none).
func isBlockPush(local, first string) func(*element) bool {
	return func(e *element) bool {
		if !e.is("", "iq") || e.attr("type") != "set" {
			return false
		}
		q := e.child(nsBlocking, local)
		if q == nil {
			return false
		}
		items := q.children(nsBlocking, "item")
		if first == "" {
			return len(items) == 0
		}
		return len(items) > 0 && items[0].attr("jid") == first
	}
}
