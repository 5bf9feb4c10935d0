package modules

import (
	"context"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/roster"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// The roster cache and its writes are package roster; here are the
// roster IQs (RFC 6121 §2) that drive them.

// NSRoster is the roster namespace (RFC 6121 §2).
const NSRoster = roster.NS

// newRosters builds the roster cache over m's hosts and router.
func newRosters(m *Server) *roster.Rosters {
	return roster.New(roster.Config{
		Log:   m.log,
		Users: m.router,
		Source: func(domain string) (roster.Source, bool) {
			h := m.Host(domain)
			if h == nil {
				return roster.Source{}, false
			}
			return roster.Source{
				Host: h, Backend: h.Roster.Backend, On: h.Roster.On, Writable: h.Roster.Writable,
				Shared: h.SharedRoster.Backend, SharedOn: h.SharedRoster.On,
			}, true
		},
		Written: func(owner jid.JID) {
			if f := m.rosterWritten; f != nil {
				f(owner)
			}
		},
	})
}

func (m *Server) registerRoster() {
	m.handleIQ(scopeAccount, "get", NSRoster, m.rosterGet)
	m.handleIQ(scopeAccount, "set", NSRoster, m.rosterSet)
}

func (m *Server) rosterGet(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if !c.self {
		return nil, stanza.ErrForbidden
	}
	h := c.host
	if !h.Roster.On && !h.SharedRoster.On {
		return nil, stanza.ErrServiceUnavailable
	}
	var out *xmlstream.Element
	err := m.rosters.With(ctx, c.to, func(r *roster.Roster) error {
		c.s.SetInterested()
		if ver := c.q.Attr("ver"); ver != "" && ver == r.Version() {
			return nil // XEP-0237: unchanged, pushes will follow
		}
		out = xmlstream.NewElement(NSRoster, "query").SetAttr("ver", r.Version())
		for _, it := range r.Sorted() {
			out.AppendChild(roster.ItemElement(it))
		}
		return nil
	})
	if err != nil {
		return nil, asStanzaError(err)
	}
	return out, nil
}

func asStanzaError(err error) *stanza.Error {
	if se, ok := err.(*stanza.Error); ok {
		return se
	}
	return backendError(err)
}

func (m *Server) rosterSet(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if !c.self {
		return nil, stanza.ErrForbidden
	}
	items := c.q.Elements()
	if len(items) != 1 || items[0].Space != NSRoster || items[0].Local != "item" {
		return nil, stanza.ErrBadRequest.WithText("a roster set carries exactly one item")
	}
	el := items[0]
	contact, err := jid.Parse(el.Attr("jid"))
	if err != nil {
		return nil, stanza.ErrJIDMalformed.WithText("invalid item jid")
	}
	contact = contact.Bare()
	if el.Attr("subscription") == "remove" {
		return nil, errOrNil(m.rosterRemove(ctx, c.s.JID().Bare(), contact))
	}
	var groups []string
	seen := map[string]bool{}
	for _, g := range el.Elements() {
		if g.Space != NSRoster || g.Local != "group" {
			continue
		}
		name := g.Text()
		if name == "" || seen[name] || len(name) > 1023 {
			return nil, stanza.ErrNotAcceptable.WithText("group names must be non-empty, unique and short")
		}
		seen[name] = true
		groups = append(groups, name)
	}
	if len(el.Attr("name")) > 1023 {
		return nil, stanza.ErrNotAcceptable.WithText("item name too long")
	}
	err = m.rosters.With(ctx, c.to, func(r *roster.Roster) error {
		it, ok := r.Item(contact)
		if !ok {
			it = sdk.RosterItem{JID: contact.String(), Subscription: sdk.SubNone}
		}
		it.Name = el.Attr("name")
		it.Groups = groups
		return m.rosters.SetItem(ctx, r, it)
	})
	return nil, errOrNil(err)
}

func errOrNil(err error) *stanza.Error {
	if err == nil {
		return nil
	}
	return asStanzaError(err)
}
