package e2e

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/koi-im/koi/internal/sigstop"
)

const (
	nsMUC      = "http://jabber.org/protocol/muc"
	nsMUCUser  = nsMUC + "#user"
	nsMUCAdmin = nsMUC + "#admin"
	nsMUCOwner = nsMUC + "#owner"
	mucDomain  = "conference.localhost"
	lounge     = "lounge@" + mucDomain
)

// mucCodes lists the muc#user status codes of a stanza.
func mucCodes(e *element) []string {
	var out []string
	for _, s := range e.child(nsMUCUser, "x").children(nsMUCUser, "status") {
		out = append(out, s.attr("code"))
	}
	return out
}

func mucItem(e *element) *element { return e.child(nsMUCUser, "x").child(nsMUCUser, "item") }

// joinRoom sends the join presence and waits for the self-presence
// (status 110) or an error; extra goes inside <x/>.
func joinRoom(c *client, occupant, extra string) *element {
	c.t.Helper()
	c.send(fmt.Sprintf("<presence to='%s'><x xmlns='%s'>%s</x></presence>", occupant, nsMUC, extra))
	return c.expect("self-presence or error from "+occupant, func(e *element) bool {
		return e.is("", "presence") && e.attr("from") == occupant &&
			(e.attr("type") == "error" || slices.Contains(mucCodes(e), "110"))
	})
}

func wantPresenceError(t *testing.T, p *element, cond string) {
	t.Helper()
	if _, c := p.stanzaError(); p.attr("type") != "error" || c != cond {
		t.Fatalf("want a %s error, got %s", cond, p)
	}
}

func isGroupchat(from, body string) func(*element) bool {
	return func(e *element) bool {
		return e.is("", "message") && e.attr("type") == "groupchat" && e.attr("from") == from && bodyOf(e) == body
	}
}

func ownerSubmit(c *client, room, fields string) *element {
	c.t.Helper()
	return c.iq(fmt.Sprintf("<iq type='set' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>%s</x></query></iq>",
		room, nsMUCOwner, fields))
}

func adminSet(c *client, room, item string) *element {
	c.t.Helper()
	return c.iq(fmt.Sprintf("<iq type='set' to='%s'><query xmlns='%s'>%s</query></iq>", room, nsMUCAdmin, item))
}

