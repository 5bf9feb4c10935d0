package muc

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Errors of entering a room (XEP-0045 §7.2).
var (
	errNoNick       = stanza.ErrJIDMalformed.WithText("a room nickname is required: address the room as room@service/nick")
	errNotJoined    = stanza.ErrNotAcceptable.WithText("you are not in this room")
	errNoMUCX       = stanza.ErrItemNotFound.WithText("you are not in this room; to enter, send presence with <x xmlns='" + NSMUC + "'/>")
	errLocked       = stanza.ErrItemNotFound.WithText("this room is locked until its owner configures it")
	errBanned       = stanza.ErrForbidden.WithText("you are banned from this room")
	errMembersOnly  = &stanza.Error{Type: stanza.Auth, Condition: "registration-required", Text: "this room is for members only"}
	errPassword     = stanza.ErrNotAuthorized.WithText("this room needs a password")
	errNickTaken    = stanza.ErrConflict.WithText("that nickname is in use in this room")
	errNickReserved = stanza.ErrConflict.WithText("that nickname is reserved in this room")
	errFull         = &stanza.Error{Type: stanza.Wait, Condition: "service-unavailable", Text: "the room is full"}
	errBlankNick    = stanza.ErrNotAllowed.WithText("a nickname must show something")
	errBadPresence  = stanza.ErrBadRequest.WithText("presence of this type means nothing to a room")
)

// maxNick bounds a nickname, in bytes after normalisation: longer ones
// only ever serve to flood other occupants' screens.
const maxNick = 128

// checkNick refuses nicks no one can read; the JID parser already applied
// the resourceprep rules (RFC 7622 OpaqueString).
func checkNick(nick string) *stanza.Error {
	if len(nick) > maxNick {
		return stanza.ErrJIDMalformed.WithText("nicknames are at most " + strconv.Itoa(maxNick) + " bytes")
	}
	if strings.IndexFunc(nick, func(c rune) bool { return !unicode.IsSpace(c) }) < 0 {
		return errBlankNick
	}
	return nil
}

// handle serves one stanza to the room or an occupant; the room's lock is
// held.
func (r *room) handle(ctx context.Context, el *xmlstream.Element, from, to jid.JID) {
	switch el.Local {
	case "presence":
		r.presence(ctx, el, from, to)
	case "message":
		r.message(ctx, el, from, to)
	case "iq":
		r.iq(ctx, el, from, to)
	}
	r.emptied()
}

func (r *room) presence(ctx context.Context, el *xmlstream.Element, from, to jid.JID) {
	typ := el.Attr("type")
	cur := r.bySession[from]
	if to.Resource() == "" {
		// Some clients send their updates to the room itself (Prosody
		// accepts them); anything else needs a nick.
		if cur == nil || (typ != "" && typ != "unavailable") {
			if typ == "" {
				r.reply(el, errNoNick)
			}
			return
		}
		to = r.occupantJID(cur.nick)
	}
	switch typ {
	case "error":
		if cur != nil {
			r.sessionFailed(cur, from)
		}
	case "unavailable":
		if cur != nil {
			r.leave(cur, from, el)
		}
	case "probe":
		r.probe(el, from, to, cur)
	case "":
		switch {
		case cur == nil:
			r.join(ctx, el, from, to)
		case cur.nick == to.Resource():
			r.update(cur, from, el)
		default:
			r.changeNick(cur, from, to, el)
		}
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		// Rooms have no roster; these are dropped, as a server drops
		// subscriptions it has no use for.
	default:
		r.reply(el, errBadPresence)
	}
}

// clean is a session's presence as the room keeps and broadcasts it:
// without the muc payloads and ids the room adds itself.
func clean(el *xmlstream.Element) *xmlstream.Element {
	p := el.Copy()
	p.RemoveChildren(NSMUC, "x")
	p.RemoveChildren(NSUser, "x")
	p.RemoveChildren(NSOccupantID, "occupant-id")
	p.RemoveAttr("to")
	p.RemoveAttr("from")
	p.RemoveAttr("type")
	return p
}

