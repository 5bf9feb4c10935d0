package e2e

import (
	"strings"
	"testing"
	"time"
)

const nsRetract1 = "urn:xmpp:message-retract:1"

// TestRetractionSlixmpp: a one-to-one message its sender retracts
// (XEP-0424) becomes a tombstone in both archives, with the retraction
// archived beside it. Debian's slixmpp retracts with XEP-0424 0.3 and
// finds the tombstone with its own MAM and retraction plugins; then a
// retraction of version 1, to a peer who is offline, does the same.
func TestRetractionSlixmpp(t *testing.T) {
	t.Parallel()
	needSlixmpp(t, "slixmpp.plugins.xep_0424", "slixmpp.plugins.xep_0313")
	srv := archiveServer(t, "sql", "", "", "")
	const pw = "pw-retract"
	for _, u := range []string{"alice", "bob"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	bob := login(t, o, "bob@localhost/pc", pw)
	bob.send("<presence/>")
	bob.expect("his own presence", isPresence("", "bob@localhost/pc"))

	got, log, err := runSlixmpp(t, srv, "slixmpp_retract.py", map[string]any{
		"jid": "alice@localhost/slix", "password": pw, "peer": "bob@localhost",
	}, func(string) {})
	f := strings.Fields(strings.ReplaceAll(got, "|", " "))
	if err != nil || len(f) != 9 || f[0] != "FEATURES" || f[1] != "SENT" || f[3] != "RETRACTED" ||
		f[4] != "TOMBSTONE" || f[5] != f[2] || f[7] != "RETRACTION" || f[8] != "OK" {
		t.Fatalf("slixmpp: %v; its output: %s\nits log:\n%s", err, got, log)
	}
	id := f[2]

	// bob saw both live.
	bob.expect("the message", func(e *element) bool { return e.is("", "message") && e.attr("id") == id })
	bob.expect("the retraction", func(e *element) bool {
		a := e.child("urn:xmpp:fasten:0", "apply-to")
		return e.is("", "message") && a != nil && a.attr("id") == id
	})
	// bob's archive has the tombstone in the message's place.
	tomb, retraction := awaitTombstone(t, bob, id)
	if r := tomb.child(nsRetract1, "retracted"); r == nil || r.attr("id") != retraction.attr("id") || r.attr("stamp") == "" {
		t.Fatalf("the tombstone does not name the retraction %s: %s", retraction, tomb)
	}
	if tomb.attr("from") != "alice@localhost/slix" || tomb.attr("type") != "chat" {
		t.Fatalf("the tombstone lost the message's sender or type: %s", tomb)
	}

	// Version 1, from bob to alice, who is offline now: the message is
	// stored for her and archived, and the tombstone replaces it in both
	// archives all the same.
	bob.send("<message id='hi-1' type='chat' to='alice@localhost'><body>a secret</body></message>")
	bob.send("<message id='undo-1' type='chat' to='alice@localhost'><retract id='hi-1' xmlns='" + nsRetract1 + "'/>" +
		"<fallback xmlns='urn:xmpp:fallback:0' for='" + nsRetract1 + "'/><body>/me retracted a previous message</body></message>")
	tomb, _ = awaitTombstone(t, bob, "hi-1")
	if r := tomb.child(nsRetract1, "retracted"); r.attr("id") != "undo-1" {
		t.Fatalf("the tombstone does not name the retraction undo-1: %s", tomb)
	}
	alice := login(t, o, "alice@localhost/go", pw)
	awaitTombstone(t, alice, "hi-1")
	// From offline storage she gets the retraction, not the message.
	alice.send("<presence/>")
	alice.expect("the retraction from offline storage", func(e *element) bool { return e.is("", "message") && e.attr("id") == "undo-1" })
	if m, ok := alice.await(0, func(e *element) bool { return e.is("", "message") && e.attr("id") == "hi-1" }); ok {
		t.Fatalf("the retracted message was delivered from offline storage: %s", m)
	}
}

// awaitTombstone reads c's archive until the message id is a tombstone
// and the retraction of it is archived after it, and returns both; the
// tombstone is put in place a moment after the retraction is archived.
func awaitTombstone(t *testing.T, c *client, id string) (tomb, retraction *element) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		page := c.mam("<max>20</max><before/>")
		tomb, retraction = nil, nil
		for _, m := range page.msgs {
			switch {
			case m.attr("id") == id && m.child(nsRetract1, "retracted") != nil:
				tomb = m
			case m.attr("id") == id:
				tomb = nil
			case tomb != nil && retracts(m, id):
				retraction = m
			}
		}
		if tomb != nil && retraction != nil {
			if bodyOf(tomb) != "" {
				t.Fatalf("%s: the tombstone keeps the body: %s", c.jid, tomb)
			}
			return tomb, retraction
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no tombstone of %s and its retraction in the archive: %v", c.jid, id, page.msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// retracts reports whether m is a retraction of message id, either
// version.
func retracts(m *element, id string) bool {
	if r := m.child(nsRetract1, "retract"); r != nil {
		return r.attr("id") == id
	}
	a := m.child("urn:xmpp:fasten:0", "apply-to")
	return a != nil && a.attr("id") == id && a.child("urn:xmpp:message-retract:0", "retract") != nil
}
