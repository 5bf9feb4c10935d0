package muc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

func TestRolePrivileges(t *testing.T) {
	const (
		mod = RoleModerator
		par = RoleParticipant
		vis = RoleVisitor
		no  = RoleNone
	)
	for _, c := range []struct {
		name                string
		actorAff            Affiliation
		actorRole           Role
		targetAff           Affiliation
		targetRole, newRole Role
		want                string // "" allowed, else the condition
	}{
		{"participant cannot kick", AffMember, par, AffNone, par, no, "forbidden"},
		{"visitor cannot voice", AffNone, vis, AffNone, vis, par, "forbidden"},
		{"moderator kicks participant", AffNone, mod, AffNone, par, no, ""},
		{"moderator revokes voice", AffNone, mod, AffNone, par, vis, ""},
		{"moderator grants voice", AffMember, mod, AffNone, vis, par, ""},
		{"moderator cannot kick a member above", AffNone, mod, AffMember, par, no, "not-allowed"},
		{"admin kicks member", AffAdmin, mod, AffMember, par, no, ""},
		{"admin cannot kick admin", AffAdmin, mod, AffAdmin, mod, no, "not-allowed"},
		{"admin cannot kick owner", AffAdmin, mod, AffOwner, mod, no, "not-allowed"},
		{"owner cannot kick owner", AffOwner, mod, AffOwner, mod, no, "not-allowed"},
		{"owner cannot revoke an admin's moderation", AffOwner, mod, AffAdmin, mod, par, "not-allowed"},
		{"plain moderator cannot grant moderation", AffMember, mod, AffNone, par, mod, "not-allowed"},
		{"plain moderator cannot revoke moderation", AffMember, mod, AffNone, mod, par, "not-allowed"},
		{"admin grants moderation", AffAdmin, mod, AffMember, par, mod, ""},
		{"owner revokes granted moderation", AffOwner, mod, AffMember, mod, par, ""},
		{"owner kicks a granted moderator", AffOwner, mod, AffNone, mod, no, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := checkRoleChange(c.actorAff, c.actorRole, c.targetAff, c.targetRole, c.newRole)
			got := ""
			if e != nil {
				got = e.Condition
			}
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestAffiliationPrivileges(t *testing.T) {
	for _, c := range []struct {
		name          string
		actor, old, n Affiliation
		lastOwner     bool
		want          string
	}{
		{"member cannot ban", AffMember, AffNone, AffOutcast, false, "forbidden"},
		{"none cannot add member", AffNone, AffNone, AffMember, false, "forbidden"},
		{"admin bans", AffAdmin, AffNone, AffOutcast, false, ""},
		{"admin adds member", AffAdmin, AffNone, AffMember, false, ""},
		{"admin removes member", AffAdmin, AffMember, AffNone, false, ""},
		{"admin unbans", AffAdmin, AffOutcast, AffNone, false, ""},
		{"admin cannot make admin", AffAdmin, AffMember, AffAdmin, false, "not-allowed"},
		{"admin cannot make owner", AffAdmin, AffNone, AffOwner, false, "not-allowed"},
		{"admin cannot ban admin", AffAdmin, AffAdmin, AffOutcast, false, "not-allowed"},
		{"admin cannot demote owner", AffAdmin, AffOwner, AffMember, false, "not-allowed"},
		{"owner makes admin", AffOwner, AffMember, AffAdmin, false, ""},
		{"owner makes owner", AffOwner, AffNone, AffOwner, false, ""},
		{"owner demotes owner", AffOwner, AffOwner, AffAdmin, false, ""},
		{"last owner cannot go", AffOwner, AffOwner, AffNone, true, "conflict"},
		{"owner bans admin", AffOwner, AffAdmin, AffOutcast, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := checkAffiliationChange(c.actor, c.old, c.n, c.lastOwner)
			got := ""
			if e != nil {
				got = e.Condition
			}
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	for _, c := range []struct {
		actor, list          Affiliation
		membersOnly, nonAnon bool
		want                 bool
	}{
		{AffOwner, AffOwner, false, false, true},
		{AffAdmin, AffOwner, false, false, false},
		{AffAdmin, AffAdmin, false, false, true},
		{AffAdmin, AffOutcast, false, false, true},
		{AffMember, AffMember, false, true, false},
		{AffMember, AffMember, true, true, true},
		{AffMember, AffMember, true, false, false},
		{AffNone, AffOutcast, false, false, false},
	} {
		if got := canReadAffiliations(c.actor, c.list, c.membersOnly, c.nonAnon); got != c.want {
			t.Errorf("canReadAffiliations(%v, %v, %v, %v) = %v", c.actor, c.list, c.membersOnly, c.nonAnon, got)
		}
	}
	for _, c := range []struct {
		aff       Affiliation
		moderated bool
		want      Role
	}{
		{AffOwner, false, RoleModerator}, {AffAdmin, true, RoleModerator}, {AffMember, true, RoleParticipant},
		{AffNone, false, RoleParticipant}, {AffNone, true, RoleVisitor}, {AffOutcast, false, RoleNone},
	} {
		if got := defaultRole(c.aff, c.moderated); got != c.want {
			t.Errorf("defaultRole(%v, %v) = %v, want %v", c.aff, c.moderated, got, c.want)
		}
	}
}

const lounge = "lounge@conference.example.com"

func TestCreateLockJoinTalk(t *testing.T) {
	n := newTestNet(t, nil)
	alice := n.user("alice@example.com/pc")
	bob := n.user("bob@example.com/phone")

	got := n.join(alice, lounge+"/Alice")
	if len(got) != 2 {
		t.Fatalf("creator got %v", got)
	}
	self := got[0]
	if c := codes(self); !slices.Equal(c, []string{"110", "201"}) {
		t.Fatalf("creator's self-presence codes %v", c)
	}
	if it := itemOf(self); it.Attr("affiliation") != "owner" || it.Attr("role") != "moderator" || it.Attr("jid") != alice {
		t.Fatalf("creator's item %v", self)
	}
	if s := got[1]; s.Child("jabber:client", "subject") == nil || s.Attr("from") != lounge {
		t.Fatalf("want the empty subject last, got %v", s)
	}

	// Locked until configured.
	wantError(t, n.join(bob, lounge+"/Bob"), "item-not-found")
	n.send(alice, `<iq type='set' id='c1' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`)
	if r := n.one(alice); r.Attr("type") != "result" {
		t.Fatalf("instant room: %v", r)
	}

	got = n.join(bob, lounge+"/Bob")
	if len(got) != 3 {
		t.Fatalf("bob got %v", got)
	}
	if got[0].Attr("from") != lounge+"/Alice" || itemOf(got[0]).Attr("jid") != "" {
		t.Fatalf("semi-anonymous: bob must not see alice's JID: %v", got[0])
	}
	if got[1].Attr("from") != lounge+"/Bob" || !slices.Equal(codes(got[1]), []string{"110"}) {
		t.Fatalf("bob's self-presence %v", got[1])
	}
	if got[1].Child(NSOccupantID, "occupant-id") == nil {
		t.Fatal("no occupant-id")
	}
	p := n.one(alice)
	if p.Attr("from") != lounge+"/Bob" || itemOf(p).Attr("jid") != bob {
		t.Fatalf("the moderator sees bob's JID: %v", p)
	}

	// Groupchat is reflected to everyone with the room's stanza-id.
	n.send(bob, `<message type='groupchat' to='`+lounge+`' id='m1'><body>hello</body><stanza-id xmlns='urn:xmpp:sid:0' by='`+lounge+`' id='forged'/></message>`)
	for _, j := range []string{alice, bob} {
		m := n.one(j)
		sid := m.Child(NSSID, "stanza-id")
		if m.Attr("from") != lounge+"/Bob" || m.Attr("id") != "m1" || sid == nil || sid.Attr("id") == "forged" || sid.Attr("by") != lounge {
			t.Fatalf("%s got %v", j, m)
		}
	}
	// A non-occupant may not talk.
	carol := n.user("carol@example.com/x")
	n.send(carol, `<message type='groupchat' to='`+lounge+`'><body>hi</body></message>`)
	wantError(t, n.take(carol), "not-acceptable")
}

func TestHistoryAndSubject(t *testing.T) {
	n := newTestNet(t, nil)
	now := fixedClock(n, time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC))
	alice := n.user("alice@example.com/pc")
	n.create(alice, lounge+"/Alice")
	for i := 1; i <= 5; i++ {
		*now = now.Add(time.Minute)
		n.send(alice, fmt.Sprintf(`<message type='groupchat' to='%s'><body>m%d</body></message>`, lounge, i))
	}
	n.send(alice, `<message type='groupchat' to='`+lounge+`'><subject>Topic</subject></message>`)
	n.take(alice)

	bodies := func(got []*Element) (out []string) {
		for _, g := range got {
			if b := g.Child("jabber:client", "body"); b != nil {
				if g.Child(NSDelay, "delay") == nil {
					t.Fatalf("history without delay: %v", g)
				}
				out = append(out, b.Text())
			}
		}
		return out
	}
	bob := n.user("bob@example.com/a")
	got := n.join(bob, lounge+"/Bob")
	if b := bodies(got); !slices.Equal(b, []string{"m1", "m2", "m3", "m4", "m5"}) {
		t.Fatalf("history %v", b)
	}
	last := got[len(got)-1]
	if last.Child("jabber:client", "subject").Text() != "Topic" || last.Attr("from") != lounge+"/Alice" {
		t.Fatalf("subject %v", last)
	}
	n.send(bob, `<presence type='unavailable' to='`+lounge+`/Bob'/>`)
	n.take(bob)
	n.take(alice)
	if b := bodies(n.join(bob, lounge+"/Bob", `<history maxstanzas='2'/>`)); !slices.Equal(b, []string{"m4", "m5"}) {
		t.Fatalf("maxstanzas: %v", b)
	}
	n.send(bob, `<presence type='unavailable' to='`+lounge+`/Bob'/>`)
	if b := bodies(n.join(bob, lounge+"/Bob", `<history seconds='90'/>`)); !slices.Equal(b, []string{"m4", "m5"}) {
		t.Fatalf("seconds: %v", b)
	}
	n.send(bob, `<presence type='unavailable' to='`+lounge+`/Bob'/>`)
	if b := bodies(n.join(bob, lounge+"/Bob", `<history maxchars='0'/>`)); len(b) != 0 {
		t.Fatalf("maxchars 0: %v", b)
	}
	// A participant may not change the subject by default.
	n.send(bob, `<message type='groupchat' to='`+lounge+`'><subject>Mine</subject></message>`)
	wantError(t, n.take(bob), "forbidden")
}

func TestNickConflictAndChange(t *testing.T) {
	n := newTestNet(t, nil)
	alice := n.user("alice@example.com/pc")
	bob := n.user("bob@example.com/phone")
	n.create(alice, lounge+"/Alice")
	wantError(t, n.join(bob, lounge+"/Alice"), "conflict")
	wantError(t, n.join(bob, lounge+"/ "), "not-allowed")
	n.join(bob, lounge+"/Bob")
	n.take(alice)

	wantNick := func(j string) {
		t.Helper()
		got := n.take(j)
		if len(got) != 2 {
			t.Fatalf("%s got %v", j, got)
		}
		un, av := got[0], got[1]
		if un.Attr("type") != "unavailable" || !slices.Contains(codes(un), "303") || itemOf(un).Attr("nick") != "Robert" || un.Attr("from") != lounge+"/Bob" {
			t.Fatalf("%s: unavailable with 303: %v", j, un)
		}
		if av.Attr("from") != lounge+"/Robert" || av.Attr("type") != "" {
			t.Fatalf("%s: new presence %v", j, av)
		}
	}
	n.send(bob, `<presence to='`+lounge+`/Robert'/>`)
	wantNick(alice)
	wantNick(bob)
	n.send(bob, `<presence to='`+lounge+`/Alice'/>`)
	wantError(t, n.take(bob), "conflict")

	// A second client of alice's may share her nick.
	alice2 := n.user("alice@example.com/phone")
	got := n.join(alice2, lounge+"/Alice")
	if len(got) < 2 || !slices.Contains(codes(got[1]), "110") {
		t.Fatalf("second session: %v", got)
	}
}

func TestKickBanVoice(t *testing.T) {
	n := newTestNet(t, nil)
	alice := n.user("alice@example.com/pc")
	bob := n.user("bob@example.com/phone")
	carol := n.user("carol@example.com/x")
	n.create(alice, lounge+"/Alice")
	n.join(bob, lounge+"/Bob")
	n.join(carol, lounge+"/Carol")
	n.take(alice)
	n.take(bob)

	admin := func(from, item string) []*Element {
		n.send(from, `<iq type='set' id='a1' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/muc#admin'>`+item+`</query></iq>`)
		return n.take(from)
	}
	// Bob, a participant, may not kick.
	wantError(t, admin(bob, `<item nick='Carol' role='none'/>`), "forbidden")

	// Alice revokes Bob's voice.
	got := admin(alice, `<item nick='Bob' role='visitor'><reason>calm down</reason></item>`)
	if got[len(got)-1].Attr("type") != "result" {
		t.Fatalf("revoke voice: %v", got)
	}
	p := n.one(bob)
	if itemOf(p).Attr("role") != "visitor" || !slices.Contains(codes(p), "110") {
		t.Fatalf("bob's new role: %v", p)
	}
	n.take(carol)
	n.send(bob, `<message type='groupchat' to='`+lounge+`'><body>x</body></message>`)
	wantError(t, n.take(bob), "forbidden")

	// Alice kicks Carol (307), who may come back.
	got = admin(alice, `<item nick='Carol' role='none'><reason>out</reason></item>`)
	if got[len(got)-1].Attr("type") != "result" {
		t.Fatalf("kick: %v", got)
	}
	p = n.one(carol)
	if p.Attr("type") != "unavailable" || !slices.Contains(codes(p), "307") || !slices.Contains(codes(p), "110") {
		t.Fatalf("carol kicked: %v", p)
	}
	if itemOf(p).Child(NSUser, "reason").Text() != "out" || itemOf(p).Child(NSUser, "actor").Attr("nick") != "Alice" {
		t.Fatalf("kick reason and actor: %v", p)
	}
	n.take(bob)
	if got := n.join(carol, lounge+"/Carol"); len(got) == 0 || got[0].Attr("type") == "error" {
		t.Fatalf("a kicked user may come back: %v", got)
	}
	n.take(alice)
	n.take(bob)

	// Banned by bare JID (301): out, and cannot come back from any resource.
	got = admin(alice, `<item jid='carol@example.com' affiliation='outcast'><reason>spam</reason></item>`)
	if got[len(got)-1].Attr("type") != "result" {
		t.Fatalf("ban: %v", got)
	}
	p = n.one(carol)
	if !slices.Contains(codes(p), "301") {
		t.Fatalf("carol banned: %v", p)
	}
	carol2 := n.user("carol@example.com/other")
	wantError(t, n.join(carol2, lounge+"/C"), "forbidden")
	// A full JID is no affiliation.
	wantError(t, admin(alice, `<item jid='dave@example.com/r' affiliation='outcast'/>`), "jid-malformed")

	// The outcast list has her, for admins only.
	n.send(alice, `<iq type='get' id='l1' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast'/></query></iq>`)
	r := n.one(alice)
	it := r.FirstChild().FirstChild()
	if it == nil || it.Attr("jid") != "carol@example.com" || it.Child(NSAdmin, "reason").Text() != "spam" {
		t.Fatalf("outcast list: %v", r)
	}
	n.take(bob)
	n.send(bob, `<iq type='get' id='l2' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast'/></query></iq>`)
	wantError(t, n.take(bob), "forbidden")
}

func TestAdminBatchIsAtomic(t *testing.T) {
	n := newTestNet(t, nil)
	alice := n.user("alice@example.com/pc")
	n.create(alice, lounge+"/Alice")
	n.send(alice, `<iq type='set' id='b' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/muc#admin'>`+
		`<item jid='bob@example.com' affiliation='member'/><item jid='carol@example.com' affiliation='emperor'/></query></iq>`)
	wantError(t, n.take(alice), "bad-request")
	r := n.svc.room("lounge")
	if _, ok := r.affs[mustJID("bob@example.com")]; ok {
		t.Fatal("half of a refused request was applied")
	}
	// The last owner may not step down.
	n.send(alice, `<iq type='set' id='b2' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='alice@example.com' affiliation='member'/></query></iq>`)
	wantError(t, n.take(alice), "conflict")
}

func TestMembersOnlyAndPassword(t *testing.T) {
	n := newTestNet(t, nil)
	alice := n.user("alice@example.com/pc")
	bob := n.user("bob@example.com/phone")
	carol := n.user("carol@example.com/x")
	n.create(alice, lounge+"/Alice")
	n.join(carol, lounge+"/Carol")
	n.take(alice)

	config := func(fields string) *Element {
		n.send(alice, `<iq type='set' id='cf' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>`+
			`<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>`+fields+`</x></query></iq>`)
		got := n.take(alice)
		for _, g := range got {
			if g.Local == "iq" {
				return g
			}
		}
		t.Fatalf("no answer to the config: %v", got)
		return nil
	}
	// A bad form changes nothing.
	if r := config(`<field var='muc#roomconfig_membersonly'><value>1</value></field><field var='muc#roomconfig_whois'><value>everyone</value></field>`); condition(r) != "not-acceptable" {
		t.Fatalf("bad form: %v", r)
	}
	if n.svc.room("lounge").cfg.MembersOnly {
		t.Fatal("a refused form was half applied")
	}
	// Members-only: carol, not a member, is removed with 322.
	if r := config(`<field var='muc#roomconfig_membersonly'><value>1</value></field>`); r.Attr("type") != "result" {
		t.Fatalf("config: %v", r)
	}
	got := n.take(carol)
	if len(got) != 2 || !slices.Contains(codes(got[0]), "104") || !slices.Contains(codes(got[1]), "322") {
		t.Fatalf("carol, no member: %v", got)
	}
	wantError(t, n.join(bob, lounge+"/Bob"), "registration-required")

	// An admin's invitation makes bob a member.
	n.send(alice, `<message to='`+lounge+`'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='bob@example.com'><reason>join us</reason></invite></x></message>`)
	inv := n.take("bob@example.com")
	_ = inv // sent to the bare JID, which the test net does not have online
	if n.svc.room("lounge").affs[mustJID("bob@example.com")].aff != AffMember {
		t.Fatal("invitee not made a member")
	}
	// Password.
	if r := config(`<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field><field var='muc#roomconfig_roomsecret'><value>s3cret</value></field>`); r.Attr("type") != "result" {
		t.Fatalf("password config: %v", r)
	}
	wantError(t, n.join(bob, lounge+"/Bob"), "not-authorized")
	wantError(t, n.join(bob, lounge+"/Bob", `<password>wrong</password>`), "not-authorized")
	if got := n.join(bob, lounge+"/Bob", `<password>s3cret</password>`); len(got) == 0 || got[0].Attr("type") == "error" {
		t.Fatalf("right password: %v", got)
	}
}

func TestInvitationMessage(t *testing.T) {
	n := newTestNet(t, nil)
	alice := n.user("alice@example.com/pc")
	bob := n.user("bob@example.com")
	n.create(alice, lounge+"/Alice")
	n.send(alice, `<message to='`+lounge+`' id='i1'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='bob@example.com'><reason>hey</reason></invite></x></message>`)
	m := n.one(bob)
	inv := m.Child(NSUser, "x").Child(NSUser, "invite")
	if m.Attr("from") != lounge || inv == nil || inv.Attr("from") != alice || inv.Child(NSUser, "reason").Text() != "hey" {
		t.Fatalf("invitation: %v", m)
	}
	n.send(alice, `<message to='`+lounge+`'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='not a jid@@'/></x></message>`)
	wantError(t, n.take(alice), "jid-malformed")
	// A decline goes back to the inviter.
	n.send("bob@example.com/x", `<message to='`+lounge+`'><x xmlns='http://jabber.org/protocol/muc#user'><decline to='`+alice+`'><reason>busy</reason></decline></x></message>`)
	d := n.one(alice)
	if dec := d.Child(NSUser, "x").Child(NSUser, "decline"); dec == nil || dec.Attr("from") != "bob@example.com" {
		t.Fatalf("decline: %v", d)
	}
}

func TestPrivateMessagesAndIQ(t *testing.T) {
	n := newTestNet(t, nil)
	alice := n.user("alice@example.com/pc")
	bob := n.user("bob@example.com/phone")
	n.create(alice, lounge+"/Alice")
	n.join(bob, lounge+"/Bob")
	n.take(alice)
	n.send(bob, `<message type='chat' to='`+lounge+`/Alice' id='p1'><body>psst</body></message>`)
	m := n.one(alice)
	if m.Attr("from") != lounge+"/Bob" || m.Child(NSUser, "x") == nil || m.Child("jabber:client", "body").Text() != "psst" {
		t.Fatalf("pm: %v", m)
	}
	n.send(bob, `<message type='chat' to='`+lounge+`/Nobody'><body>x</body></message>`)
	wantError(t, n.take(bob), "item-not-found")
	n.send("eve@example.com/x", `<message type='chat' to='`+lounge+`/Alice'><body>x</body></message>`)
	n.user("eve@example.com/x")
	n.send("eve@example.com/x", `<message type='chat' to='`+lounge+`/Alice'><body>x</body></message>`)
	wantError(t, n.take("eve@example.com/x"), "not-acceptable")

	// Self-ping (XEP-0410).
	n.send(bob, `<iq type='get' id='sp' to='`+lounge+`/Bob'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if r := n.one(bob); r.Attr("type") != "result" || r.Attr("from") != lounge+"/Bob" {
		t.Fatalf("self-ping: %v", r)
	}
	n.user("eve@example.com/x")
	n.send("eve@example.com/x", `<iq type='get' id='sp2' to='`+lounge+`/Bob'><ping xmlns='urn:xmpp:ping'/></iq>`)
	wantError(t, n.take("eve@example.com/x"), "not-acceptable")

	// An IQ between occupants goes through the room and its answer back.
	n.send(bob, `<iq type='get' id='v1' to='`+lounge+`/Alice'><query xmlns='jabber:iq:version'/></iq>`)
	fw := n.one(alice)
	if fw.Attr("from") != lounge+"/Bob" || fw.Attr("id") == "v1" {
		t.Fatalf("forwarded iq: %v", fw)
	}
	n.send(alice, `<iq type='result' id='`+fw.Attr("id")+`' to='`+lounge+`/Bob'><query xmlns='jabber:iq:version'><name>x</name></query></iq>`)
	back := n.one(bob)
	if back.Attr("id") != "v1" || back.Attr("from") != lounge+"/Alice" || back.Attr("type") != "result" {
		t.Fatalf("answer: %v", back)
	}
	// A forged answer goes nowhere.
	n.send(alice, `<iq type='result' id='Zm9v.0011223344556677' to='`+lounge+`/Bob'/>`)
	if got := n.take(bob); len(got) != 0 {
		t.Fatalf("forged answer routed: %v", got)
	}
}

func TestBounceRemovesOccupantAndTemporaryRoomVanishes(t *testing.T) {
	n := newTestNet(t, nil)
	alice := n.user("alice@example.com/pc")
	bob := n.user("bob@example.com/phone")
	n.create(alice, lounge+"/Alice")
	n.join(bob, lounge+"/Bob")
	n.take(alice)
	n.offline(bob)
	// Bob's client is gone: the room's broadcast bounces and bob leaves
	// with 333, all within one message's delivery.
	n.send(alice, `<message type='groupchat' to='`+lounge+`'><body>anyone?</body></message>`)
	got := n.take(alice)
	if len(got) != 2 || got[0].Local != "message" || !slices.Contains(codes(got[1]), "333") || got[1].Attr("from") != lounge+"/Bob" {
		t.Fatalf("alice got %v", got)
	}
	if len(n.svc.room("lounge").occupants) != 1 {
		t.Fatal("bob is still in the room")
	}
	n.send(alice, `<presence type='unavailable' to='`+lounge+`/Alice'/>`)
	if n.svc.room("lounge") != nil {
		t.Fatal("an empty temporary room must vanish")
	}
}

// TestSessionsGone: sessions whose cluster node died leave their rooms at
// once with 333, without waiting for a message to them to bounce; a
// session of the same user on a live node stays, and a temporary room
// left empty vanishes.
func TestSessionsGone(t *testing.T) {
	n := newTestNet(t, nil)
	alice := n.user("alice@example.com/pc")
	bob := n.user("bob@example.com/phone")
	bobPC := n.user("bob@example.com/pc")
	carol := n.user("carol@example.com/tab")
	n.create(alice, lounge+"/Alice")
	n.join(bob, lounge+"/Bob")
	n.join(bobPC, lounge+"/Bob")
	n.join(carol, lounge+"/Carol")
	const hall = "hall@conference.example.com"
	n.create(carol, hall+"/Carol")
	for _, j := range []string{alice, bob, bobPC, carol} {
		n.take(j)
	}
	for _, j := range []string{bob, carol} {
		n.offline(j)
	}
	n.svc.SessionsGone(context.Background(), []jid.JID{jid.MustParse(bob), jid.MustParse(carol), jid.MustParse("dave@example.com/x")})

	// Carol is gone with 333; bob is still in through his pc, which
	// the room now shows (his first session was the one seen).
	got := n.take(alice)
	carolGone := slices.IndexFunc(got, func(e *xmlstream.Element) bool {
		return e.Attr("from") == lounge+"/Carol" && e.Attr("type") == "unavailable" && slices.Contains(codes(e), "333")
	})
	bobNow := slices.IndexFunc(got, func(e *xmlstream.Element) bool {
		return e.Attr("from") == lounge+"/Bob" && e.Attr("type") == "" && itemOf(e).Attr("jid") == bobPC
	})
	if len(got) != 2 || carolGone < 0 || bobNow < 0 {
		t.Fatalf("alice got %v, want carol leaving with 333 and bob's presence from his pc", got)
	}
	if got := n.take(bobPC); !slices.ContainsFunc(got, func(e *xmlstream.Element) bool { return e.Attr("from") == lounge+"/Carol" }) {
		t.Fatalf("bob's pc got %v, want carol leaving", got)
	}
	r := n.svc.room("lounge")
	if len(r.occupants) != 2 || r.occupants["Bob"] == nil || len(r.occupants["Bob"].sessions) != 1 {
		t.Fatalf("lounge occupants after the node died: %v", r.occupants)
	}
	if n.svc.room("hall") != nil {
		t.Fatal("carol's temporary room, left empty, must vanish")
	}
	// Nothing bounced in the meantime: nothing more is sent.
	n.svc.SessionsGone(context.Background(), []jid.JID{jid.MustParse(carol)})
	if got := n.take(alice); len(got) != 0 {
		t.Fatalf("a second word of the same sessions: alice got %v", got)
	}
}

func TestDestroy(t *testing.T) {
	n := newTestNet(t, nil)
	alice := n.user("alice@example.com/pc")
	bob := n.user("bob@example.com/phone")
	n.create(alice, lounge+"/Alice")
	n.join(bob, lounge+"/Bob")
	n.take(alice)
	n.send(bob, `<iq type='set' id='d0' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>`)
	wantError(t, n.take(bob), "forbidden")
	n.send(alice, `<iq type='set' id='d1' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy jid='new@conference.example.com'><reason>moved</reason></destroy></query></iq>`)
	p := n.one(bob)
	d := p.Child(NSUser, "x").Child(NSUser, "destroy")
	if p.Attr("type") != "unavailable" || d == nil || d.Attr("jid") != "new@conference.example.com" || d.Child(NSUser, "reason").Text() != "moved" {
		t.Fatalf("destroy presence: %v", p)
	}
	got := n.take(alice)
	if got[len(got)-1].Attr("type") != "result" {
		t.Fatalf("destroy answer: %v", got)
	}
	if n.svc.room("lounge") != nil {
		t.Fatal("room still there")
	}
	n.send(bob, `<message type='groupchat' to='`+lounge+`'><body>x</body></message>`)
	wantError(t, n.take(bob), "item-not-found")
}

func TestJoinLimits(t *testing.T) {
	n := newTestNet(t, func(c *Config) {
		c.JoinRate, c.JoinWindow = 3, time.Minute
		c.MaxRoomsPerUser = 2
		c.MaxOccupants = 2
	})
	alice := n.user("alice@example.com/pc")
	n.create("alice@example.com/pc", "a@conference.example.com/A")
	n.create(alice, "b@conference.example.com/A")
	wantError(t, n.join(alice, "c@conference.example.com/A"), "policy-violation")
	if n.svc.room("c") != nil {
		t.Fatal("a refused room was kept")
	}
	// The join rate: alice's third join succeeds, the fourth is refused.
	bob := n.user("bob@example.com/x")
	carol := n.user("carol@example.com/x")
	n.join(bob, "a@conference.example.com/B")
	wantError(t, n.join(carol, "a@conference.example.com/C"), "service-unavailable")
	if got := n.join(n.user("alice@example.com/phone"), "b@conference.example.com/A"); len(got) == 0 || got[0].Attr("type") == "error" {
		t.Fatalf("third join: %v", got)
	}
	wantError(t, n.join(n.user("alice@example.com/tablet"), "a@conference.example.com/A"), "resource-constraint")
}

func TestBadInput(t *testing.T) {
	n := newTestNet(t, func(c *Config) { c.Creators = CreatorsAdmins; c.Admins = []JID{mustJID("admin@example.com")} })
	alice := n.user("alice@example.com/pc")
	// Creation is restricted here.
	wantError(t, n.join(alice, lounge+"/Alice"), "not-allowed")
	// A join without a nick.
	wantError(t, n.join(alice, lounge), "jid-malformed")
	// An owner form to a room that does not exist.
	n.send(alice, `<iq type='set' id='x' to='nope@conference.example.com'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_whois'><value>all</value></field></x></query></iq>`)
	wantError(t, n.take(alice), "item-not-found")
	if n.svc.room("nope") != nil {
		t.Fatal("a room was made by an owner form")
	}
	// Presence without the muc payload does not create a room.
	n.send(alice, `<presence to='other@conference.example.com/A'/>`)
	wantError(t, n.take(alice), "item-not-found")
	admin := n.user("admin@example.com/a")
	n.create(admin, lounge+"/Boss")
	// A nick can be spoofed by no one: the room stamps each sender's own.
	n.join(alice, lounge+"/Alice")
	n.take(admin)
	n.send(alice, `<message type='groupchat' to='`+lounge+`/Boss'><body>as boss</body></message>`)
	wantError(t, n.take(alice), "bad-request")
	n.send(alice, `<message type='groupchat' to='`+lounge+`' from='`+lounge+`/Boss'><body>hi</body></message>`)
	if m := n.one(admin); m.Attr("from") != lounge+"/Alice" {
		t.Fatalf("spoofed nick: %v", m)
	}
	n.take(alice)
	// An unknown IQ.
	n.send(alice, `<iq type='get' id='u' to='`+lounge+`'><query xmlns='urn:example:nothing'/></iq>`)
	wantError(t, n.take(alice), "service-unavailable")
	// Service disco lists the public room.
	n.send(alice, `<iq type='get' id='di' to='conference.example.com'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	r := n.one(alice)
	if it := r.FirstChild().FirstChild(); it == nil || it.Attr("jid") != lounge {
		t.Fatalf("room list: %v", r)
	}
	n.send(alice, `<iq type='get' id='ri' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	info := n.one(alice)
	if !strings.Contains(info.String(), "muc_semianonymous") || !strings.Contains(info.String(), NSRoomInfo) {
		t.Fatalf("room info: %v", info)
	}
	_ = stanza.ErrBadRequest
}

// TestConcurrentSendersOneOrder: occupants talking at once, each on its own
// goroutine as senders are in koi, all see the room's messages in one
// order, none lost; a client that goes away meanwhile leaves cleanly.
func TestConcurrentSendersOneOrder(t *testing.T) {
	n := newTestNet(t, nil)
	const users, each = 8, 25
	var jids []string
	for i := range users {
		j := n.user(fmt.Sprintf("u%d@example.com/r", i))
		jids = append(jids, j)
		if i == 0 {
			n.create(j, lounge+"/u0")
		} else {
			n.join(j, fmt.Sprintf("%s/u%d", lounge, i))
		}
	}
	for _, j := range jids {
		n.take(j)
	}
	var wg sync.WaitGroup
	for i, j := range jids {
		wg.Go(func() {
			for k := range each {
				n.send(j, fmt.Sprintf(`<message type='groupchat' to='%s'><body>%d-%d</body></message>`, lounge, i, k))
			}
		})
	}
	// One more client joins and goes away while they talk: its messages
	// bounce and it is removed on some sender's goroutine.
	late := n.user("late@example.com/r")
	n.join(late, lounge+"/late")
	n.offline(late)
	wg.Wait()
	var first []string
	for _, j := range jids {
		var seq []string
		for _, el := range n.take(j) {
			if el.Local == "message" {
				seq = append(seq, el.Attr("from")+" "+el.Child("jabber:client", "body").Text())
			}
		}
		if len(seq) != users*each {
			t.Fatalf("%s got %d messages, want %d", j, len(seq), users*each)
		}
		if first == nil {
			first = seq
		} else if !slices.Equal(seq, first) {
			t.Fatalf("%s saw another order than %s", j, jids[0])
		}
	}
	if r := n.svc.room("lounge"); len(r.occupants) != users {
		t.Fatalf("%d occupants, want %d (the gone client removed)", len(r.occupants), users)
	}
}

func TestLockTimeoutAndCancel(t *testing.T) {
	n := newTestNet(t, func(c *Config) { c.LockTimeout = 5 * time.Minute })
	now := fixedClock(n, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	alice := n.user("alice@example.com/pc")
	bob := n.user("bob@example.com/x")
	n.join(alice, lounge+"/Alice")
	wantError(t, n.join(bob, lounge+"/Bob"), "item-not-found")
	*now = now.Add(5 * time.Minute)
	if got := n.join(bob, lounge+"/Bob"); len(got) == 0 || got[0].Attr("type") == "error" {
		t.Fatalf("after the lock timed out: %v", got)
	}

	// Cancelling the initial configuration destroys the new room.
	n.join(alice, "other@conference.example.com/Alice")
	n.send(alice, `<iq type='set' id='c' to='other@conference.example.com'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='cancel'/></query></iq>`)
	got := n.take(alice)
	if len(got) != 2 || got[0].Attr("type") != "result" || got[1].Child(NSUser, "x").Child(NSUser, "destroy") == nil {
		t.Fatalf("cancel: %v", got)
	}
	if n.svc.room("other") != nil {
		t.Fatal("a cancelled room stays")
	}
}

func TestSessionsSharingANick(t *testing.T) {
	n := newTestNet(t, nil)
	pc := n.user("alice@example.com/pc")
	phone := n.user("alice@example.com/phone")
	bob := n.user("bob@example.com/x")
	n.create(pc, lounge+"/Alice")
	n.join(bob, lounge+"/Bob")
	n.join(phone, lounge+"/Alice")
	n.take(pc)
	n.take(bob)
	// Both of alice's clients get what is said.
	n.send(bob, `<message type='groupchat' to='`+lounge+`'><body>hi</body></message>`)
	if len(n.take(pc)) != 1 || len(n.take(phone)) != 1 {
		t.Fatal("a session of a shared nick missed a message")
	}
	n.take(bob)
	// The phone leaves: it hears so, alice stays for everyone else.
	n.send(phone, `<presence type='unavailable' to='`+lounge+`/Alice'/>`)
	if p := n.one(phone); p.Attr("type") != "unavailable" || !slices.Contains(codes(p), "110") {
		t.Fatalf("phone leaving: %v", p)
	}
	if got := n.take(bob); len(got) != 0 {
		t.Fatalf("bob saw alice's second client go: %v", got)
	}
	if len(n.svc.room("lounge").occupants) != 2 {
		t.Fatal("alice left with her phone")
	}
}

func TestVoiceRequest(t *testing.T) {
	n := newTestNet(t, func(c *Config) { c.Defaults.Moderated = true })
	alice := n.user("alice@example.com/pc")
	bob := n.user("bob@example.com/x")
	n.create(alice, lounge+"/Alice")
	got := n.join(bob, lounge+"/Bob")
	if itemOf(got[len(got)-2]).Attr("role") != "visitor" {
		t.Fatalf("bob in a moderated room: %v", got)
	}
	n.take(alice)
	n.send(bob, `<message to='`+lounge+`'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#role'><value>participant</value></field></x></message>`)
	req := n.one(alice)
	form := req.Child(NSData, "x")
	if form == nil || dataform.Values(form)["muc#roomnick"][0] != "Bob" {
		t.Fatalf("voice request to the moderator: %v", req)
	}
	n.send(alice, `<message to='`+lounge+`'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#roomnick'><value>Bob</value></field><field var='muc#request_allow'><value>true</value></field></x></message>`)
	if p := n.one(bob); itemOf(p).Attr("role") != "participant" {
		t.Fatalf("bob after approval: %v", p)
	}
}

func TestHistoryBounds(t *testing.T) {
	n := newTestNet(t, func(c *Config) { c.MaxHistory = 5 })
	alice := n.user("alice@example.com/pc")
	n.create(alice, lounge+"/Alice")
	for i := range 8 {
		n.send(alice, fmt.Sprintf(`<message type='groupchat' to='%s'><body>m%d</body></message>`, lounge, i))
	}
	r := n.svc.room("lounge")
	if len(r.history) != 5 || r.history[0].msg.Child("jabber:client", "body").Text() != "m3" {
		t.Fatalf("history kept %d", len(r.history))
	}
	// Big messages: the history keeps under its byte bound, and at least
	// the last message.
	big := strings.Repeat("x", 200<<10)
	for range 4 {
		n.send(alice, `<message type='groupchat' to='`+lounge+`'><body>`+big+`</body></message>`)
	}
	if r.historyBytes > maxHistoryBytes || len(r.history) < 1 || len(r.history) > 3 {
		t.Fatalf("history of %d messages, %d bytes", len(r.history), r.historyBytes)
	}
	sum := 0
	for _, e := range r.history {
		sum += e.chars
	}
	if sum != r.historyBytes {
		t.Fatalf("history bytes %d, counted %d", r.historyBytes, sum)
	}
}