// TestMUCThreeUsers: three users of a real koi, each on its own TCP stream
// through the mellium client library, create a room, talk, moderate, leave,
// come back to its history, and meet its refusals and its end.
func TestMUCThreeUsers(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-muc"
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	alice := login(t, o, "alice@localhost/pc", pw)
	bob := login(t, o, "bob@localhost/phone", pw)
	carol := login(t, o, "carol@localhost/laptop", pw)

	// The server lists the chat service, the service answers disco.
	items := alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
	if !strings.Contains(items.String(), mucDomain) {
		t.Fatalf("server disco#items: %s", items)
	}
	info := alice.iq("<iq type='get' to='" + mucDomain + "'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	if !strings.Contains(info.String(), "category='conference'") || !strings.Contains(info.String(), nsMUC+"'") {
		t.Fatalf("service disco#info: %s", info)
	}

	// alice creates the room: 201, locked until she configures it.
	self := joinRoom(alice, lounge+"/Alice", "")
	if c := mucCodes(self); !slices.Contains(c, "201") || mucItem(self).attr("affiliation") != "owner" {
		t.Fatalf("creation: %s", self)
	}
	alice.expect("empty subject", func(e *element) bool { return e.is("", "message") && e.child("", "subject") != nil })
	wantPresenceError(t, joinRoom(bob, lounge+"/Bob", ""), "item-not-found")
	if r := ownerSubmit(alice, lounge, "<field var='muc#roomconfig_roomname'><value>The Lounge</value></field>"); r.attr("type") != "result" {
		t.Fatalf("configuring: %s", r)
	}

	// bob and carol come in and see who is there.
	if p := joinRoom(bob, lounge+"/Bob", ""); p.attr("type") == "error" {
		t.Fatalf("bob: %s", p)
	}
	alice.expect("bob's presence", isPresence("", lounge+"/Bob"))
	if p := joinRoom(carol, lounge+"/Carol", ""); p.attr("type") == "error" {
		t.Fatalf("carol: %s", p)
	}
	for _, c := range []*client{alice, bob} {
		c.expect("carol's presence", isPresence("", lounge+"/Carol"))
	}
	carol.expect("alice's presence", isPresence("", lounge+"/Alice"))
	carol.expect("bob's presence", isPresence("", lounge+"/Bob"))
	// A nick in use is refused.
	dave := login(t, o, "dave@localhost/d", pw)
	wantPresenceError(t, joinRoom(dave, lounge+"/Bob", ""), "conflict")

	// They talk: each message reaches everyone, the sender too, stamped.
	say := func(c *client, nick, body string) {
		t.Helper()
		c.send(fmt.Sprintf("<message type='groupchat' to='%s' id='%s'><body>%s</body></message>", lounge, newID(), body))
		for _, r := range []*client{alice, bob, carol} {
			m := r.expect(nick+": "+body, isGroupchat(lounge+"/"+nick, body))
			if sid := m.child(nsSID, "stanza-id"); sid == nil || sid.attr("by") != lounge || sid.attr("id") == "" {
				t.Fatalf("no stanza-id by the room: %s", m)
			}
		}
	}
	say(alice, "Alice", "welcome")
	say(bob, "Bob", "hi all")
	say(carol, "Carol", "hello")

	// Moderation. bob, a participant, may not kick.
	r := adminSet(bob, lounge, "<item nick='Carol' role='none'/>")
	if _, c := r.stanzaError(); c != "forbidden" {
		t.Fatalf("a participant kicked: %s", r)
	}
	// alice takes carol's voice; carol's messages bounce; voice back.
	if r := adminSet(alice, lounge, "<item nick='Carol' role='visitor'/>"); r.attr("type") != "result" {
		t.Fatalf("revoking voice: %s", r)
	}
	p := carol.expect("carol's new role", isPresence("", lounge+"/Carol"))
	if mucItem(p).attr("role") != "visitor" {
		t.Fatalf("carol's role: %s", p)
	}
	carol.send("<message type='groupchat' to='" + lounge + "' id='v1'><body>can I speak?</body></message>")
	e := carol.expect("forbidden", func(e *element) bool { return e.is("", "message") && e.attr("type") == "error" })
	if _, c := e.stanzaError(); c != "forbidden" {
		t.Fatalf("a visitor spoke: %s", e)
	}
	if r := adminSet(alice, lounge, "<item nick='Carol' role='participant'/>"); r.attr("type") != "result" {
		t.Fatalf("granting voice: %s", r)
	}
	for _, c := range []*client{alice, bob, carol} {
		c.expect("carol's voice", func(e *element) bool {
			return isPresence("", lounge+"/Carol")(e) && mucItem(e).attr("role") == "participant"
		})
	}

	// alice kicks bob (307); a kicked user may come back.
	if r := adminSet(alice, lounge, "<item nick='Bob' role='none'><reason>cool off</reason></item>"); r.attr("type") != "result" {
		t.Fatalf("kick: %s", r)
	}
	p = bob.expect("kicked", isPresence("unavailable", lounge+"/Bob"))
	if c := mucCodes(p); !slices.Contains(c, "307") || !slices.Contains(c, "110") || mucItem(p).child(nsMUCUser, "reason").Text != "cool off" {
		t.Fatalf("kick presence: %s", p)
	}
	for _, c := range []*client{alice, carol} {
		c.expect("bob kicked", isPresence("unavailable", lounge+"/Bob"))
	}
	if p := joinRoom(bob, lounge+"/Bob", ""); p.attr("type") == "error" {
		t.Fatalf("kicked bob coming back: %s", p)
	}
	alice.expect("bob back", isPresence("", lounge+"/Bob"))
	carol.expect("bob back", isPresence("", lounge+"/Bob"))

	// alice bans bob by bare JID (301): out, and no resource of his gets in.
	if r := adminSet(alice, lounge, "<item jid='bob@localhost' affiliation='outcast'><reason>spam</reason></item>"); r.attr("type") != "result" {
		t.Fatalf("ban: %s", r)
	}
	p = bob.expect("banned", isPresence("unavailable", lounge+"/Bob"))
	if !slices.Contains(mucCodes(p), "301") {
		t.Fatalf("ban presence: %s", p)
	}
	bob2 := login(t, o, "bob@localhost/tablet", pw)
	wantPresenceError(t, joinRoom(bob2, lounge+"/Bobby", ""), "forbidden")
	list := alice.iq("<iq type='get' to='" + lounge + "'><query xmlns='" + nsMUCAdmin + "'><item affiliation='outcast'/></query></iq>")
	if it := list.path("query", "item"); it == nil || it.attr("jid") != "bob@localhost" {
		t.Fatalf("outcast list: %s", list)
	}

	// carol leaves; alice sees her go; she comes back to the history.
	carol.send("<presence type='unavailable' to='" + lounge + "/Carol'><status>brb</status></presence>")
	carol.expect("own leave", isPresence("unavailable", lounge+"/Carol"))
	alice.expect("carol gone", isPresence("unavailable", lounge+"/Carol"))
	say2 := "while carol was away"
	alice.send("<message type='groupchat' to='" + lounge + "'><body>" + say2 + "</body></message>")
	alice.expect("own message", isGroupchat(lounge+"/Alice", say2))
	if p := joinRoom(carol, lounge+"/Carol", "<history maxstanzas='3'/>"); p.attr("type") == "error" {
		t.Fatalf("carol back: %s", p)
	}
	var history []string
	for range 3 {
		m := carol.expect("history", func(e *element) bool {
			return e.is("", "message") && e.attr("type") == "groupchat" && e.child(nsDelay, "delay") != nil
		})
		history = append(history, bodyOf(m))
	}
	if want := []string{"hi all", "hello", say2}; !slices.Equal(history, want) {
		t.Fatalf("history %q, want %q", history, want)
	}
	carol.expect("subject", func(e *element) bool { return e.is("", "message") && e.child("", "subject") != nil })
	alice.expect("carol back", isPresence("", lounge+"/Carol"))

	// Password and members-only refusals.
	if r := ownerSubmit(alice, lounge, "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"+
		"<field var='muc#roomconfig_roomsecret'><value>sesame</value></field>"); r.attr("type") != "result" {
		t.Fatalf("password: %s", r)
	}
	wantPresenceError(t, joinRoom(dave, lounge+"/Dave", ""), "not-authorized")
	if p := joinRoom(dave, lounge+"/Dave", "<password>sesame</password>"); p.attr("type") == "error" {
		t.Fatalf("dave with the password: %s", p)
	}
	dave.send("<presence type='unavailable' to='" + lounge + "/Dave'/>")
	dave.expect("own leave", isPresence("unavailable", lounge+"/Dave"))
	if r := ownerSubmit(alice, lounge, "<field var='muc#roomconfig_membersonly'><value>1</value></field>"); r.attr("type") != "result" {
		t.Fatalf("members-only: %s", r)
	}
	// carol, no member, is removed (322); dave is refused.
	carol.expect("removed, members only", func(e *element) bool {
		return isPresence("unavailable", lounge+"/Carol")(e) && slices.Contains(mucCodes(e), "322")
	})
	wantPresenceError(t, joinRoom(dave, lounge+"/Dave", "<password>sesame</password>"), "registration-required")
	// Made a member, dave gets in.
	if r := adminSet(alice, lounge, "<item jid='dave@localhost' affiliation='member'/>"); r.attr("type") != "result" {
		t.Fatalf("member: %s", r)
	}
	if p := joinRoom(dave, lounge+"/Dave", "<password>sesame</password>"); p.attr("type") == "error" {
		t.Fatalf("member dave: %s", p)
	}

	// Self-ping (XEP-0410) is answered by the room for a joined client.
	if r := dave.iq("<iq type='get' to='" + lounge + "/Dave'><ping xmlns='" + nsPing + "'/></iq>"); r.attr("type") != "result" {
		t.Fatalf("self-ping: %s", r)
	}
	if r := carol.iq("<iq type='get' to='" + lounge + "/Carol'><ping xmlns='" + nsPing + "'/></iq>"); r.attr("type") != "error" {
		t.Fatalf("self-ping of a client not in the room: %s", r)
	}

	// alice destroys the room, pointing to another.
	if r := alice.iq("<iq type='set' to='" + lounge + "'><query xmlns='" + nsMUCOwner + "'><destroy jid='new@" + mucDomain +
		"'><reason>moving</reason></destroy></query></iq>"); r.attr("type") != "result" {
		t.Fatalf("destroy: %s", r)
	}
	p = dave.expect("destroyed", isPresence("unavailable", lounge+"/Dave"))
	if d := p.child(nsMUCUser, "x").child(nsMUCUser, "destroy"); d == nil || d.attr("jid") != "new@"+mucDomain {
		t.Fatalf("destroy presence: %s", p)
	}
	r = alice.iq("<iq type='get' to='" + lounge + "'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	if _, c := r.stanzaError(); c != "item-not-found" {
		t.Fatalf("disco of a destroyed room: %s", r)
	}
}