// join serves a user entering the room (XEP-0045 §7.2), or creating it.
func (r *room) join(ctx context.Context, el *xmlstream.Element, from, to jid.JID) {
	x := el.Child(NSMUC, "x")
	if x == nil {
		r.reply(el, errNoMUCX)
		return
	}
	nick := to.Resource()
	if e := checkNick(nick); e != nil {
		r.reply(el, e)
		return
	}
	if d := r.svc.joins.Take(from.Bare().String()); d > 0 {
		secs := int(d.Round(time.Second) / time.Second)
		r.reply(el, stanza.ErrResourceConstraint.WithText(fmt.Sprintf("too many rooms entered; try again in %d s", max(secs, 1))))
		return
	}
	creating := r.fresh && len(r.occupants) == 0 && from.Bare() == r.creator
	aff := r.affiliation(from)
	if creating {
		aff = AffOwner
	}
	if r.isLocked() && !creating && aff != AffOwner {
		r.reply(el, errLocked)
		return
	}
	switch {
	case aff == AffOutcast:
		r.reply(el, errBanned)
		return
	case r.cfg.MembersOnly && aff < AffMember:
		r.reply(el, errMembersOnly)
		return
	case r.cfg.Password != "" && aff < AffOwner && childText(x, NSMUC, "password") != r.cfg.Password:
		r.reply(el, errPassword)
		return
	}
	o := r.occupants[nick]
	if o != nil && o.bare != from.Bare() {
		r.reply(el, errNickTaken)
		return
	}
	for j, e := range r.affs {
		if e.nick == nick && j != from.Bare() {
			r.reply(el, errNickReserved)
			return
		}
	}
	if o == nil {
		limit := r.cfg.MaxUsers
		if m := r.svc.cfg.MaxOccupants; m > 0 && (limit == 0 || limit > m) {
			limit = m
		}
		if limit > 0 && len(r.occupants) >= limit && aff < AffAdmin {
			r.reply(el, errFull)
			return
		}
	}
	if creating {
		// The room reaches the store, if it is persistent, once its owner
		// configured it.
		r.affs[from.Bare()] = affEntry{aff: AffOwner}
		r.fresh = false
	}

	isNew := o == nil
	if isNew {
		o = &occupant{nick: nick, bare: from.Bare(), role: defaultRole(aff, r.cfg.Moderated)}
	}
	// The others first, then the newcomer itself (XEP-0045 §7.2.3).
	for _, other := range r.sortedOccupants() {
		if other == o {
			continue
		}
		r.send(r.presenceFor(other, from, o, presenceOpts{}))
	}
	o.sessions = append(o.sessions, session{jid: from, presence: clean(el)})
	r.occupants[nick] = o
	r.bySession[from] = o

	var codes []string
	if r.nonAnonymous() {
		codes = append(codes, "100")
	}
	if r.archive() != nil {
		codes = append(codes, "170")
	}
	if creating {
		codes = append(codes, "201")
	}
	if isNew {
		r.broadcastPresence(o, presenceOpts{selfCodes: codes})
	} else {
		// Another client of the same user under the same nick: it alone
		// gets its self-presence with the codes; the room sees an update.
		for _, rec := range r.sortedOccupants() {
			for _, s := range rec.sessions {
				opt := presenceOpts{}
				if s.jid == from {
					opt.selfCodes = codes
				}
				r.send(r.presenceFor(o, s.jid, rec, opt))
			}
		}
	}
	r.sendHistory(x.Child(NSMUC, "history"), from)
	r.sendSubject(from)
}

// sendSubject sends the room's subject, empty for none: the mark that the
// newcomer has the whole of the room's state (XEP-0045 §7.2.15).
func (r *room) sendSubject(to jid.JID) {
	from := r.jid
	if r.subjectBy != "" {
		from = r.occupantJID(r.subjectBy)
	}
	m := xmlstream.NewElement(xmlstream.NSClient, "message").SetAttr("type", "groupchat").
		SetAttr("from", from.String()).SetAttr("to", to.String()).SetAttr("id", newStanzaID())
	m.AppendChild(xmlstream.NewElement(xmlstream.NSClient, "subject").AppendText(r.subject))
	r.send(m)
}

