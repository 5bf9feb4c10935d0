package muc

import (
	"context"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Registering with a room (XEP-0045 §7.10) reserves a nickname in it, as
// Prosody does: the nickname is kept with the user's affiliation, so only
// those with one (members, admins, owners) may register; the unaffiliated
// get <registration-required/>, which an admin lifts by making them
// members. A reserved nickname is theirs alone in the room (§7.12 lets
// their clients discover it) and they remain free to enter under another.
// Removing the registration ends a membership and gives up the nickname
// of an admin or owner.

// Namespaces and the form of room registration.
const (
	NSRegister       = "jabber:iq:register"
	nsRegisterForm   = "http://jabber.org/protocol/muc#register"
	fRegisterNick    = "muc#register_roomnick"
	nodeReservedNick = "x-roomuser-item"
)

// Errors of room registration.
var (
	errRegisterBanned   = stanza.ErrForbidden.WithText("you are banned from this room")
	errRegisterNeedsAff = &stanza.Error{Type: stanza.Auth, Condition: "registration-required", Text: "only members of this room may register a nickname in it; ask one of its admins"}
	errRegisterForm     = stanza.ErrBadRequest.WithText("want a submitted " + nsRegisterForm + " form with " + fRegisterNick + ", or <remove/>")
)

// register serves jabber:iq:register on the room, under its lock.
func (r *room) register(el, q *xmlstream.Element, from jid.JID) {
	user := from.Bare()
	switch aff := r.affiliation(user); {
	case aff == AffOutcast:
		r.reply(el, errRegisterBanned)
		return
	case aff == AffNone:
		r.reply(el, errRegisterNeedsAff)
		return
	}
	entry, stored := r.affs[user]
	if el.Attr("type") == "get" {
		res := xmlstream.NewElement(NSRegister, "query")
		if entry.nick != "" {
			res.AppendChild(xmlstream.NewElement(NSRegister, "registered"))
			res.AppendChild(xmlstream.NewElement(NSRegister, "username").AppendText(entry.nick))
		} else {
			res.AppendChild(dataform.Build("form", "", "Register with "+r.jid.String(), "Choose the nickname to keep for you in this room", []dataform.Field{
				{Var: "FORM_TYPE", Type: "hidden", Values: []string{nsRegisterForm}},
				{Var: fRegisterNick, Type: "text-single", Label: "Nickname"},
			}))
		}
		r.result(el, res)
		return
	}
	if !stored {
		// A service admin owns every room without an entry of its own.
		entry = affEntry{aff: AffMember}
	}
	next := entry
	switch x := q.Child(NSData, "x"); {
	case q.Child(NSRegister, "remove") != nil:
		if !stored {
			r.result(el, nil)
			return
		}
		next.nick = ""
		if entry.aff == AffMember {
			next.aff = AffNone
		}
	case x != nil && x.Attr("type") == "cancel":
		r.result(el, nil)
		return
	case x == nil || x.Attr("type") != "submit" || firstValue(dataform.Values(x), "FORM_TYPE") != nsRegisterForm:
		r.reply(el, errRegisterForm)
		return
	default:
		nj, err := r.jid.WithResource(firstValue(dataform.Values(x), fRegisterNick))
		if err != nil || nj.Resource() == "" {
			r.reply(el, errBadNick)
			return
		}
		nick := nj.Resource()
		if serr := checkNick(nick); serr != nil {
			r.reply(el, serr)
			return
		}
		if o := r.occupants[nick]; o != nil && o.bare != user {
			r.reply(el, errNickTaken)
			return
		}
		for j, e := range r.affs {
			if e.nick == nick && j != user {
				r.reply(el, errNickReserved)
				return
			}
		}
		next.nick = nick
	}
	if stored && next == entry {
		r.result(el, nil)
		return
	}
	apply := func() {
		if next.aff != entry.aff {
			// A membership ends: occupants of a members-only room
			// leave it (321).
			r.applyAffiliation(user, next, "")
		} else {
			r.affs[user] = next
		}
		r.result(el, nil)
	}
	if !r.stored {
		apply()
		return
	}
	a, rec, old := r.access(), r.affRecord(user, next), r.oldRecords()
	r.queueStore(storeOp{
		write: func(ctx context.Context) error { return a.setAll(ctx, []sdk.MUCAffiliation{rec}, old) },
		apply: apply,
		fail:  func(error) { r.reply(el, errStore) },
	})
}

// reservedNick answers disco#info on the x-roomuser-item node (XEP-0045
// §7.12): an identity named with the nickname from has reserved in the
// room, none when it has none.
func (r *room) reservedNick(el *xmlstream.Element, from jid.JID) {
	res := xmlstream.NewElement(NSDiscoInfo, "query").SetAttr("node", nodeReservedNick)
	if e := r.affs[from.Bare()]; e.nick != "" && e.aff != AffOutcast {
		res.AppendChild(xmlstream.NewElement(NSDiscoInfo, "identity").
			SetAttr("category", "conference").SetAttr("type", "text").SetAttr("name", e.nick))
	}
	r.result(el, res)
}

func firstValue(vals map[string][]string, k string) string {
	if v := vals[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}
