package modules

import (
	"context"
	"slices"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/roster"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// What the admin API (core/admin) does to rosters and messages goes
// through the same paths as a client's request, so that sessions' cached
// rosters stay current and resources get their pushes.

// RosterItems returns owner's roster, sorted by JID.
func (m *Server) RosterItems(ctx context.Context, owner jid.JID) ([]sdk.RosterItem, error) {
	var items []sdk.RosterItem
	err := m.rosters.With(ctx, owner, func(r *roster.Roster) error {
		items = r.Sorted()
		return nil
	})
	return items, err
}

// SetRosterItem adds contact to owner's roster or changes its name and
// groups, as a roster set from one of owner's clients would (the
// subscription is not changed: that takes presence subscriptions).
func (m *Server) SetRosterItem(ctx context.Context, owner, contact jid.JID, name string, groups []string) error {
	groups = slices.Compact(slices.Sorted(slices.Values(groups)))
	return m.rosters.With(ctx, owner, func(r *roster.Roster) error {
		it, ok := r.Item(contact)
		if !ok {
			it = sdk.RosterItem{JID: contact.String(), Subscription: sdk.SubNone}
		}
		it.Name, it.Groups = name, groups
		return m.rosters.SetItem(ctx, r, it)
	})
}

// RemoveRosterItem removes contact from owner's roster and cancels the
// subscriptions both ways, as a client's roster remove would.
func (m *Server) RemoveRosterItem(ctx context.Context, owner, contact jid.JID) error {
	return m.rosterRemove(ctx, owner, contact)
}

// SendMessage delivers a message from the server (or any local or remote
// address in from) to a local address, as a message from a client would
// be delivered: to the bare JID's resources by the message rules, or
// stored offline. It returns false when to is not a configured host.
func (m *Server) SendMessage(ctx context.Context, el *xmlstream.Element, to jid.JID) bool {
	if !m.isLocal(to) {
		return false
	}
	m.deliverMessage(ctx, el, jid.JID{}, to)
	return true
}
