package modules

import (
	"context"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/roster"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Presence subscriptions (RFC 6121 §3). Each stanza is handled as its two
// servers would: the user's server updates the sender's roster (stageOut),
// the contact's server the recipient's (stageIn). Between two users of this
// server both sides, and the answer the contact's server gives at once (a
// pre-approval, an unknown user), are staged in one roster.Tx and written
// together (core/roster/tx.go); only then do stanzas and pushes go out.

// outcome is what a staged side leaves to do once it is written.
type outcome struct {
	route       bool // the stanza goes on to the contact (outbound side)
	deliver     bool // the stanza goes to the recipient's available resources
	autoReply   bool // the recipient's server answers "subscribed" itself
	sendAvail   bool // the recipient's presence goes to the sender
	sendUnavail bool // the sender's unavailable presence goes to the contact
}

// stageOut stages the user's side of a subscription stanza of type typ
// from r's owner to contact (RFC 6121 §3, "user's server").
func (m *Server) stageOut(tx *roster.Tx, r *roster.Roster, typ string, contact jid.JID) (outcome, error) {
	o := outcome{route: true}
	it, ok := tx.Item(r, contact)
	if !ok {
		it = sdk.RosterItem{JID: contact.String(), Subscription: sdk.SubNone}
	}
	switch typ {
	case "subscribe":
		if it.Subscription == sdk.SubTo || it.Subscription == sdk.SubBoth || (ok && it.Ask) {
			return o, nil // nothing changes; the contact's server re-answers
		}
		it.Ask = true
		return o, tx.SetItem(r, it)
	case "subscribed":
		switch {
		case tx.Pending(r, contact):
			it.Subscription = roster.AddFrom(it.Subscription)
			it.Approved = false
			if err := tx.SetItem(r, it); err != nil {
				return o, err
			}
			o.sendAvail = true
			return o, tx.DeletePending(r, contact)
		case it.Subscription == sdk.SubFrom || it.Subscription == sdk.SubBoth:
			o.route = false
			return o, nil
		default:
			// Pre-approval (RFC 6121 §3.4).
			o.route = false
			if it.Approved {
				return o, nil
			}
			it.Approved = true
			return o, tx.SetItem(r, it)
		}
	case "unsubscribe":
		if !ok {
			return o, nil
		}
		old := it
		it.Subscription = roster.RemoveTo(it.Subscription)
		it.Ask = false
		if old.Subscription == it.Subscription && !old.Ask {
			return o, nil
		}
		return o, tx.SetItem(r, it)
	case "unsubscribed":
		o.sendUnavail = it.Subscription == sdk.SubFrom || it.Subscription == sdk.SubBoth
		if err := tx.DeletePending(r, contact); err != nil {
			return o, err
		}
		if !ok {
			return o, nil
		}
		old := it
		it.Subscription = roster.RemoveFrom(it.Subscription)
		it.Approved = false
		if old.Subscription == it.Subscription && !old.Approved {
			return o, nil
		}
		return o, tx.SetItem(r, it)
	}
	return o, nil
}

// stageIn stages the contact's side: presence p of type typ from from
// arrives for r's owner (RFC 6121 §3, "contact's server").
func (m *Server) stageIn(tx *roster.Tx, r *roster.Roster, p *xmlstream.Element, typ string, from jid.JID) (outcome, error) {
	var o outcome
	it, ok := tx.Item(r, from)
	pending := tx.Pending(r, from)
	switch typ {
	case "subscribe":
		switch {
		case ok && (it.Subscription == sdk.SubFrom || it.Subscription == sdk.SubBoth):
			o.autoReply = true
			return o, nil
		case ok && it.Approved:
			it.Subscription = roster.AddFrom(it.Subscription)
			it.Approved = false
			o.autoReply, o.sendAvail = true, true
			return o, tx.SetItem(r, it)
		}
		o.deliver = true
		return o, tx.SetPending(r, from, p.String())
	case "subscribed":
		if !ok || !it.Ask {
			return o, nil
		}
		it.Subscription = roster.AddTo(it.Subscription)
		it.Ask = false
		o.deliver = true
		return o, tx.SetItem(r, it)
	case "unsubscribe":
		if err := tx.DeletePending(r, from); err != nil {
			return o, err
		}
		o.deliver = pending
		if ok && (it.Subscription == sdk.SubFrom || it.Subscription == sdk.SubBoth) {
			it.Subscription = roster.RemoveFrom(it.Subscription)
			o.deliver = true
			return o, tx.SetItem(r, it)
		}
	case "unsubscribed":
		if ok && (it.Subscription == sdk.SubTo || it.Subscription == sdk.SubBoth || it.Ask) {
			it.Subscription = roster.RemoveTo(it.Subscription)
			it.Ask = false
			o.deliver = true
			return o, tx.SetItem(r, it)
		}
	}
	return o, nil
}

// stageInLogged stages the recipient's side of a stanza whose sender's side
// is staged in the same tx. A recipient whose roster cannot be written
// (a host without a writable roster) keeps none of it, as when its server
// is elsewhere; the sender's side goes on.
func (m *Server) stageInLogged(tx *roster.Tx, r *roster.Roster, p *xmlstream.Element, typ string, from jid.JID) outcome {
	o, err := m.stageIn(tx, r, p, typ, from)
	if err != nil {
		m.log.Warn("subscription state not updated", "type", typ, "from", from.String(), "to", r.Owner().String(), "error", err)
		return outcome{}
	}
	return o
}

// deliverIn hands an inbound subscription stanza to to's available
// resources when its side said so.
func (m *Server) deliverIn(o outcome, p *xmlstream.Element, to jid.JID) {
	if !o.deliver {
		return
	}
	if u := m.router.User(to); u != nil {
		for _, s := range u.Available() {
			sendTo(s, p)
		}
	}
}

// outboundSubscription handles a subscription stanza sent by a user.
func (m *Server) outboundSubscription(ctx context.Context, s *router.Session, el *xmlstream.Element, typ string, contact jid.JID) {
	owner := s.JID().Bare()
	p := el.Copy()
	p.SetAttr("from", owner.String())
	p.SetAttr("to", contact.String())
	local, exists := m.isLocal(contact), true
	if local && typ == "subscribe" {
		var err error
		if exists, err = m.userExists(ctx, contact); err != nil {
			m.log.Warn("subscription request not processed", "to", contact.String(), "error", err)
			local = false // the user's side only, as for a contact elsewhere
		}
	}
	var other jid.JID
	if local && exists {
		other = contact
	}
	var out, in, back outcome
	var reply *xmlstream.Element
	err := m.rosters.WithPair(ctx, owner, other, func(ro, rc *roster.Roster) error {
		tx := m.rosters.Begin()
		var err error
		if out, err = m.stageOut(tx, ro, typ, contact); err != nil {
			return err
		}
		switch {
		case !out.route:
		case local && !exists:
			// A request to no one is answered "unsubscribed" (RFC 6121 §3.1.3).
			reply = presenceEl("unsubscribed", contact, owner)
			back = m.stageInLogged(tx, ro, reply, "unsubscribed", contact)
		case rc == nil:
		default:
			in = m.stageInLogged(tx, rc, p, typ, owner)
			if in.autoReply {
				reply = presenceEl("subscribed", contact, owner)
				back = m.stageInLogged(tx, ro, reply, "subscribed", contact)
			}
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		m.bounce(s, el, asStanzaError(err))
		return
	}
	if !out.route {
		return
	}
	if !m.isLocal(contact) {
		m.bounce(s, el, stanza.ErrRemoteNotFound.WithText("this server does not federate"))
		return
	}
	m.deliverIn(in, p, contact)
	if reply != nil {
		m.deliverIn(back, reply, owner)
	}
	if in.sendAvail {
		m.sendAvailableTo(ctx, contact, owner)
	}
	if out.sendAvail {
		m.sendAvailableTo(ctx, owner, contact)
	}
	if out.sendUnavail {
		m.sendUnavailableTo(ctx, owner, contact)
	}
}

// inboundSubscription handles a subscription stanza for to whose sender's
// side is not ours to stage (a component).
func (m *Server) inboundSubscription(ctx context.Context, p *xmlstream.Element, typ string, from, to jid.JID) {
	if typ == "subscribe" {
		ok, err := m.userExists(ctx, to)
		if err != nil {
			m.log.Warn("subscription request not processed", "to", to.String(), "error", err)
			return
		}
		if !ok {
			m.inboundPresence(ctx, presenceEl("unsubscribed", to, from), to, from)
			return
		}
	}
	var o outcome
	err := m.rosters.With(ctx, to, func(r *roster.Roster) error {
		tx := m.rosters.Begin()
		var err error
		if o, err = m.stageIn(tx, r, p, typ, from); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		m.log.Warn("subscription state not updated", "type", typ, "from", from.String(), "to", to.String(), "error", err)
		return
	}
	m.deliverIn(o, p, to)
	if o.autoReply {
		m.inboundPresence(ctx, presenceEl("subscribed", to, from), to, from)
	}
	if o.sendAvail {
		m.sendAvailableTo(ctx, to, from)
	}
}

// rosterRemove removes a contact and cancels subscriptions both ways (RFC
// 6121 §2.5.2): the owner's item and pending request go, and the contact's
// side of the unsubscribe and unsubscribed that follow, in one step.
func (m *Server) rosterRemove(ctx context.Context, owner, contact jid.JID) error {
	var sendUnsub, sendUnsubd bool
	var other jid.JID
	if m.isLocal(contact) {
		other = contact
	}
	unsub := presenceEl("unsubscribe", owner, contact)
	unsubd := presenceEl("unsubscribed", owner, contact)
	var inUnsub, inUnsubd outcome
	err := m.rosters.WithPair(ctx, owner, other, func(ro, rc *roster.Roster) error {
		tx := m.rosters.Begin()
		it, ok := tx.Item(ro, contact)
		if !ok {
			return stanza.ErrItemNotFound
		}
		if ro.Shared(contact) {
			return stanza.ErrNotAllowed.WithText("this contact comes from the directory's shared roster and cannot be removed")
		}
		sendUnsub = it.Subscription == sdk.SubTo || it.Subscription == sdk.SubBoth || it.Ask
		sendUnsubd = it.Subscription == sdk.SubFrom || it.Subscription == sdk.SubBoth || tx.Pending(ro, contact)
		if err := tx.DeletePending(ro, contact); err != nil {
			return err
		}
		if err := tx.DeleteItem(ro, contact); err != nil {
			return err
		}
		if rc != nil && sendUnsub {
			inUnsub = m.stageInLogged(tx, rc, unsub, "unsubscribe", owner)
		}
		if rc != nil && sendUnsubd {
			inUnsubd = m.stageInLogged(tx, rc, unsubd, "unsubscribed", owner)
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return err
	}
	if sendUnsubd {
		m.sendUnavailableTo(ctx, owner, contact)
	}
	m.deliverIn(inUnsub, unsub, contact)
	m.deliverIn(inUnsubd, unsubd, contact)
	return nil
}