// update serves a presence change of an occupant's session.
func (r *room) update(o *occupant, from jid.JID, el *xmlstream.Element) {
	primary := false
	for i := range o.sessions {
		if o.sessions[i].jid == from {
			o.sessions[i].presence = clean(el)
			primary = i == 0
		}
	}
	x := el.Child(NSMUC, "x")
	if x != nil {
		// A client that enters again while the room thinks it is in
		// (it reconnected with the same resource) gets the whole room again.
		for _, other := range r.sortedOccupants() {
			if other != o {
				r.send(r.presenceFor(other, from, o, presenceOpts{}))
			}
		}
		r.send(r.presenceFor(o, from, o, presenceOpts{}))
		r.sendHistory(x.Child(NSMUC, "history"), from)
		r.sendSubject(from)
		if !primary {
			return
		}
		for _, rec := range r.sortedOccupants() {
			for _, s := range rec.sessions {
				if s.jid != from {
					r.send(r.presenceFor(o, s.jid, rec, presenceOpts{}))
				}
			}
		}
		return
	}
	if !primary {
		r.send(r.presenceFor(o, from, o, presenceOpts{}))
		return
	}
	r.broadcastPresence(o, presenceOpts{})
}

// leave serves a session leaving (XEP-0045 §7.14).
func (r *room) leave(o *occupant, from jid.JID, el *xmlstream.Element) {
	status := ""
	if s := el.Child(xmlstream.NSClient, "status"); s != nil {
		status = s.Text()
	}
	r.dropSession(o, from, presenceOpts{status: status}, true)
}

// sessionFailed removes a session whose client is gone: routing bounced a
// stanza of the room to it (status 333, as Prosody and ejabberd do).
func (r *room) sessionFailed(o *occupant, from jid.JID) {
	r.dropSession(o, from, presenceOpts{codes: []string{"333"}}, false)
}

// dropSession takes one session out of o; the last one takes o out of the
// room. tell says whether the session itself hears it.
func (r *room) dropSession(o *occupant, from jid.JID, opt presenceOpts, tell bool) {
	idx := -1
	for i, s := range o.sessions {
		if s.jid == from {
			idx = i
		}
	}
	if idx < 0 {
		return
	}
	o.sessions = append(o.sessions[:idx:idx], o.sessions[idx+1:]...)
	delete(r.bySession, from)
	opt.unavailable = true
	if len(o.sessions) == 0 {
		r.removeOccupant(o)
		var gone []jid.JID
		if tell {
			gone = []jid.JID{from}
		}
		r.broadcastPresence(o, opt, gone...)
		return
	}
	if tell {
		r.send(r.presenceFor(o, from, o, opt))
	}
	if idx == 0 {
		// The primary session changed: the room sees the new one's presence.
		r.broadcastPresence(o, presenceOpts{})
	}
}

// changeNick serves an occupant taking another nick (XEP-0045 §7.6). All
// its sessions move: they are one user under one nick.
func (r *room) changeNick(o *occupant, from, to jid.JID, el *xmlstream.Element) {
	nick := to.Resource()
	if e := checkNick(nick); e != nil {
		r.reply(el, e)
		return
	}
	if other := r.occupants[nick]; other != nil {
		r.reply(el, errNickTaken)
		return
	}
	for j, e := range r.affs {
		if e.nick == nick && j != o.bare {
			r.reply(el, errNickReserved)
			return
		}
	}
	r.broadcastPresence(o, presenceOpts{unavailable: true, codes: []string{"303"}, newNick: nick})
	delete(r.occupants, o.nick)
	if r.subjectBy == o.nick {
		r.subjectBy = nick
	}
	o.nick = nick
	r.occupants[nick] = o
	for i := range o.sessions {
		if o.sessions[i].jid == from {
			o.sessions[i].presence = clean(el)
		}
	}
	r.broadcastPresence(o, presenceOpts{})
}

// probe answers a presence probe of an occupant about another.
func (r *room) probe(el *xmlstream.Element, from, to jid.JID, cur *occupant) {
	if cur == nil {
		r.reply(el, errNotJoined)
		return
	}
	if o := r.occupants[to.Resource()]; o != nil {
		r.send(r.presenceFor(o, from, cur, presenceOpts{}))
	}
}

// childText is the text of el's child {ns}local, "" if there is none.
func childText(el *xmlstream.Element, ns, local string) string {
	if c := el.Child(ns, local); c != nil {
		return c.Text()
	}
	return ""
}
