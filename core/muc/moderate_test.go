package muc

import (
	"testing"
	"time"

	"github.com/koi-im/koi/core/xmlstream"
)

// said has j say body in room and returns the stanza-id the room gave it.
func said(t *testing.T, n *testNet, j, room, body string) string {
	t.Helper()
	return saidAs(t, n, j, room, body, "")
}

// saidAs is said with the message's id.
func saidAs(t *testing.T, n *testNet, j, room, body, id string) string {
	t.Helper()
	n.send(j, `<message type='groupchat' id='`+id+`' to='`+room+`'><body>`+body+`</body></message>`)
	for _, el := range n.take(j) {
		if el.Local == "message" && el.Child(xmlstream.NSClient, "body") != nil && el.Child(xmlstream.NSClient, "body").Text() == body {
			if sid := el.Child(NSSID, "stanza-id"); sid != nil {
				return sid.Attr("id")
			}
		}
	}
	t.Fatalf("%s did not get %q back", j, body)
	return ""
}

// moderateIQ sends a moderation request of the given payload from j.
func moderateIQ(n *testNet, j, room, payload string) *xmlstream.Element {
	n.send(j, `<iq type='set' id='mod' to='`+room+`'>`+payload+`</iq>`)
	for _, el := range n.take(j) {
		if el.Local == "iq" {
			return el
		}
	}
	n.t.Fatalf("no answer to %s's moderation", j)
	return nil
}

// announcement checks that el announces the retraction of id by the
// occupant by, with reason, in both versions, and returns it.
func announcement(t *testing.T, el *xmlstream.Element, room, id, by, reason string) {
	t.Helper()
	ret := el.Child(nsRetract1, "retract")
	if el.Attr("from") != room || el.Attr("type") != "groupchat" || ret == nil || ret.Attr("id") != id {
		t.Fatalf("not the announcement of %s: %s", id, el)
	}
	mod := ret.Child(NSModerate1, "moderated")
	if mod == nil || mod.Attr("by") != by || mod.Child(NSOccupantID, "occupant-id") == nil {
		t.Fatalf("announcement without who moderated: %s", el)
	}
	if got := ret.Child(nsRetract1, "reason"); (reason == "") != (got == nil) || (got != nil && got.Text() != reason) {
		t.Fatalf("announcement's reason: %s", el)
	}
	old := el.Child(nsFasten, "apply-to")
	if old == nil || old.Attr("id") != id || old.Child(NSModerate0, "moderated") == nil ||
		old.Child(NSModerate0, "moderated").Child(nsRetract0, "retract") == nil {
		t.Fatalf("announcement without its 0.2 form: %s", el)
	}
	if el.Child(NSSID, "stanza-id") == nil {
		t.Fatalf("announcement without a stanza-id: %s", el)
	}
}

// TestModerate: a moderator retracts a participant's message (XEP-0425):
// everyone inside is told, a newcomer's history and the room's archive
// hold a tombstone in its place, and the announcement is archived too;
// participants may not moderate; the 0.2 request works as well.
func TestModerate(t *testing.T) {
	n, _ := newArchivedNet(t, nil)
	alice, bob, carol := n.user("alice@example.com/pc"), n.user("bob@example.com/phone"), n.user("carol@example.com/tab")
	n.create(alice, lounge+"/Alice")
	n.join(bob, lounge+"/Bob")
	n.join(carol, lounge+"/Carol")
	n.take(alice)
	n.take(bob)
	if f, _ := roomInfo(t, n, carol, lounge); !contains(f, NSModerate1) || !contains(f, NSModerate0) {
		t.Fatalf("moderation not advertised: %v", f)
	}
	spam := said(t, n, bob, lounge, "buy cheap watches")
	kept := said(t, n, bob, lounge, "sorry about that")
	n.take(alice)
	n.take(carol)

	if r := moderateIQ(n, carol, lounge, `<moderate id='`+kept+`' xmlns='urn:xmpp:message-moderate:1'><retract xmlns='urn:xmpp:message-retract:1'/></moderate>`); condition(r) != "forbidden" {
		t.Fatalf("a participant moderates: %s", r)
	}
	if r := moderateIQ(n, alice, lounge, `<moderate xmlns='urn:xmpp:message-moderate:1'><retract xmlns='urn:xmpp:message-retract:1'/></moderate>`); condition(r) != "bad-request" {
		t.Fatalf("a moderation without an id: %s", r)
	}
	if r := moderateIQ(n, alice, lounge, `<moderate id='nosuchid' xmlns='urn:xmpp:message-moderate:1'><retract xmlns='urn:xmpp:message-retract:1'/></moderate>`); condition(r) != "item-not-found" {
		t.Fatalf("a moderation of no message: %s", r)
	}
	r := moderateIQ(n, alice, lounge, `<moderate id='`+spam+`' xmlns='urn:xmpp:message-moderate:1'><retract xmlns='urn:xmpp:message-retract:1'/><reason>spam</reason></moderate>`)
	if r.Attr("type") != "result" {
		t.Fatalf("the owner moderates: %s", r)
	}
	for _, j := range []string{bob, carol} {
		got := n.take(j)
		if len(got) != 1 {
			t.Fatalf("%s got %v", j, got)
		}
		announcement(t, got[0], lounge, spam, lounge+"/Alice", "spam")
	}
	n.take(alice)

	// A newcomer's history has the tombstone in the message's place.
	dave := n.user("dave@example.com/x")
	var hist []*xmlstream.Element
	for _, el := range n.join(dave, lounge+"/Dave") {
		if el.Local == "message" && el.Child(NSDelay, "delay") != nil {
			hist = append(hist, el)
		}
	}
	if len(hist) != 2 || hist[0].Child(xmlstream.NSClient, "body") != nil || hist[0].Child(nsRetract1, "retracted") == nil ||
		hist[0].Child(nsRetract1, "retracted").Child(NSModerate1, "moderated") == nil ||
		hist[1].Child(xmlstream.NSClient, "body").Text() != "sorry about that" {
		t.Fatalf("history after the moderation: %v", hist)
	}

	// So does the archive, followed by the announcement.
	n.take(carol)
	a := n.mam(carol, lounge, "", "")
	if len(a.results) != 3 || a.ids[0] != spam || a.ids[1] != kept {
		t.Fatalf("archive after the moderation: %v %v", a.ids, a.results)
	}
	if tomb := a.results[0]; tomb.Child(xmlstream.NSClient, "body") != nil || tomb.Child(nsRetract1, "retracted") == nil ||
		tomb.Child(nsRetract1, "retracted").Child(nsRetract1, "reason").Text() != "spam" {
		t.Fatalf("the archived tombstone: %s", a.results[0])
	}
	announcement(t, a.results[2], lounge, spam, lounge+"/Alice", "spam")

	// XEP-0425 0.2's request.
	n.take(bob)
	if r := moderateIQ(n, alice, lounge, `<apply-to id='`+kept+`' xmlns='urn:xmpp:fasten:0'><moderate xmlns='urn:xmpp:message-moderate:0'><retract xmlns='urn:xmpp:message-retract:0'/></moderate></apply-to>`); r.Attr("type") != "result" {
		t.Fatalf("a 0.2 moderation: %s", r)
	}
	if got := n.take(bob); len(got) != 1 {
		t.Fatalf("bob got %v", got)
	} else {
		announcement(t, got[0], lounge, kept, lounge+"/Alice", "")
	}
}

