package modules

import (
	"context"
	"sort"

	"github.com/koi-im/koi/core/lastactivity"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Service discovery (XEP-0030).
const (
	NSDiscoInfo  = "http://jabber.org/protocol/disco#info"
	NSDiscoItems = "http://jabber.org/protocol/disco#items"
)

func (m *Server) registerDisco() {
	m.handleIQ(scopeServer, "get", NSDiscoInfo, m.discoInfoServer)
	m.handleIQ(scopeServer, "get", NSDiscoItems, m.discoItemsServer)
	m.handleIQ(scopeAccount, "get", NSDiscoInfo, m.discoInfoAccount)
	m.handleIQ(scopeAccount, "get", NSDiscoItems, m.discoItemsAccount)
}

// serverFeatures lists what a host offers; it follows the host's backends.
func (m *Server) serverFeatures(h *Host) []string {
	f := []string{NSDiscoInfo, NSDiscoItems, nsPing, nsTime, nsVersion, lastactivity.Namespace, "urn:xmpp:features:rosterver", "urn:xmpp:features:pre-approval", nsCarbons}
	if h.Offline.On {
		f = append(f, "msgoffline")
	}
	if h.VCard.On {
		f = append(f, nsVCard)
	}
	if h.Private.On {
		f = append(f, nsPrivate)
	}
	if h.Registration || h.PasswordChange {
		f = append(f, nsRegister)
	}
	if h.Archive.On {
		f = append(f, nsSID)
	}
	for _, x := range m.features {
		if x.on(h) {
			f = append(f, x.ns)
		}
	}
	sort.Strings(f)
	return f
}

func infoQuery(node, category, typ, name string, features []string) *xmlstream.Element {
	q := xmlstream.NewElement(NSDiscoInfo, "query")
	if node != "" {
		q.SetAttr("node", node)
	}
	id := xmlstream.NewElement(NSDiscoInfo, "identity").SetAttr("category", category).SetAttr("type", typ)
	if name != "" {
		id.SetAttr("name", name)
	}
	q.AppendChild(id)
	for _, f := range features {
		q.AppendChild(xmlstream.NewElement(NSDiscoInfo, "feature").SetAttr("var", f))
	}
	return q
}

func (m *Server) discoInfoServer(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if node := c.q.Attr("node"); node != "" {
		if m.serverNodes == nil {
			return nil, stanza.ErrItemNotFound
		}
		return m.serverNodes.NodeInfo(ctx, c.host.Name, c.s.JID(), node)
	}
	q := infoQuery("", "server", "im", "koi", m.serverFeatures(c.host))
	for _, f := range m.serverInfo {
		if x := f(c.host); x != nil {
			q.AppendChild(x)
		}
	}
	return q, nil
}

func (m *Server) discoInfoAccount(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if node := c.q.Attr("node"); node != "" {
		if m.accountDisco != nil {
			return m.accountDisco.NodeInfo(ctx, c.to, c.s.JID(), node)
		}
		return nil, stanza.ErrItemNotFound
	}
	features := []string{NSDiscoInfo, NSDiscoItems}
	if c.host.VCard.On {
		features = append(features, nsVCard)
	}
	if c.self {
		features = append(features, archiveFeatures(c.host)...)
		for _, x := range m.accountFeatures {
			if x.on(c.host) {
				features = append(features, x.ns)
			}
		}
	}
	q := infoQuery("", "account", "registered", "", features)
	if m.accountDisco != nil {
		m.accountDisco.ExtendInfo(ctx, c.to, c.s.JID(), q)
	}
	return q, nil
}

// discoItemsAccount lists an account's items: its PEP nodes when the
// extension serves them.
func (m *Server) discoItemsAccount(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if m.accountDisco != nil {
		return m.accountDisco.Items(ctx, c.to, c.s.JID(), c.q.Attr("node"))
	}
	return discoItems(ctx, c)
}

// discoItemsServer lists the host's component services (conference.host,
// upload.host…), so that clients find them (XEP-0030 §4, XEP-0045 §6.1).
func (m *Server) discoItemsServer(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if node := c.q.Attr("node"); node != "" && m.serverNodes != nil {
		return m.serverNodes.NodeItems(ctx, c.host.Name, c.s.JID(), node)
	}
	q, serr := discoItems(ctx, c)
	if serr != nil {
		return nil, serr
	}
	for _, d := range m.componentsOf(c.host.Name) {
		q.AppendChild(xmlstream.NewElement(NSDiscoItems, "item").SetAttr("jid", d))
	}
	return q, nil
}

func discoItems(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if c.q.Attr("node") != "" {
		return nil, stanza.ErrItemNotFound
	}
	return xmlstream.NewElement(NSDiscoItems, "query"), nil
}