// TestMUCClientGone: a client whose connection just drops leaves the room,
// and the room's list shows public rooms only.
func TestMUCClientGone(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-muc"
	srv.addUser(t, "alice@localhost", pw)
	srv.addUser(t, "bob@localhost", pw)
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	alice := login(t, o, "alice@localhost/pc", pw)
	bob := login(t, o, "bob@localhost/phone", pw)
	joinRoom(alice, lounge+"/Alice", "")
	ownerSubmit(alice, lounge, "")
	joinRoom(bob, lounge+"/Bob", "")
	alice.expect("bob", isPresence("", lounge+"/Bob"))
	joinRoom(alice, "hidden@"+mucDomain+"/Alice", "")
	ownerSubmit(alice, "hidden@"+mucDomain, "<field var='muc#roomconfig_publicroom'><value>0</value></field>")

	list := bob.iq("<iq type='get' to='" + mucDomain + "'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
	if s := list.String(); !strings.Contains(s, lounge) || strings.Contains(s, "hidden@") {
		t.Fatalf("room list: %s", s)
	}

	bob.sess.Conn().Close() // no unavailable presence, no </stream>
	alice.expect("bob gone with his connection", isPresence("unavailable", lounge+"/Bob"))
}

// TestMUCSlixmpp: a client people run, Debian's python3-slixmpp with its
// XEP-0045 plugin, joins a room a Go client made, gets its history, and
// the two talk.
func TestMUCSlixmpp(t *testing.T) {
	t.Parallel()
	needSlixmpp(t, "slixmpp.plugins.xep_0045")
	srv := startServer(t, defaultOptions())
	const pw = "pw-muc"
	srv.addUser(t, "alice@localhost", pw)
	srv.addUser(t, "bob@localhost", pw)
	alice := login(t, dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}, "alice@localhost/pc", pw)
	joinRoom(alice, lounge+"/Alice", "")
	ownerSubmit(alice, lounge, "")
	alice.send("<message type='groupchat' to='" + lounge + "'><body>before you came</body></message>")
	alice.expect("own message", isGroupchat(lounge+"/Alice", "before you came"))

	got, log, err := runSlixmpp(t, srv, "slixmpp_muc.py", map[string]any{
		"jid": "bob@localhost/slix", "password": pw, "room": lounge, "nick": "Bob",
		"say": "hello from slixmpp", "want": "hello back",
	}, func(line string) {
		if line == "JOINED" {
			alice.expect("bob's presence", isPresence("", lounge+"/Bob"))
			alice.expect("bob's message", isGroupchat(lounge+"/Bob", "hello from slixmpp"))
			alice.send("<message type='groupchat' to='" + lounge + "'><body>hello back</body></message>")
		}
	})
	if err != nil || !strings.Contains(got, "HISTORY before you came") || !strings.Contains(got, "GOT hello back") || !strings.Contains(got, "OK") {
		t.Fatalf("slixmpp: %v; its output: %s\nits log:\n%s", err, got, log)
	}
	alice.expect("bob leaves", isPresence("unavailable", lounge+"/Bob"))
}

