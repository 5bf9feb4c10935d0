package e2e

import (
	"strconv"
	"testing"
	"time"
)

// TestLastActivity: XEP-0012 for the server (uptime), for a contact's bare
// JID (since its last resource left, with its status; only to those
// subscribed; kept across a restart), and for a full JID (the client
// answers).
func TestLastActivity(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opt := defaultOptions()
	path, c2s, c2sTLS := writeConfig(t, dir, opt)
	srv := launch(t, dir, path, c2s, c2sTLS, opt, nil)
	const pw = "pw-last"
	for _, u := range []string{"alice", "bob", "eve"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	seconds := func(r *element) int {
		t.Helper()
		q := r.child("jabber:iq:last", "query")
		if r.attr("type") != "result" || q == nil {
			t.Fatalf("last activity: %s", r)
		}
		n, err := strconv.Atoi(q.attr("seconds"))
		if err != nil {
			t.Fatalf("seconds in %s: %v", r, err)
		}
		return n
	}

	alice := login(t, local, "alice@localhost/a", pw)
	if r := alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"); !hasFeature(r, "jabber:iq:last") {
		t.Errorf("server disco lacks jabber:iq:last: %s", r)
	}
	if n := seconds(alice.iq("<iq type='get' to='localhost'><query xmlns='jabber:iq:last'/></iq>")); n < 0 || n > 600 {
		t.Errorf("server uptime %d s", n)
	}

	// bob and alice subscribe both ways.
	bob := login(t, local, "bob@localhost/b", pw)
	for _, c := range []*client{alice, bob} {
		c.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
		c.send("<presence/>")
		c.expect("own presence", isPresence("", c.jid))
	}
	alice.send("<presence to='bob@localhost' type='subscribe'/>")
	bob.expect("subscription request", isPresence("subscribe", "alice@localhost"))
	bob.send("<presence to='alice@localhost' type='subscribed'/>")
	alice.expect("bob's presence", isPresence("", "bob@localhost/b"))

	// Online: 0 seconds.
	if n := seconds(alice.iq("<iq type='get' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>")); n != 0 {
		t.Errorf("last activity of online bob = %d, want 0", n)
	}
	bob.send("<presence type='unavailable'><status>gone fishing</status></presence>")
	alice.expect("bob's unavailable presence", isPresence("unavailable", "bob@localhost/b"))
	bob.close()
	time.Sleep(1100 * time.Millisecond)
	r := alice.iq("<iq type='get' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>")
	if n := seconds(r); n < 1 || n > 60 {
		t.Errorf("last activity of bob = %d s, want about 1", n)
	}
	if got := r.child("jabber:iq:last", "query").Text; got != "gone fishing" {
		t.Errorf("status %q, want the one bob left with", got)
	}

	// Not subscribed: forbidden (XEP-0012 §4).
	eve := login(t, local, "eve@localhost/e", pw)
	if typ, cond := eve.iq("<iq type='get' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>").stanzaError(); typ == "" || cond != "forbidden" {
		t.Errorf("eve asks bob's last activity: %s/%s, want forbidden", typ, cond)
	}

	// A full JID is asked of the client itself: the answer comes from
	// alice's client (this test library answers IQs it does not know with
	// an error of its own), not from the server on her behalf.
	if r := eve.iq("<iq type='get' to='alice@localhost/a'><query xmlns='jabber:iq:last'/></iq>"); r.attr("from") != "alice@localhost/a" {
		t.Errorf("full JID answered by %q, want the client alice@localhost/a: %s", r.attr("from"), r)
	}

	// Kept across a restart (in the account's private storage).
	alice.close()
	eve.close()
	srv.stop(t)
	srv2 := launch(t, dir, path, c2s, c2sTLS, opt, nil)
	alice = login(t, dialOpts{addr: srv2.c2s, tls: srv2.tlsConfig(t, "localhost")}, "alice@localhost/a2", pw)
	r = alice.iq("<iq type='get' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>")
	if n := seconds(r); n < 1 || r.child("jabber:iq:last", "query").Text != "gone fishing" {
		t.Errorf("after a restart: %s, want bob's last activity and status", r)
	}
}

// hasFeature reports whether a disco#info result lists feature v.
func hasFeature(r *element, v string) bool {
	q := r.child(nsDiscoInfo, "query")
	if q == nil {
		return false
	}
	for _, f := range q.children(nsDiscoInfo, "feature") {
		if f.attr("var") == v {
			return true
		}
	}
	return false
}
