package e2e

import (
	"strings"
	"testing"
)

const nsCommands = "http://jabber.org/protocol/commands"

// TestAdminCommandsSlixmpp: a host's admin (admins = ["admin@localhost"])
// runs the service administration commands (XEP-0133) from Debian's
// slixmpp, with its own ad-hoc plugins: the commands are listed, add-user
// makes an account that logs in, the online users are counted, and an
// announcement reaches an online user. A user who is not an admin sees
// no commands and is refused one.
func TestAdminCommandsSlixmpp(t *testing.T) {
	t.Parallel()
	needSlixmpp(t, "slixmpp.plugins.xep_0050", "slixmpp.plugins.xep_0133")
	srv := startServer(t, defaultOptions())
	const pw = "pw-adhoc"
	srv.addUser(t, "admin@localhost", pw)
	srv.addUser(t, "bob@localhost", pw)
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	bob := login(t, o, "bob@localhost/pc", pw)
	bob.send("<presence/>")
	bob.expect("his own presence", isPresence("", "bob@localhost/pc"))

	got, log, err := runSlixmpp(t, srv, "slixmpp_adhoc.py", map[string]any{
		"jid": "admin@localhost/slix", "password": pw, "domain": "localhost",
		"newuser": "newbie@localhost", "newpassword": "pw-newbie", "announcement": "koi restarts at noon",
	}, func(string) {})
	want := "COMMANDS 9 | ADDED Account newbie@localhost created. | ONLINE 2 | ANNOUNCED Sent to 2 sessions. | OK"
	if err != nil || got != want {
		t.Fatalf("slixmpp: %v; its output:\n%s\nwant\n%s\nits log:\n%s", err, got, want, log)
	}
	ann := bob.expect("the announcement", isMessageFrom("localhost"))
	if ann.attr("type") != "headline" || bodyOf(ann) != "koi restarts at noon" || ann.child("", "subject").Text != "Maintenance" {
		t.Fatalf("the announcement: %s", ann)
	}
	login(t, o, "newbie@localhost/x", "pw-newbie")

	// Gajim's and Psi's "Send server message": a message to
	// DOMAIN/announce/online, from an admin, reaches everyone online.
	admin := login(t, o, "admin@localhost/gajim", pw)
	admin.send("<message to='localhost/announce/online'><subject>Notice</subject><body>back at one</body></message>")
	if ann := bob.expect("the server message", isMessageFrom("localhost")); ann.attr("type") != "headline" || bodyOf(ann) != "back at one" {
		t.Fatalf("the server message: %s", ann)
	}
	bob.send("<message id='sm1' to='localhost/announce/online'><body>hi all</body></message>")
	if e := bob.expect("the refusal", func(e *element) bool { return e.attr("id") == "sm1" }); e.attr("type") != "error" ||
		e.child("", "error").child("urn:ietf:params:xml:ns:xmpp-stanzas", "forbidden") == nil {
		t.Fatalf("bob's server message: %s", e)
	}

	// bob is no admin: no commands listed, none run.
	items := bob.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='" + nsCommands + "'/></iq>")
	if items.attr("type") != "result" || strings.Contains(items.String(), "<item") {
		t.Fatalf("bob's list of commands: %s", items)
	}
	r := bob.iq("<iq type='set' to='localhost'><command xmlns='" + nsCommands + "' node='http://jabber.org/protocol/admin#add-user' action='execute'/></iq>")
	if r.attr("type") != "error" || r.child("", "error").child("urn:ietf:params:xml:ns:xmpp-stanzas", "forbidden") == nil {
		t.Fatalf("bob running add-user: %s", r)
	}
	info := bob.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if !hasFeature(info, nsCommands) {
		t.Fatalf("the server's disco#info lacks %s: %s", nsCommands, info)
	}
}

// TestAdminCommandsNbxmpp: Gajim's library, nbxmpp, runs the admin
// commands through its AdHoc module as Gajim's command window does: the
// list, a command without a form, and add-user's form filled in and
// completed.
func TestAdminCommandsNbxmpp(t *testing.T) {
	t.Parallel()
	needPython(t, "python3-nbxmpp", "nbxmpp", "gi")
	srv := startServer(t, defaultOptions())
	const pw = "pw-adhoc-gajim"
	srv.addUser(t, "admin@localhost", pw)
	got, log, err := runSlixmpp(t, srv, "nbxmpp_adhoc.py", map[string]any{
		"jid": "admin@localhost", "password": pw, "domain": "localhost",
		"newuser": "gajimuser@localhost", "newpassword": "pw-gajimuser",
	}, func(string) {})
	want := "COMMANDS 9 | ONLINE 1 | ADDED Account gajimuser@localhost created. | OK"
	if err != nil || got != want {
		t.Fatalf("nbxmpp: %v; its output:\n%s\nwant\n%s\nits log:\n%s", err, got, want, log)
	}
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	login(t, o, "gajimuser@localhost/x", "pw-gajimuser")
}
