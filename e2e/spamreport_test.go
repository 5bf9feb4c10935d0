package e2e

import (
	"strings"
	"testing"
)

const nsReporting = "urn:xmpp:reporting:1"

// TestSpamReport: a block with a spam report (XEP-0377) blocks, and the
// host's admin gets the report with the reported message forwarded from
// the reporter's archive: version 1 with a stanza-id from a Go client,
// version 0 from Debian's slixmpp with its own plugins.
func TestSpamReport(t *testing.T) {
	t.Parallel()
	needSlixmpp(t, "slixmpp.plugins.xep_0377")
	opt := defaultOptions()
	opt.Archive = true
	srv := startServer(t, opt)
	const pw = "pw-report"
	for _, u := range []string{"admin", "alice", "carol", "spammer"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	admin := login(t, o, "admin@localhost/desk", pw)
	alice := login(t, o, "alice@localhost/pc", pw)
	spammer := login(t, o, "spammer@localhost/bot", pw)
	for _, c := range []*client{admin, alice} {
		c.send("<presence/>")
		c.expect("own presence", isPresence("", c.jid))
	}
	info := alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if !hasFeature(info, nsReporting) {
		t.Fatalf("the server's disco#info lacks %s: %s", nsReporting, info)
	}

	spammer.send("<message type='chat' to='alice@localhost'><body>buy cheap watches</body></message>")
	spam := alice.expect("the spam", isMessageFrom("spammer@localhost/bot"))
	id := spam.child("urn:xmpp:sid:0", "stanza-id").attr("id")
	r := alice.iq("<iq type='set'><block xmlns='urn:xmpp:blocking'><item jid='spammer@localhost'>" +
		"<report xmlns='" + nsReporting + "' reason='urn:xmpp:reporting:spam'>" +
		"<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='" + id + "'/><text>a bot</text></report></item></block></iq>")
	if r.attr("type") != "result" {
		t.Fatalf("block with a report: %s", r)
	}
	rep := admin.expect("the report", isMessageFrom("localhost"))
	if !strings.Contains(bodyOf(rep), "alice@localhost reported spammer@localhost for spam") || !strings.Contains(bodyOf(rep), "a bot") {
		t.Fatalf("the report's body: %s", rep)
	}
	fwd := rep.child("urn:xmpp:forward:0", "forwarded")
	if fwd == nil || bodyOf(fwd.child("", "message")) != "buy cheap watches" || rep.child(nsReporting, "report").attr("jid") != "spammer@localhost" {
		t.Fatalf("the report does not carry the reported message: %s", rep)
	}

	got, log, err := runSlixmpp(t, srv, "slixmpp_report.py", map[string]any{
		"jid": "carol@localhost/slix", "password": pw, "domain": "localhost", "spammer": "spammer@localhost", "text": "spam bot",
	}, func(string) {})
	if want := "FEATURE | BLOCKED spammer@localhost | OK"; err != nil || got != want {
		t.Fatalf("slixmpp: %v; its output: %s, want %s\nits log:\n%s", err, got, want, log)
	}
	rep = admin.expect("slixmpp's report", isMessageFrom("localhost"))
	if !strings.Contains(bodyOf(rep), "carol@localhost reported spammer@localhost for spam") || !strings.Contains(bodyOf(rep), "spam bot") {
		t.Fatalf("slixmpp's report: %s", rep)
	}
}
