package muc

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Errors of messages to a room (XEP-0045 §7.4–7.9).
var (
	errNoVoice       = stanza.ErrForbidden.WithText("you have no voice in this room")
	errSubject       = stanza.ErrForbidden.WithText("only moderators may change the subject of this room")
	errNoPM          = stanza.ErrForbidden.WithText("private messages are not allowed in this room")
	errNoSuchNick    = stanza.ErrItemNotFound.WithText("no one in this room has that nickname")
	errGroupchatToPM = stanza.ErrBadRequest.WithText("a groupchat message goes to the room, not to an occupant")
	errInvite        = stanza.ErrForbidden.WithText("you may not invite others to this room")
	errNotGroupchat  = stanza.ErrNotAcceptable.WithText("messages to the room are of type groupchat")
)

func newStanzaID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// kickable reports whether a bounced message says the recipient's client
// is gone, rather than that it refused this one message (Prosody's list).
func kickable(el *xmlstream.Element) bool {
	e := stanza.ErrorFrom(el)
	if e == nil || e.Condition == "" {
		return true
	}
	switch e.Condition {
	case "gone", "internal-server-error", "item-not-found", "jid-malformed", "recipient-unavailable",
		"redirect", "remote-server-not-found", "remote-server-timeout", "service-unavailable":
		return true
	}
	return false
}

func (r *room) message(ctx context.Context, el *xmlstream.Element, from, to jid.JID) {
	typ := el.Attr("type")
	cur := r.bySession[from]
	if typ == "error" {
		if cur != nil && kickable(el) {
			r.sessionFailed(cur, from)
		}
		return
	}
	if to.Resource() != "" {
		r.privateMessage(el, from, to, cur)
		return
	}
	switch typ {
	case "groupchat":
		r.groupchat(ctx, el, from, cur)
	case "", "normal":
		if x := el.Child(NSUser, "x"); x != nil {
			r.mediated(ctx, el, x, from, cur)
			return
		}
		if f := el.Child(NSData, "x"); f != nil && isForm(f, NSRequest) {
			r.voiceRequest(ctx, el, f, from, cur)
			return
		}
		r.reply(el, errNotGroupchat)
	default:
		r.reply(el, errNotGroupchat)
	}
}

// groupchat serves a message to everyone in the room (XEP-0045 §7.4) or a
// change of subject (§8.1).
func (r *room) groupchat(ctx context.Context, el *xmlstream.Element, from jid.JID, cur *occupant) {
	if cur == nil {
		r.reply(el, errNotJoined)
		return
	}
	if cur.role < RoleParticipant {
		r.reply(el, errNoVoice)
		return
	}
	subject := el.Child(xmlstream.NSClient, "subject")
	body := el.Child(xmlstream.NSClient, "body")
	isSubject := subject != nil && body == nil
	if isSubject {
		if cur.role != RoleModerator && !r.cfg.ChangeSubject {
			r.reply(el, errSubject)
			return
		}
		text, by := subject.Text(), cur.nick
		set := func() {
			r.subject, r.subjectBy = text, by
			// Applied after the store write, perhaps once ctx is done.
			r.relay(context.WithoutCancel(ctx), el, cur, false)
		}
		if !r.stored {
			set()
			return
		}
		a, rec := r.access(), r.record(r.cfg, text, by)
		r.queueStore(storeOp{
			write: func(ctx context.Context) error { return a.put(ctx, rec) },
			apply: set,
			fail:  func(error) { r.reply(el, errStore) },
		})
		return
	}
	r.relay(ctx, el, cur, body != nil)
}

