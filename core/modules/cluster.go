package modules

import (
	"context"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/xmlstream"
)

// Seams for a cluster of nodes (core/cluster): each node caches the
// rosters of its own users, so a roster another node wrote must be
// dropped, and a stanza forwarded to a session that left meanwhile is
// delivered again under the usual rules.

// OnRosterWrite installs f, called after every change this node makes to a
// stored roster (items or pending subscriptions). Install it before
// serving.
func (m *Server) OnRosterWrite(f func(owner jid.JID)) { m.rosterWritten = f }

// ForgetRoster drops owner's cached roster: the next use reads the backend.
func (m *Server) ForgetRoster(owner jid.JID) { m.rosters.Drop(owner) }

// Redeliver delivers a stanza that another node forwarded to a session of
// this node which is gone: a message goes to the recipient's other
// resources or to offline storage as if it had been sent to the bare JID;
// anything else is dropped, as for a session that closed.
func (m *Server) Redeliver(ctx context.Context, el *xmlstream.Element) {
	if el.Local != "message" {
		return
	}
	to, err := jid.Parse(el.Attr("to"))
	if err != nil || !m.isLocal(to) || to.Local() == "" {
		return
	}
	switch messageType(el) {
	case "chat", "normal":
		m.deliverMessage(ctx, el, jid.JID{}, to.Bare())
	}
}