// TestMUCPersistence: a persistent room, its configuration, subject and
// affiliations outlive a restart of koi in the sql plugin; a temporary
// room does not.
func TestMUCPersistence(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.MUCStore = true
	srv := startServer(t, opt)
	const pw = "pw-muc"
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	alice := login(t, o, "alice@localhost/pc", pw)
	const kept, temp = "kept@" + mucDomain, "temp@" + mucDomain
	joinRoom(alice, kept+"/Alice", "")
	if r := ownerSubmit(alice, kept, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"+
		"<field var='muc#roomconfig_membersonly'><value>1</value></field>"+
		"<field var='muc#roomconfig_roomname'><value>Kept</value></field>"+
		"<field var='muc#roomconfig_roomadmins'><value>dave@localhost</value></field>"); r.attr("type") != "result" {
		t.Fatalf("configuring: %s", r)
	}
	for _, item := range []string{
		"<item jid='bob@localhost' affiliation='member' nick='Bobby'/>",
		"<item jid='carol@localhost' affiliation='outcast'><reason>spam</reason></item>",
	} {
		if r := adminSet(alice, kept, item); r.attr("type") != "result" {
			t.Fatalf("%s: %s", item, r)
		}
	}
	alice.send("<message type='groupchat' to='" + kept + "'><subject>Kept topic</subject></message>")
	alice.expect("subject", func(e *element) bool {
		return e.is("", "message") && e.child("", "subject") != nil && e.child("", "subject").Text == "Kept topic"
	})
	joinRoom(alice, temp+"/Alice", "")
	ownerSubmit(alice, temp, "")
	alice.close()

	srv.stop(t)
	srv = launch(t, srv.dir, srv.config, srv.c2s, srv.c2sTLS, srv.opt, nil)
	if !strings.Contains(srv.log.String(), "rooms loaded") {
		t.Fatalf("koi did not load rooms:\n%s", srv.log.String())
	}

	bob := login(t, o, "bob@localhost/phone", pw)
	info := bob.iq("<iq type='get' to='" + kept + "'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	if s := info.String(); !strings.Contains(s, "name='Kept'") || !strings.Contains(s, "muc_membersonly") || !strings.Contains(s, "muc_persistent") || !strings.Contains(s, "Kept topic") {
		t.Fatalf("room after a restart: %s", s)
	}
	// bob is still a member, with his reserved nick; dave an admin.
	p := joinRoom(bob, kept+"/Bobby", "")
	if p.attr("type") == "error" || mucItem(p).attr("affiliation") != "member" {
		t.Fatalf("member after a restart: %s", p)
	}
	bob.expect("subject", func(e *element) bool {
		return e.is("", "message") && e.child("", "subject") != nil && e.child("", "subject").Text == "Kept topic"
	})
	dave := login(t, o, "dave@localhost/d", pw)
	wantPresenceError(t, joinRoom(dave, kept+"/Bobby", ""), "conflict")
	if p := joinRoom(dave, kept+"/Dave", ""); p.attr("type") == "error" || mucItem(p).attr("affiliation") != "admin" || mucItem(p).attr("role") != "moderator" {
		t.Fatalf("admin after a restart: %s", p)
	}
	// carol is still banned.
	carol := login(t, o, "carol@localhost/x", pw)
	wantPresenceError(t, joinRoom(carol, kept+"/Carol", ""), "forbidden")
	// alice still owns it.
	alice = login(t, o, "alice@localhost/pc", pw)
	joinRoom(alice, kept+"/Alice", "")
	if r := alice.iq("<iq type='get' to='" + kept + "'><query xmlns='" + nsMUCOwner + "'/></iq>"); r.attr("type") != "result" {
		t.Fatalf("owner after a restart: %s", r)
	}
	// The temporary room is gone.
	r := alice.iq("<iq type='get' to='" + temp + "'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	if _, c := r.stanzaError(); c != "item-not-found" {
		t.Fatalf("a temporary room after a restart: %s", r)
	}
	// Destroyed, the room does not come back.
	if r := alice.iq("<iq type='set' to='" + kept + "'><query xmlns='" + nsMUCOwner + "'><destroy/></query></iq>"); r.attr("type") != "result" {
		t.Fatalf("destroy: %s", r)
	}
	alice.close()
	srv.stop(t)
	launch(t, srv.dir, srv.config, srv.c2s, srv.c2sTLS, srv.opt, nil)
	bob = login(t, o, "bob@localhost/again", pw)
	r = bob.iq("<iq type='get' to='" + kept + "'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	if _, c := r.stanzaError(); c != "item-not-found" {
		t.Fatalf("a destroyed room after a restart: %s", r)
	}
}