// relay broadcasts an occupant's groupchat message as the room's, keeping
// it for the history when it has a body and in the room's archive when
// that is on and the message is worth keeping (mam.go).
func (r *room) relay(ctx context.Context, el *xmlstream.Element, cur *occupant, keep bool) {
	var resv *archive.Reservation
	if a := r.archive(); a != nil && archive.Keepable(el) {
		var err error
		if resv, err = a.Reserve(ctx, 1); err != nil {
			r.svc.log.Warn("groupchat message refused: the archive cannot keep up", "room", r.jid.String(), "error", err)
			r.reply(el, errArchiveBusy)
			return
		}
	}
	m := el.Copy()
	m.SetAttr("from", r.occupantJID(cur.nick).String())
	m.RemoveAttr("to")
	if m.Attr("id") == "" {
		m.SetAttr("id", newStanzaID())
	}
	r.stripForged(m)
	// The stanza-id is a time-ordered archive id (core/archive): the id the
	// room's archive files this message under (mam.go).
	id, stamp := r.svc.ids.Next()
	at := r.svc.now()
	m.AppendChild(xmlstream.NewElement(NSOccupantID, "occupant-id").SetAttr("id", r.occupantID(cur.bare)))
	m.AppendChild(archive.StanzaIDElement(r.jid.String(), id))
	if keep {
		r.keepHistory(histEntry{msg: m, id: id, at: at})
	}
	if rid := archive.RetractedID(m); rid != "" {
		r.retractOwn(rid, m.Attr("id"), cur)
	}
	if resv != nil {
		if err := resv.Commit(r.archiveCopy(m, cur, id, stamp)); err != nil {
			r.svc.log.Error("archiving a groupchat message failed", "room", r.jid.String(), "error", err)
		}
	}
	r.broadcast(m)
}

// stripForged removes what only the room may put in a message it
// broadcasts: its stanza-ids, occupant ids and delays in its name.
func (r *room) stripForged(m *xmlstream.Element) {
	kept := m.Children[:0]
	for _, n := range m.Children {
		if c := n.Elem; c != nil {
			switch {
			case c.Space == NSSID && c.Local == "stanza-id" && c.Attr("by") == r.jid.String(),
				c.Space == NSOccupantID,
				c.Space == NSDelay && c.Local == "delay" && c.Attr("from") == r.jid.String(),
				c.Space == NSUser:
				continue
			}
		}
		kept = append(kept, n)
	}
	m.Children = kept
}

// privateMessage serves a message from one occupant to another (XEP-0045
// §7.5), which keeps the sender's real JID hidden.
func (r *room) privateMessage(el *xmlstream.Element, from, to jid.JID, cur *occupant) {
	if cur == nil {
		r.reply(el, errNotJoined)
		return
	}
	if el.Attr("type") == "groupchat" {
		r.reply(el, errGroupchatToPM)
		return
	}
	target := r.occupants[to.Resource()]
	if target == nil {
		r.reply(el, errNoSuchNick)
		return
	}
	switch r.cfg.AllowPM {
	case "none":
		r.reply(el, errNoPM)
		return
	case "participants":
		if cur.role < RoleParticipant {
			r.reply(el, errNoPM)
			return
		}
	case "moderators":
		if cur.role < RoleModerator {
			r.reply(el, errNoPM)
			return
		}
	}
	m := el.Copy()
	m.SetAttr("from", r.occupantJID(cur.nick).String())
	m.RemoveChildren(NSMUC, "x")
	r.stripForged(m)
	m.AppendChild(xmlstream.NewElement(NSUser, "x"))
	m.AppendChild(xmlstream.NewElement(NSOccupantID, "occupant-id").SetAttr("id", r.occupantID(cur.bare)))
	r.toOccupant(target, m)
}

// mediated serves invitations and declines sent through the room
// (XEP-0045 §7.8.2, §7.8.2.1).
func (r *room) mediated(ctx context.Context, el, x *xmlstream.Element, from jid.JID, cur *occupant) {
	invites := []*xmlstream.Element{}
	declines := []*xmlstream.Element{}
	for _, c := range x.Elements() {
		switch {
		case c.Space == NSUser && c.Local == "invite":
			invites = append(invites, c)
		case c.Space == NSUser && c.Local == "decline":
			declines = append(declines, c)
		}
	}
	if len(invites) == 0 && len(declines) == 0 {
		r.reply(el, stanza.ErrBadRequest.WithText("want an invite or a decline"))
		return
	}
	// Check every address first: nothing is sent for a bad request.
	var targets []jid.JID
	for _, c := range append(append([]*xmlstream.Element{}, invites...), declines...) {
		j, err := jid.Parse(c.Attr("to"))
		if err != nil {
			r.reply(el, stanza.ErrJIDMalformed.WithText("want the address of the one invited or declined in to"))
			return
		}
		targets = append(targets, j)
	}
	if len(invites) > 0 {
		aff := r.affiliation(from)
		role := defaultRole(aff, r.cfg.Moderated)
		if cur != nil {
			role = cur.role
		}
		if role < RoleParticipant || (r.cfg.MembersOnly && !r.cfg.AllowInvites && aff < AffAdmin) {
			r.reply(el, errInvite)
			return
		}
	}
	send := func() {
		for i, c := range invites {
			r.sendInvite(el, c, from, targets[i])
		}
		for i, c := range declines {
			r.sendDecline(el, c, from, targets[len(invites)+i])
		}
	}
	// In a members-only room an invitation lets the invitee in.
	added := map[jid.JID]affEntry{}
	if len(invites) > 0 && r.cfg.MembersOnly {
		for _, t := range targets[:len(invites)] {
			if b := t.Bare(); r.affiliation(b) == AffNone {
				added[b] = affEntry{aff: AffMember, reason: "invited by " + from.Bare().String()}
			}
		}
	}
	if len(added) == 0 {
		send()
		return
	}
	apply := func() {
		for j, e := range added {
			r.affs[j] = e
		}
		send()
	}
	if !r.stored {
		apply()
		return
	}
	a, recs, old := r.access(), r.affRecords(added), r.oldRecords()
	r.queueStore(storeOp{
		write: func(ctx context.Context) error { return a.setAll(ctx, recs, old) },
		apply: apply,
		fail:  func(error) { r.reply(el, errStore) },
	})
}

