package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestIM covers RFC 6121 between clients of one server: subscriptions,
// presence, chat, roster pushes and versioning, offline storage and
// resource conflicts.
func TestIM(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-im"
	for _, u := range []string{"alice", "bob", "carol", "erin", "frank", "gina"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	srv.addUser(t, "hank@"+secondHost, pw)
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}

	t.Run("subscription presence chat", func(t *testing.T) {
		alice := login(t, local, "alice@localhost/a", pw)
		bob := login(t, local, "bob@localhost/b", pw)
		for _, c := range []*client{alice, bob} {
			if r := c.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>"); r.attr("type") != "result" || r.child(nsRoster, "query") == nil {
				t.Fatalf("%s: roster get: %s", c.jid, r)
			}
			c.send("<presence/>")
			c.expect("own presence", isPresence("", c.jid))
		}

		// alice asks bob (RFC 6121 §3.1).
		alice.send("<presence to='bob@localhost' type='subscribe'/>")
		push := alice.expect("roster push for bob", isRosterPush("bob@localhost"))
		checkItem(t, push.path("query", "item"), "none", "subscribe")
		bob.expect("subscription request from alice", isPresence("subscribe", "alice@localhost"))

		bob.send("<presence to='alice@localhost' type='subscribed'/>")
		checkItem(t, bob.expect("roster push for alice", isRosterPush("alice@localhost")).path("query", "item"), "from", "")
		alice.expect("subscribed from bob", isPresence("subscribed", "bob@localhost"))
		checkItem(t, alice.expect("roster push for bob", isRosterPush("bob@localhost")).path("query", "item"), "to", "")
		alice.expect("bob's presence once subscribed", isPresence("", "bob@localhost/b"))

		// And back.
		bob.send("<presence to='alice@localhost' type='subscribe'/>")
		checkItem(t, bob.expect("roster push for alice", isRosterPush("alice@localhost")).path("query", "item"), "from", "subscribe")
		alice.expect("subscription request from bob", isPresence("subscribe", "bob@localhost"))
		alice.send("<presence to='bob@localhost' type='subscribed'/>")
		checkItem(t, alice.expect("roster push for bob", isRosterPush("bob@localhost")).path("query", "item"), "both", "")
		bob.expect("subscribed from alice", isPresence("subscribed", "alice@localhost"))
		checkItem(t, bob.expect("roster push for alice", isRosterPush("alice@localhost")).path("query", "item"), "both", "")
		bob.expect("alice's presence once subscribed", isPresence("", "alice@localhost/a"))

		for _, tc := range []struct {
			c       *client
			contact string
		}{{alice, "bob@localhost"}, {bob, "alice@localhost"}} {
			r := tc.c.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
			items := r.child(nsRoster, "query").children(nsRoster, "item")
			if len(items) != 1 || items[0].attr("jid") != tc.contact {
				t.Fatalf("%s: roster %s, want one item %s", tc.c.jid, r, tc.contact)
			}
			checkItem(t, items[0], "both", "")
		}

		// Presence is broadcast to the contact.
		alice.send("<presence><show>away</show><status>lunch</status></presence>")
		p := bob.expect("alice's away presence", func(e *element) bool {
			return isPresence("", "alice@localhost/a")(e) && e.child("", "show") != nil
		})
		if got := strings.TrimSpace(p.child("", "show").Text); got != "away" {
			t.Errorf("show = %q, want away", got)
		}
		if got := p.child("", "status").Text; got != "lunch" {
			t.Errorf("status = %q, want lunch", got)
		}

		bob.send("<presence><show>dnd</show></presence>")
		alice.expect("bob's dnd presence", func(e *element) bool {
			return isPresence("", "bob@localhost/b")(e) && e.path("show") != nil && e.path("show").Text == "dnd"
		})

		// A new resource of bob learns alice's presence at once (the
		// server answers the probe), and alice learns of the resource.
		bob2 := login(t, local, "bob@localhost/b2", pw)
		bob2.send("<presence/>")
		p = bob2.expect("alice's presence for the new resource", isPresence("", "alice@localhost/a"))
		if p.path("show") == nil || p.path("show").Text != "away" {
			t.Errorf("probe answer %s, want alice's current presence (away)", p)
		}
		alice.expect("presence of bob's new resource", isPresence("", "bob@localhost/b2"))
		bob2.close()
		alice.expect("bob's new resource leaving", isPresence("unavailable", "bob@localhost/b2"))

		// IQs between clients are routed to the full JID and answered.
		r := alice.iq("<iq type='get' to='bob@localhost/b' id='v1'><query xmlns='jabber:iq:version'/></iq>")
		if r.attr("from") != "bob@localhost/b" || r.attr("type") != "error" {
			t.Errorf("bob's client answer: %s, want the error it sends from bob@localhost/b", r)
		}
		if q := bob.expect("alice's IQ", func(e *element) bool { return e.is("", "iq") && e.attr("id") == "v1" }); q.attr("from") != "alice@localhost/a" {
			t.Errorf("bob got the IQ as %s", q)
		}

		// Chat, to the bare and to the full JID.
		alice.send("<message to='bob@localhost' type='chat' id='m1'><body>hello bob</body></message>")
		m := bob.expect("alice's message", isMessageFrom("alice@localhost/a"))
		if m.path("body").Text != "hello bob" || m.attr("type") != "chat" || m.attr("id") != "m1" {
			t.Errorf("bob got %s", m)
		}
		bob.send("<message to='alice@localhost/a' type='chat'><body>hi alice</body></message>")
		if m := alice.expect("bob's reply", isMessageFrom("bob@localhost/b")); m.path("body").Text != "hi alice" {
			t.Errorf("alice got %s", m)
		}

		// A subscription request to an account that does not exist is
		// refused on its behalf.
		alice.send("<presence to='ghost@localhost' type='subscribe'/>")
		alice.expect("refusal from ghost", isPresence("unsubscribed", "ghost@localhost"))

		// Going offline is broadcast, whether the stream is closed or the
		// connection just drops.
		bob3 := login(t, local, "bob@localhost/b3", pw)
		bob3.send("<presence/>")
		alice.expect("presence of bob's third resource", isPresence("", "bob@localhost/b3"))
		bob3.sess.Conn().Close()
		alice.expect("bob's dropped resource going unavailable", isPresence("unavailable", "bob@localhost/b3"))
		alice.close()
		bob.expect("alice's unavailable presence", isPresence("unavailable", "alice@localhost/a"))
	})

	t.Run("roster push to every resource", func(t *testing.T) {
		r1 := login(t, local, "carol@localhost/r1", pw)
		r2 := login(t, local, "carol@localhost/r2", pw)
		var ver0 string
		for _, c := range []*client{r1, r2} {
			r := c.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
			q := r.child(nsRoster, "query")
			if q == nil || q.attr("ver") == "" {
				t.Fatalf("%s: roster get without ver: %s", c.jid, r)
			}
			ver0 = q.attr("ver")
		}

		// A resource that never asked for the roster gets no pushes
		// (RFC 6121 §2.1.6).
		r3 := login(t, local, "carol@localhost/r3", pw)
		r3.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")

		set := r1.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='dave@localhost' name='Dave'><group>Friends</group></item></query></iq>")
		if set.attr("type") != "result" {
			t.Fatalf("roster set: %s", set)
		}
		var ver1 string
		for _, c := range []*client{r1, r2} {
			push := c.expect("roster push for dave", isRosterPush("dave@localhost"))
			q := push.child(nsRoster, "query")
			if q.attr("ver") == "" || q.attr("ver") == ver0 {
				t.Errorf("%s: push ver %q, want a new version (was %q)", c.jid, q.attr("ver"), ver0)
			}
			ver1 = q.attr("ver")
			it := q.child(nsRoster, "item")
			checkItem(t, it, "none", "")
			if it.attr("name") != "Dave" || it.path("group").Text != "Friends" {
				t.Errorf("%s: pushed item %s", c.jid, it)
			}
			if f := push.attr("from"); f != "" && f != "carol@localhost" {
				t.Errorf("%s: push from %q", c.jid, f)
			}
		}

		r3.expectNone("a roster push", 200*time.Millisecond, isRosterPush("dave@localhost"))

		// XEP-0237: the current version gets an empty result, an old one
		// the full roster.
		if r := r2.iq("<iq type='get'><query xmlns='jabber:iq:roster' ver='" + ver1 + "'/></iq>"); r.attr("type") != "result" || len(r.Children) != 0 {
			t.Errorf("roster get with the current ver: %s, want an empty result", r)
		}
		r := r2.iq("<iq type='get'><query xmlns='jabber:iq:roster' ver='" + ver0 + "'/></iq>")
		q := r.child(nsRoster, "query")
		if q == nil || q.attr("ver") != ver1 || len(q.children(nsRoster, "item")) != 1 {
			t.Errorf("roster get with an old ver: %s, want the roster at ver %s", r, ver1)
		}

		// Removal is pushed too.
		if r := r2.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='dave@localhost' subscription='remove'/></query></iq>"); r.attr("type") != "result" {
			t.Fatalf("roster remove: %s", r)
		}
		for _, c := range []*client{r1, r2} {
			push := c.expect("removal push", isRosterPush("dave@localhost"))
			if s := push.path("query", "item").attr("subscription"); s != "remove" {
				t.Errorf("%s: removal push %s", c.jid, push)
			}
		}
	})

	t.Run("offline delivery", func(t *testing.T) {
		erin := login(t, local, "erin@localhost/e", pw)
		erin.send("<message to='frank@localhost' type='chat' id='off1'><body>while you were out</body></message>")
		erin.send("<message to='frank@localhost' type='chat' id='off2'><body>second</body></message>")
		erin.send("<message to='frank@localhost' type='chat' id='off3'><body>third</body></message>")
		// Neither a bare chat state nor a headline is kept (XEP-0160,
		// RFC 6121 §8.5.2.1.1).
		erin.send("<message to='frank@localhost' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
		erin.send("<message to='frank@localhost' type='headline' id='hl'><body>news</body></message>")
		// IQs are handled in order after the message: once the ping is
		// answered, the message was stored.
		erin.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		sent := time.Now()

		frank := login(t, local, "frank@localhost/f", pw)
		frank.expectNone("message before initial presence", 300*time.Millisecond, isMessageFrom("erin@localhost/e"))
		frank.send("<presence/>")
		m := frank.expect("the offline message", isMessageFrom("erin@localhost/e"))
		if m.path("body").Text != "while you were out" || m.attr("id") != "off1" {
			t.Errorf("frank got %s", m)
		}
		d := m.child(nsDelay, "delay")
		if d == nil {
			t.Fatalf("offline message without <delay xmlns='urn:xmpp:delay'/>: %s", m)
		}
		stamp, err := time.Parse(time.RFC3339, d.attr("stamp"))
		if err != nil || stamp.Before(sent.Add(-time.Minute)) || stamp.After(time.Now().Add(time.Minute)) {
			t.Errorf("delay stamp %q (%v), want about %v", d.attr("stamp"), err, sent.UTC())
		}
		if d.attr("from") != "localhost" {
			t.Errorf("delay from %q, want localhost", d.attr("from"))
		}
		for _, id := range []string{"off2", "off3"} {
			if m := frank.expect("offline message "+id, isMessageFrom("erin@localhost/e")); m.attr("id") != id {
				t.Errorf("offline message %s, want id %s next: stored messages come in order", m, id)
			}
		}
		frank.expectNone("a stored chat state or headline", 300*time.Millisecond, isMessageFrom("erin@localhost/e"))

		// Delivered once: a new session does not get it again.
		frank.close()
		frank2 := login(t, local, "frank@localhost/f2", pw)
		frank2.send("<presence/>")
		frank2.expectNone("the offline message again", 500*time.Millisecond, isMessageFrom("erin@localhost/e"))

		// A message to an account that does not exist bounces.
		for _, to := range []string{"nobody@localhost", "nobody@" + secondHost} {
			erin.send("<message to='" + to + "' type='chat' id='nx'><body>anyone?</body></message>")
			e := erin.expect("bounce from "+to, func(e *element) bool {
				return e.is("", "message") && e.attr("type") == "error" && e.attr("from") == to
			})
			if _, cond := e.stanzaError(); cond != "service-unavailable" {
				t.Errorf("bounce %s, want service-unavailable", e)
			}
		}
	})

	t.Run("virtual hosts exchange messages", func(t *testing.T) {
		erin := login(t, local, "erin@localhost/vh", pw)
		hank := login(t, dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, secondHost)}, "hank@"+secondHost+"/h", pw)
		hank.send("<presence/>")
		hank.iq("<iq type='get' to='" + secondHost + "'><ping xmlns='urn:xmpp:ping'/></iq>")
		erin.send("<message to='hank@" + secondHost + "' type='chat'><body>across hosts</body></message>")
		if m := hank.expect("erin's message", isMessageFrom("erin@localhost/vh")); m.path("body").Text != "across hosts" {
			t.Errorf("hank got %s", m)
		}
	})

	t.Run("resource conflict", func(t *testing.T) {
		old := login(t, local, "gina@localhost/desk", pw)
		old.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		cur := login(t, local, "gina@localhost/desk", pw)
		cond, err := old.waitStreamError(waitTimeout)
		if cond != "conflict" {
			t.Errorf("old session ended with stream error %q (%v), want <conflict/>", cond, err)
		}
		if r := cur.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Errorf("new session ping: %s", r)
		}
		cur.send("<message to='gina@localhost/desk'><body>still me</body></message>")
		if m := cur.expect("message to the new session", isMessageFrom("gina@localhost/desk")); m.path("body").Text != "still me" {
			t.Errorf("new session got %s", m)
		}
	})
}

// checkItem checks a roster item's subscription and ask.
func checkItem(t *testing.T, it *element, subscription, ask string) {
	t.Helper()
	if it == nil {
		t.Fatalf("no roster item")
	}
	if got := it.attr("subscription"); got != subscription {
		t.Errorf("item %s: subscription %q, want %q", it, got, subscription)
	}
	if got := it.attr("ask"); got != ask {
		t.Errorf("item %s: ask %q, want %q", it, got, ask)
	}
}