// TestModerateWithoutArchive: in a room that keeps no archive a message
// still in the history can be moderated.
func TestModerateWithoutArchive(t *testing.T) {
	n := newTestNet(t, nil)
	alice, bob := n.user("alice@example.com/pc"), n.user("bob@example.com/phone")
	n.create(alice, lounge+"/Alice")
	n.join(bob, lounge+"/Bob")
	n.take(alice)
	spam := said(t, n, bob, lounge, "spam")
	n.take(alice)
	if r := moderateIQ(n, alice, lounge, `<moderate id='`+spam+`' xmlns='urn:xmpp:message-moderate:1'><retract xmlns='urn:xmpp:message-retract:1'/></moderate>`); r.Attr("type") != "result" {
		t.Fatalf("moderating in a room without archive: %s", r)
	}
	if got := n.take(bob); len(got) != 1 {
		t.Fatalf("bob got %v", got)
	} else {
		announcement(t, got[0], lounge, spam, lounge+"/Alice", "")
	}
}

// TestRetractOwn: an occupant who retracts their own message (XEP-0424)
// has it replaced by a tombstone in the history and the archive; a
// retraction of someone else's message changes nothing.
func TestRetractOwn(t *testing.T) {
	n, _ := newArchivedNet(t, nil)
	alice, bob := n.user("alice@example.com/pc"), n.user("bob@example.com/phone")
	n.create(alice, lounge+"/Alice")
	n.join(bob, lounge+"/Bob")
	n.take(alice)
	oops := saidAs(t, n, bob, lounge, "wrong window", "oops-1")
	hers := said(t, n, alice, lounge, "hello")
	n.take(bob)
	n.take(alice)
	// bob tries alice's message: relayed, but nothing is retracted.
	n.send(bob, `<message type='groupchat' to='`+lounge+`'><retract id='`+hers+`' xmlns='urn:xmpp:message-retract:1'/><body>/me retracted a message</body></message>`)
	// bob's own, named the 0.3 way: by its message id.
	n.send(bob, `<message type='groupchat' to='`+lounge+`'><apply-to id='oops-1' xmlns='urn:xmpp:fasten:0'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to><body>/me retracted a message</body></message>`)
	if got := n.take(alice); len(got) != 2 || got[1].Child(nsFasten, "apply-to") == nil {
		t.Fatalf("alice got %v", got)
	}
	r := n.svc.room("lounge")
	r.mu.Lock()
	var first, second *xmlstream.Element
	if i := r.historyIndex(oops); i >= 0 {
		first = r.history[i].msg
	}
	if i := r.historyIndex(hers); i >= 0 {
		second = r.history[i].msg
	}
	r.mu.Unlock()
	if first == nil || first.Child(nsRetract1, "retracted") == nil || first.Child(xmlstream.NSClient, "body") != nil {
		t.Fatalf("bob's retracted message in the history: %v", first)
	}
	if second == nil || second.Child(xmlstream.NSClient, "body") == nil {
		t.Fatalf("alice's message in the history after bob's retraction: %v", second)
	}
	// The archive is changed on a goroutine of its own.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n.take(alice)
		a := n.mam(alice, lounge, "", "")
		if len(a.results) >= 2 && a.ids[0] == oops && a.results[0].Child(nsRetract1, "retracted") != nil {
			if a.ids[1] != hers || a.results[1].Child(xmlstream.NSClient, "body") == nil {
				t.Fatalf("alice's archived message after bob's retraction: %v", a.results[1])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive after bob's retraction: %v %v", a.ids, a.results)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