func (r *room) sendInvite(orig, inv *xmlstream.Element, from, to jid.JID) {
	reason := ""
	if c := inv.Child(NSUser, "reason"); c != nil {
		reason = c.Text()
	}
	m := xmlstream.NewElement(xmlstream.NSClient, "message").
		SetAttr("from", r.jid.String()).SetAttr("to", to.String())
	if id := orig.Attr("id"); id != "" {
		m.SetAttr("id", id)
	}
	x := xmlstream.NewElement(NSUser, "x")
	i := xmlstream.NewElement(NSUser, "invite").SetAttr("from", from.String())
	if reason != "" {
		i.AppendChild(xmlstream.NewElement(NSUser, "reason").AppendText(reason))
	}
	if c := inv.Child(NSUser, "continue"); c != nil {
		i.AppendChild(c.Copy())
	}
	x.AppendChild(i)
	if r.cfg.Password != "" {
		x.AppendChild(xmlstream.NewElement(NSUser, "password").AppendText(r.cfg.Password))
	}
	m.AppendChild(x)
	// For clients that know only direct invitations (XEP-0249's element,
	// as Prosody adds it) or none at all.
	conf := xmlstream.NewElement(NSConference, "x").SetAttr("jid", r.jid.String())
	if reason != "" {
		conf.SetAttr("reason", reason)
	}
	m.AppendChild(conf)
	text := from.Bare().String() + " invites you to the room " + r.jid.String()
	if reason != "" {
		text += " (" + reason + ")"
	}
	m.AppendChild(xmlstream.NewElement(xmlstream.NSClient, "body").AppendText(text))
	r.send(m)
}

func (r *room) sendDecline(orig, dec *xmlstream.Element, from, to jid.JID) {
	m := xmlstream.NewElement(xmlstream.NSClient, "message").
		SetAttr("from", r.jid.String()).SetAttr("to", to.String())
	if id := orig.Attr("id"); id != "" {
		m.SetAttr("id", id)
	}
	x := xmlstream.NewElement(NSUser, "x")
	d := xmlstream.NewElement(NSUser, "decline").SetAttr("from", from.Bare().String())
	reason := ""
	if c := dec.Child(NSUser, "reason"); c != nil {
		reason = c.Text()
		d.AppendChild(xmlstream.NewElement(NSUser, "reason").AppendText(reason))
	}
	x.AppendChild(d)
	m.AppendChild(x)
	text := from.Bare().String() + " declined your invitation to the room " + r.jid.String()
	if reason != "" {
		text += " (" + reason + ")"
	}
	m.AppendChild(xmlstream.NewElement(xmlstream.NSClient, "body").AppendText(text))
	if to.Bare() == r.jid && to.Resource() != "" {
		if o := r.occupants[to.Resource()]; o != nil {
			r.toOccupant(o, m)
		}
		return
	}
	r.send(m)
}

// isForm reports whether x is a data form with FORM_TYPE ns.
func isForm(x *xmlstream.Element, ns string) bool {
	v := dataform.Values(x)["FORM_TYPE"]
	return len(v) == 1 && v[0] == ns
}