// TestMUCBadInput: what a careless or hostile client sends to the chat
// service gets the XEP's errors, and leaves nothing behind.
func TestMUCBadInput(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.MUCStore = true
	opt.MUC = `join_rate = 4  join_window = "1m"  max_rooms_per_user = 3`
	srv := startServer(t, opt)
	const pw = "pw-muc"
	srv.addUser(t, "alice@localhost", pw)
	srv.addUser(t, "mallory@localhost", pw)
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	alice := login(t, o, "alice@localhost/pc", pw)
	mallory := login(t, o, "mallory@localhost/m", pw)

	// A room that does not exist, configured with a bad form: not found,
	// and no room appears.
	r := mallory.iq("<iq type='set' to='ghost@" + mucDomain + "'><query xmlns='" + nsMUCOwner + "'><x xmlns='jabber:x:data' type='submit'>" +
		"<field var='muc#roomconfig_whois'><value>everybody</value></field></x></query></iq>")
	if _, c := r.stanzaError(); c != "item-not-found" {
		t.Fatalf("owner form to no room: %s", r)
	}
	// Presence without the MUC payload creates nothing either.
	mallory.send("<presence to='ghost@" + mucDomain + "/M'/>")
	p := mallory.expect("error", isPresence("error", "ghost@"+mucDomain+"/M"))
	if _, c := p.stanzaError(); c != "item-not-found" {
		t.Fatalf("plain presence to no room: %s", p)
	}
	// A join without a nick.
	mallory.send("<presence to='ghost@" + mucDomain + "'><x xmlns='" + nsMUC + "'/></presence>")
	p = mallory.expect("error", isPresence("error", "ghost@"+mucDomain))
	if _, c := p.stanzaError(); c != "jid-malformed" {
		t.Fatalf("join without a nick: %s", p)
	}
	items := mallory.iq("<iq type='get' to='" + mucDomain + "'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
	if items.child("", "query").child("", "item") != nil {
		t.Fatalf("rooms appeared: %s", items)
	}

	// A configuration form with a bad value changes nothing, stored or not.
	joinRoom(alice, lounge+"/Alice", "")
	ownerSubmit(alice, lounge, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>")
	r = ownerSubmit(alice, lounge, "<field var='muc#roomconfig_membersonly'><value>1</value></field><field var='muc#roomconfig_maxusers'><value>lots</value></field>")
	if _, c := r.stanzaError(); c != "not-acceptable" {
		t.Fatalf("bad form: %s", r)
	}
	if p := joinRoom(mallory, lounge+"/Mallory", ""); p.attr("type") == "error" {
		t.Fatalf("a refused form made the room members-only: %s", p)
	}
	alice.expect("mallory", isPresence("", lounge+"/Mallory"))

	// Nick spoofing: the room stamps each sender's own nick; a from naming
	// another occupant never gets that far (the server closes the stream).
	mallory.send("<message type='groupchat' to='" + lounge + "'><body>I am alice</body></message>")
	if m := alice.expect("mallory's message", func(e *element) bool { return e.is("", "message") && bodyOf(e) == "I am alice" }); m.attr("from") != lounge+"/Mallory" {
		t.Fatalf("spoofed: %s", m)
	}
	spoofer := login(t, o, "mallory@localhost/spoof", pw)
	spoofer.send("<message type='groupchat' from='" + lounge + "/Alice' to='" + lounge + "'><body>as alice</body></message>")
	if c, err := spoofer.waitStreamError(waitTimeout); c != "invalid-from" {
		t.Fatalf("a spoofed from: %q %v", c, err)
	}
	alice.expectNone("the spoofed message", 300*time.Millisecond, func(e *element) bool { return bodyOf(e) == "as alice" })
	// Taking alice's nick is a conflict; a blank nick is refused.
	mallory.send("<presence to='" + lounge + "/Alice'/>")
	p = mallory.expect("conflict", isPresence("error", lounge+"/Alice"))
	if _, c := p.stanzaError(); c != "conflict" {
		t.Fatalf("nick change to a taken nick: %s", p)
	}
	// A groupchat message to an occupant is not a private message.
	mallory.send("<message type='groupchat' to='" + lounge + "/Alice'><body>x</body></message>")
	e := mallory.expect("error", func(e *element) bool { return e.is("", "message") && e.attr("type") == "error" })
	if _, c := e.stanzaError(); c != "bad-request" {
		t.Fatalf("groupchat to an occupant: %s", e)
	}
	// Kicking as a participant, banning a full JID.
	if r := adminSet(mallory, lounge, "<item nick='Alice' role='none'/>"); r.attr("type") != "error" {
		t.Fatalf("participant kicked the owner: %s", r)
	}
	if r := adminSet(alice, lounge, "<item jid='mallory@localhost/m' affiliation='outcast'/>"); r.attr("type") != "error" {
		t.Fatalf("a ban of a full JID: %s", r)
	}

	// A flood of rooms and joins: past max_rooms_per_user, policy-violation;
	// past join_rate, resource-constraint; the refused rooms are not kept.
	var conds []string
	for i := range 4 {
		room := fmt.Sprintf("flood%d@%s", i, mucDomain)
		p := joinRoom(mallory, room+"/M", "")
		_, c := p.stanzaError()
		conds = append(conds, c)
	}
	if want := []string{"", "", "", "policy-violation"}; !slices.Equal(conds, want) {
		t.Fatalf("flood: %q, want %q", conds, want)
	}
	items = alice.iq("<iq type='get' to='" + mucDomain + "'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
	if strings.Contains(items.String(), "flood3@") {
		t.Fatalf("a refused room is listed: %s", items)
	}
	mallory2 := login(t, o, "mallory@localhost/other", pw)
	// Her fifth join within the window, to a room that exists.
	p = joinRoom(mallory2, "flood0@"+mucDomain+"/M", "")
	if _, c := p.stanzaError(); c != "resource-constraint" {
		t.Fatalf("a fifth join: %s", p)
	}
}

// TestMUCStoreOutage: while the plugin does not answer, a change to a
// persistent room is refused with a wait error and changes nothing, and
// the room's conversation goes on meanwhile.
func TestMUCStoreOutage(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.MUCStore = true
	srv := startServer(t, opt)
	const pw = "pw-muc"
	srv.addUser(t, "alice@localhost", pw)
	srv.addUser(t, "bob@localhost", pw)
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	alice := login(t, o, "alice@localhost/pc", pw)
	bob := login(t, o, "bob@localhost/phone", pw)
	joinRoom(alice, lounge+"/Alice", "")
	if r := ownerSubmit(alice, lounge, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"); r.attr("type") != "result" {
		t.Fatalf("persistent: %s", r)
	}
	joinRoom(bob, lounge+"/Bob", "")
	alice.expect("bob", isPresence("", lounge+"/Bob"))

	pids := srv.pluginPIDs(t)
	if len(pids) != 1 {
		t.Fatalf("plugin children %v, want one", pids)
	}
	// Stopped for good before the change is sent: a plugin thread that
	// runs on until the stop takes hold could still store it.
	if err := sigstop.Stop(pids[0], 5*time.Second); err != nil {
		t.Fatal(err)
	}
	stopped := true
	cont := func() {
		if stopped {
			stopped = false
			syscall.Kill(pids[0], syscall.SIGCONT)
		}
	}
	t.Cleanup(cont)

	answer := make(chan *element, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r, _ := alice.iqCtx(ctx, "<iq type='set' to='"+lounge+"'><query xmlns='"+nsMUCOwner+"'><x xmlns='jabber:x:data' type='submit'>"+
			"<field var='muc#roomconfig_membersonly'><value>1</value></field></x></query></iq>")
		answer <- r
	}()
	// The conversation goes on while the store is stuck.
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	bob.send("<message type='groupchat' to='" + lounge + "'><body>still here</body></message>")
	alice.expect("bob's message during the outage", isGroupchat(lounge+"/Bob", "still here"))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("groupchat waited %v for the store", d)
	}
	r := <-answer
	if typ, c := r.stanzaError(); typ != "wait" || c != "internal-server-error" {
		t.Fatalf("a change the store did not take: %s", r)
	}
	cont()
	// Nothing changed: bob, no member, is still in, the room still open.
	info := bob.iq("<iq type='get' to='" + lounge + "'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	if s := info.String(); !strings.Contains(s, "muc_open") {
		t.Fatalf("after a refused change: %s", s)
	}
	bob.expectNone("removal", 200*time.Millisecond, isPresence("unavailable", lounge+"/Bob"))
	// With the store back, the same change goes through.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := ownerSubmit(alice, lounge, "<field var='muc#roomconfig_membersonly'><value>1</value></field>")
		if r.attr("type") == "result" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store is not back: %s", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	bob.expect("removed, members only", func(e *element) bool {
		return isPresence("unavailable", lounge+"/Bob")(e) && slices.Contains(mucCodes(e), "322")
	})
}

