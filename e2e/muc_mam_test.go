package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMUCArchive: three users of a real koi with its archive in the sql
// plugin talk in a room; one leaves and later reads what was said from the
// room's archive (XEP-0313 on the room), page by page, under the ids the
// room stamped live; a non-member of a members-only room is refused.
func TestMUCArchive(t *testing.T) {
	t.Parallel()
	srv := archiveServer(t, "sql", "", "", "")
	const pw = "pw-mucmam"
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	alice := login(t, o, "alice@localhost/pc", pw)
	bob := login(t, o, "bob@localhost/phone", pw)
	carol := login(t, o, "carol@localhost/laptop", pw)
	dave := login(t, o, "dave@localhost/d", pw)

	// alice creates the room; logging is on by default (status 170).
	self := joinRoom(alice, lounge+"/Alice", "")
	if !slices.Contains(mucCodes(self), "201") {
		t.Fatalf("creation: %s", self)
	}
	alice.expect("empty subject", func(e *element) bool { return e.is("", "message") && e.child("", "subject") != nil })
	if r := ownerSubmit(alice, lounge, ""); r.attr("type") != "result" {
		t.Fatalf("configuring: %s", r)
	}
	info := bob.iq("<iq type='get' to='" + lounge + "'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	if !strings.Contains(info.String(), "var='"+nsMAM+"'") {
		t.Fatalf("room disco#info lacks %s: %s", nsMAM, info)
	}
	if p := joinRoom(bob, lounge+"/Bob", ""); p.attr("type") == "error" || !slices.Contains(mucCodes(p), "170") {
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

	// They talk; carol notes the stanza-id of each message.
	var said, live []string
	nicks := map[*client]string{alice: "Alice", bob: "Bob", carol: "Carol"}
	for i, c := range []*client{alice, bob, carol, alice, bob, carol, alice} {
		body := fmt.Sprintf("line %d from %s", i, nicks[c])
		c.send(fmt.Sprintf("<message type='groupchat' to='%s' id='%s'><body>%s</body></message>", lounge, newID(), body))
		for _, r := range []*client{alice, bob, carol} {
			m := r.expect(body, isGroupchat(lounge+"/"+nicks[c], body))
			if r == carol {
				live = append(live, m.child(nsSID, "stanza-id").attr("id"))
			}
		}
		said = append(said, body)
	}

	// carol leaves.
	carol.send("<presence type='unavailable' to='" + lounge + "/Carol'/>")
	carol.expect("carol's exit", isPresence("unavailable", lounge+"/Carol"))

	// Later she reads the room's archive, three at a time.
	var got, ids []string
	page := carol.mamTo(lounge, waitTimeout, "<max>3</max>")
	for pages := 1; ; pages++ {
		if page.reply.attr("type") != "result" {
			t.Fatalf("query: %s", page.reply)
		}
		if len(page.bodies) > 3 {
			t.Fatalf("a page of %d with max 3", len(page.bodies))
		}
		for _, m := range page.msgs {
			// Semi-anonymous room: occupant JIDs, no real JID for carol.
			if !strings.HasPrefix(m.attr("from"), lounge+"/") || strings.Contains(m.String(), "@localhost/") || strings.Contains(m.String(), "jid=") {
				t.Fatalf("archived message shows more than the room did: %s", m)
			}
		}
		got = append(got, page.bodies...)
		ids = append(ids, page.ids...)
		if page.complete() {
			if pages != 3 {
				t.Fatalf("%d pages for 7 messages at 3 a page", pages)
			}
			break
		}
		page = carol.mamTo(lounge, waitTimeout, "<max>3</max><after>"+page.rsm("last")+"</after>")
	}
	if !slices.Equal(got, said) {
		t.Fatalf("archive %q, said %q", got, said)
	}
	if !slices.Equal(ids, live) {
		t.Fatalf("archive ids %v, stanza-ids seen live %v", ids, live)
	}
	// The owner, a moderator, sees who said what.
	own := alice.mamTo(lounge, waitTimeout, "<max>2</max>")
	if it := own.msgs[1].child(nsMUCUser, "x").child(nsMUCUser, "item"); it == nil || it.attr("jid") != "bob@localhost" {
		t.Fatalf("the owner sees %s", own.msgs[1])
	}

	// A members-only room: dave, no member, is refused; bob, a member who
	// left, reads it.
	const club = "club@" + mucDomain
	joinRoom(alice, club+"/Alice", "")
	alice.expect("empty subject", func(e *element) bool {
		return e.is("", "message") && e.child("", "subject") != nil && e.attr("from") == club
	})
	if r := ownerSubmit(alice, club, "<field var='muc#roomconfig_membersonly'><value>1</value></field>"); r.attr("type") != "result" {
		t.Fatalf("configuring: %s", r)
	}
	if r := adminSet(alice, club, "<item affiliation='member' jid='bob@localhost'/>"); r.attr("type") != "result" {
		t.Fatalf("adding a member: %s", r)
	}
	if p := joinRoom(bob, club+"/Bob", ""); p.attr("type") == "error" {
		t.Fatalf("bob: %s", p)
	}
	bob.send("<message type='groupchat' to='" + club + "'><body>members only</body></message>")
	bob.expect("his message", isGroupchat(club+"/Bob", "members only"))
	refused := dave.mamTo(club, waitTimeout, "")
	if _, c := refused.reply.stanzaError(); c != "forbidden" || len(refused.bodies) != 0 {
		t.Fatalf("a non-member read a members-only room: %s %v", refused.reply, refused.bodies)
	}
	bob.send("<presence type='unavailable' to='" + club + "/Bob'/>")
	bob.expect("bob's exit", isPresence("unavailable", club+"/Bob"))
	if p := bob.mamTo(club, waitTimeout, ""); !slices.Equal(p.bodies, []string{"members only"}) {
		t.Fatalf("the member reads %v (%s)", p.bodies, p.reply)
	}
}

// TestMUCArchiveSlixmpp: a client people run, slixmpp with its XEP-0313
// plugin, catches up on a room it is not in, page by page.
func TestMUCArchiveSlixmpp(t *testing.T) {
	t.Parallel()
	needSlixmpp(t, "slixmpp.plugins.xep_0313")
	srv := archiveServer(t, "sql", "", "", "")
	const pw = "pw-mucmam"
	for _, u := range []string{"alice", "bob"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	alice := login(t, dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}, "alice@localhost/pc", pw)
	joinRoom(alice, lounge+"/Alice", "")
	alice.expect("empty subject", func(e *element) bool { return e.is("", "message") && e.child("", "subject") != nil })
	if r := ownerSubmit(alice, lounge, ""); r.attr("type") != "result" {
		t.Fatalf("configuring: %s", r)
	}
	var want []string
	for i := range 5 {
		body := fmt.Sprintf("archived %d", i)
		alice.send("<message type='groupchat' to='" + lounge + "'><body>" + body + "</body></message>")
		alice.expect(body, isGroupchat(lounge+"/Alice", body))
		want = append(want, "MSG "+lounge+"/Alice "+body)
	}
	got, log, err := runSlixmpp(t, srv, "slixmpp_muc_mam.py", map[string]any{
		"jid": "bob@localhost/slix", "password": pw, "room": lounge, "max": 2,
	}, func(string) {})
	if err != nil || got != strings.Join(append(want, "OK"), " | ") {
		t.Fatalf("slixmpp: %v; its output: %s\nits log:\n%s", err, got, log)
	}
}

// TestMUCHistoryAfterRestart: a persistent room whose logging is on gives
// its history to newcomers after a restart of koi, read back from the
// room's archive: to a Go client, and to slixmpp's XEP-0045 plugin, which
// gets it among the messages of its join.
func TestMUCHistoryAfterRestart(t *testing.T) {
	t.Parallel()
	needSlixmpp(t, "slixmpp.plugins.xep_0045")
	opt := defaultOptions()
	opt.MUCStore, opt.Archive = true, true
	srv := startServer(t, opt)
	const pw = "pw-muchist"
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	const room = "kept@" + mucDomain
	alice := login(t, o, "alice@localhost/pc", pw)
	joinRoom(alice, room+"/Alice", "")
	if r := ownerSubmit(alice, room, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"); r.attr("type") != "result" {
		t.Fatalf("configuring: %s", r)
	}
	var want []string
	for i := range 3 {
		body := fmt.Sprintf("said before the restart %d", i)
		alice.send("<message type='groupchat' to='" + room + "'><body>" + body + "</body></message>")
		alice.expect(body, isGroupchat(room+"/Alice", body))
		want = append(want, body)
	}
	alice.close()
	srv.stop(t)
	srv = launch(t, srv.dir, srv.config, srv.c2s, srv.c2sTLS, srv.opt, nil)

	bob := login(t, o, "bob@localhost/phone", pw)
	bob.send("<presence to='" + room + "/Bob'><x xmlns='" + nsMUC + "'/></presence>")
	for _, body := range want {
		m := bob.expect("history: "+body, isGroupchat(room+"/Alice", body))
		if m.child("urn:xmpp:delay", "delay") == nil || m.child("http://jabber.org/protocol/muc#user", "x") != nil {
			t.Fatalf("a history message after the restart: %s", m)
		}
	}
	bob.expect("subject", func(e *element) bool { return e.is("", "message") && e.child("", "subject") != nil })

	got, log, err := runSlixmpp(t, srv, "slixmpp_muc.py", map[string]any{
		"jid": "carol@localhost/slix", "password": pw, "room": room, "nick": "Carol",
		"say": "hello after the restart", "want": "welcome back",
	}, func(line string) {
		if line == "JOINED" {
			bob.expect("carol's message", isGroupchat(room+"/Carol", "hello after the restart"))
			bob.send("<message type='groupchat' to='" + room + "'><body>welcome back</body></message>")
		}
	})
	for _, body := range want {
		if !strings.Contains(got, "HISTORY "+body) {
			t.Fatalf("slixmpp did not get %q in the history: %v; its output: %s\nits log:\n%s", body, err, got, log)
		}
	}
	if err != nil || !strings.Contains(got, "OK") {
		t.Fatalf("slixmpp: %v; its output: %s\nits log:\n%s", err, got, log)
	}
}

// TestMUCModerationSlixmpp: slixmpp's XEP-0425 plugin, as a moderator,
// retracts a participant's message by its stanza-id; everyone inside is
// told, slixmpp sees the announcement in the form it knows, and the
// room's archive holds a tombstone in the message's place.
func TestMUCModerationSlixmpp(t *testing.T) {
	t.Parallel()
	needSlixmpp(t, "slixmpp.plugins.xep_0425")
	srv := archiveServer(t, "sql", "", "", "")
	const pw = "pw-mucmod"
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	o := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	alice := login(t, o, "alice@localhost/pc", pw)
	joinRoom(alice, lounge+"/Alice", "")
	if r := ownerSubmit(alice, lounge, "<field var='muc#roomconfig_roomowners'><value>alice@localhost</value><value>bob@localhost</value></field>"); r.attr("type") != "result" {
		t.Fatalf("configuring: %s", r)
	}
	carol := login(t, o, "carol@localhost/x", pw)
	joinRoom(carol, lounge+"/Carol", "")
	carol.send("<message type='groupchat' to='" + lounge + "'><body>buy cheap watches</body></message>")
	echo := carol.expect("her message back", isGroupchat(lounge+"/Carol", "buy cheap watches"))
	spam := echo.child("urn:xmpp:sid:0", "stanza-id").attr("id")
	if spam == "" {
		t.Fatalf("no stanza-id: %s", echo)
	}

	got, log, err := runSlixmpp(t, srv, "slixmpp_muc_moderate.py", map[string]any{
		"jid": "bob@localhost/slix", "password": pw, "room": lounge, "nick": "Bob", "id": spam, "reason": "spam",
	}, func(string) {})
	if want := "JOINED | MODERATED " + spam + " " + lounge + "/Bob | RETRACTED | OK"; err != nil || got != want {
		t.Fatalf("slixmpp: %v; its output: %s, want %s\nits log:\n%s", err, got, want, log)
	}
	ann := carol.expect("the announcement", func(e *element) bool {
		return e.is("", "message") && e.attr("from") == lounge && e.child("urn:xmpp:message-retract:1", "retract") != nil
	})
	if r := ann.child("urn:xmpp:message-retract:1", "retract"); r.attr("id") != spam || r.child("urn:xmpp:message-retract:1", "reason").Text != "spam" {
		t.Fatalf("the announcement: %s", ann)
	}
	page := alice.mamTo(lounge, waitTimeout, "")
	if len(page.msgs) < 1 || page.ids[0] != spam || bodyOf(page.msgs[0]) != "" || page.msgs[0].child("urn:xmpp:message-retract:1", "retracted") == nil {
		t.Fatalf("the archive after moderation: %v", page.msgs)
	}
	// slixmpp's own "oops", retracted with its XEP-0424 plugin, is a
	// tombstone too (the archive is changed a moment after the relay).
	deadline := time.Now().Add(waitTimeout)
	for {
		page = alice.mamTo(lounge, waitTimeout, "")
		var oops *element
		for _, m := range page.msgs {
			if m.attr("from") == lounge+"/Bob" && m.child("urn:xmpp:message-retract:1", "retracted") != nil && bodyOf(m) == "" {
				oops = m
			}
		}
		if oops != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slixmpp's retracted message in the archive: %v", page.msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
