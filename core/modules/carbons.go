package modules

import (
	"context"
	"slices"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Message Carbons (XEP-0280): a user's other devices get a copy of each
// one-to-one message the user receives or sends, so that every device
// shows the whole conversation. Copies carry the archive's stanza-ids: a
// received copy the recipient's (as delivered), a sent copy the sender's,
// so a client can match carbons, offline messages and archive results.
const nsCarbons = "urn:xmpp:carbons:2"

func (m *Server) registerCarbons() {
	m.handleIQ(scopeAccount, "set", nsCarbons, func(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
		if !c.self {
			return nil, stanza.ErrForbidden
		}
		switch c.q.Local {
		case "enable":
			c.s.SetCarbons(true)
		case "disable":
			c.s.SetCarbons(false)
		default:
			return nil, stanza.ErrBadRequest
		}
		return nil, nil
	})
}

// EnableCarbons turns carbons on for s: Bind 2's inline <enable/>
// (XEP-0386), the same as the enable IQ.
func (m *Server) EnableCarbons(s *router.Session) { s.SetCarbons(true) }

// carbonEligible reports whether a message is copied (XEP-0280 §6): chat
// messages, and normal ones with a body; not those marked private or
// no-copy, and not carbons themselves.
func carbonEligible(el *xmlstream.Element) bool {
	switch messageType(el) {
	case "chat":
	case "normal":
		if el.Child(xmlstream.NSClient, "body") == nil {
			return false
		}
	default:
		return false
	}
	return el.Child(nsCarbons, "private") == nil && el.Child(nsHints, "no-copy") == nil &&
		el.Child(nsCarbons, "received") == nil && el.Child(nsCarbons, "sent") == nil
}

// sendCarbons copies el, just delivered to the recipient's sessions
// delivered (none when it was stored offline), to the other carbon-enabled
// sessions of its recipient (received) and of its sender (sent). sender is
// the sending session's JID when the caller knows it, else zero. arch
// holds the sender's archive id, if the message was archived.
func (m *Server) sendCarbons(el *xmlstream.Element, sender, to jid.JID, delivered []*router.Session, arch *archiving) {
	if !carbonEligible(el) {
		return
	}
	from, err := jid.ParseKnown(el.Attr("from"), sender)
	if err != nil || from.Bare() == to.Bare() {
		return
	}
	if len(delivered) > 0 {
		if u := m.router.User(to.Bare()); u != nil {
			for _, s := range u.CarbonCopies() {
				if !slices.Contains(delivered, s) {
					s.Send(carbon("received", to.Bare(), s, el))
				}
			}
		}
	}
	if u := m.router.User(from.Bare()); u != nil {
		var sent *xmlstream.Element
		for _, s := range u.CarbonCopies() {
			if s.JID() == from {
				continue
			}
			if sent == nil {
				sent = el.Copy()
				// The recipient's id is not the sender's business; the
				// sender's own archive id is.
				sent.RemoveChildren(nsSID, "stanza-id")
				if id := arch.outgoingID(); id != "" {
					sent.AppendChild(xmlstream.NewElement(nsSID, "stanza-id").SetAttr("by", from.Bare().String()).SetAttr("id", id))
				}
			}
			s.Send(carbon("sent", from.Bare(), s, sent))
		}
	}
}

// carbon wraps msg for session s (XEP-0280 §7).
func carbon(kind string, bare jid.JID, s *router.Session, msg *xmlstream.Element) *xmlstream.Element {
	out := xmlstream.NewElement(xmlstream.NSClient, "message").
		SetAttr("from", bare.String()).SetAttr("to", s.JID().String()).SetAttr("type", messageType(msg))
	fwd := xmlstream.NewElement(nsForward, "forwarded").AppendChild(msg.Copy())
	return out.AppendChild(xmlstream.NewElement(nsCarbons, kind).AppendChild(fwd))
}

// outgoingID is the id of the sender's archived copy, or "".
func (a *archiving) outgoingID() string {
	if a == nil {
		return ""
	}
	for _, m := range a.msgs[:a.n] {
		if m.Outgoing {
			return m.StanzaID
		}
	}
	return ""
}