// TestMUCReloadFollowsStore: a reload that restarts the store's plugin
// with new settings leaves the chat service writing to the new process.
func TestMUCReloadFollowsStore(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.MUCStore = true
	srv := startServer(t, opt)
	const pw = "pw-muc"
	srv.addUser(t, "alice@localhost", pw)
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	alice := login(t, o, "alice@localhost/pc", pw)
	joinRoom(alice, lounge+"/Alice", "")
	if r := ownerSubmit(alice, lounge, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"); r.attr("type") != "result" {
		t.Fatalf("persistent: %s", r)
	}
	old := srv.pluginPIDs(t)

	src, err := os.ReadFile(srv.config)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(src), "plugin \"store\" {\n", "plugin \"store\" {\n  call_timeout = \"6s\"\n", 1)
	if err := os.WriteFile(srv.config, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(srv.log.String(), "configuration reloaded") {
		if time.Now().After(deadline) {
			t.Fatal("no reload")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The old process is gone once its grace ran out.
	for slices.Equal(srv.pluginPIDs(t), old) || len(srv.pluginPIDs(t)) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes %v, the old was %v", srv.pluginPIDs(t), old)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := ownerSubmit(alice, lounge, "<field var='muc#roomconfig_roomname'><value>After reload</value></field>"); r.attr("type") != "result" {
		t.Fatalf("a change after the reload: %s", r)
	}
	alice.close()
	srv.stop(t)
	launch(t, srv.dir, srv.config, srv.c2s, srv.c2sTLS, srv.opt, nil)
	alice = login(t, o, "alice@localhost/pc", pw)
	if info := alice.iq("<iq type='get' to='" + lounge + "'><query xmlns='" + nsDiscoInfo + "'/></iq>"); !strings.Contains(info.String(), "name='After reload'") {
		t.Fatalf("the change made after the reload was not stored: %s", info)
	}
}

// TestMUCRoomAvatar: slixmpp, as an owner, sets a room's avatar with a
// vCard on the room (XEP-0486), reads it back and finds its hash in the
// room's disco#info; the occupants are told (status 104), and the avatar
// outlives a restart of koi.
func TestMUCRoomAvatar(t *testing.T) {
	t.Parallel()
	needSlixmpp(t, "slixmpp.plugins.xep_0054")
	opt := defaultOptions()
	opt.MUCStore = true
	srv := startServer(t, opt)
	const pw = "pw-mucavatar"
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	const room = "pictured@" + mucDomain
	alice := login(t, o, "alice@localhost/pc", pw)
	joinRoom(alice, room+"/Alice", "")
	if r := ownerSubmit(alice, room, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"+
		"<field var='muc#roomconfig_roomowners'><value>alice@localhost</value><value>bob@localhost</value></field>"); r.attr("type") != "result" {
		t.Fatalf("configuring: %s", r)
	}
	img := []byte("\x89PNG\r\n\x1a\n a room avatar")
	sum := sha1.Sum(img)
	hash := hex.EncodeToString(sum[:])
	got, log, err := runSlixmpp(t, srv, "slixmpp_muc_vcard.py", map[string]any{
		"jid": "bob@localhost/slix", "password": pw, "room": room,
		"photo": base64.StdEncoding.EncodeToString(img),
	}, func(string) {})
	if want := "SET | PHOTO image/png " + hash + " | HASH " + hash + " | OK"; err != nil || got != want {
		t.Fatalf("slixmpp: %v; its output: %s, want %s\nits log:\n%s", err, got, want, log)
	}
	alice.expect("status 104", func(e *element) bool {
		return e.is("", "message") && e.attr("from") == room && slices.Contains(mucCodes(e), "104")
	})
	alice.close()

	srv.stop(t)
	launch(t, srv.dir, srv.config, srv.c2s, srv.c2sTLS, srv.opt, nil)
	carol := login(t, o, "carol@localhost/x", pw)
	info := carol.iq("<iq type='get' to='" + room + "'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	if s := info.String(); !strings.Contains(s, "muc#roominfo_avatarhash") || !strings.Contains(s, hash) || !strings.Contains(s, "var='vcard-temp'") {
		t.Fatalf("the room's disco#info after a restart: %s", s)
	}
	v := carol.iq("<iq type='get' to='" + room + "'><vCard xmlns='vcard-temp'/></iq>")
	bin := v.child("vcard-temp", "vCard").child("vcard-temp", "PHOTO").child("vcard-temp", "BINVAL")
	if bin == nil {
		t.Fatalf("the room's vCard after a restart has no photo: %s", v)
	}
	if data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(bin.Text), "")); err != nil || !bytes.Equal(data, img) {
		t.Fatalf("the room's vCard after a restart: %s", v)
	}
}

// TestMUCRegister: a member registers a nickname with a room over a real
// stream (XEP-0045 §7.10), finds it on the x-roomuser-item node (§7.12)
// and keeps it from others; registration does not reach the server's own
// in-band registration.
func TestMUCRegister(t *testing.T) {
	t.Parallel()
	opt := defaultOptions()
	opt.MUCStore = true
	srv := startServer(t, opt)
	const pw = "pw-mucreg"
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	const room = "club@" + mucDomain
	alice := login(t, o, "alice@localhost/pc", pw)
	joinRoom(alice, room+"/Alice", "")
	if r := ownerSubmit(alice, room, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"); r.attr("type") != "result" {
		t.Fatalf("configuring: %s", r)
	}
	if r := adminSet(alice, room, "<item jid='bob@localhost' affiliation='member'/>"); r.attr("type") != "result" {
		t.Fatalf("making bob a member: %s", r)
	}
	bob := login(t, o, "bob@localhost/phone", pw)
	form := bob.iq("<iq type='get' to='" + room + "'><query xmlns='jabber:iq:register'/></iq>")
	if !strings.Contains(form.String(), "muc#register_roomnick") {
		t.Fatalf("the registration form: %s", form)
	}
	if r := bob.iq("<iq type='set' to='" + room + "'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>" +
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>" +
		"<field var='muc#register_roomnick'><value>Bobby</value></field></x></query></iq>"); r.attr("type") != "result" {
		t.Fatalf("registering: %s", r)
	}
	info := bob.iq("<iq type='get' to='" + room + "'><query xmlns='" + nsDiscoInfo + "' node='x-roomuser-item'/></iq>")
	if id := info.child(nsDiscoInfo, "query").child(nsDiscoInfo, "identity"); id == nil || id.attr("name") != "Bobby" {
		t.Fatalf("bob's reserved nickname: %s", info)
	}
	carol := login(t, o, "carol@localhost/x", pw)
	if r := carol.iq("<iq type='get' to='" + room + "'><query xmlns='jabber:iq:register'/></iq>"); !strings.Contains(r.String(), "registration-required") {
		t.Fatalf("an unaffiliated user's registration: %s", r)
	}
	wantPresenceError(t, joinRoom(carol, room+"/Bobby", ""), "conflict")
	if p := joinRoom(bob, room+"/Bobby", ""); p.attr("type") == "error" {
		t.Fatalf("bob enters under his nickname: %s", p)
	}
}
