package modules

import (
	"context"
	"errors"
	"runtime"
	"time"

	"github.com/koi-im/koi/core/lastactivity"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

const (
	nsPing    = "urn:xmpp:ping"     // XEP-0199
	nsTime    = "urn:xmpp:time"     // XEP-0202
	nsVersion = "jabber:iq:version" // XEP-0092
)

func (m *Server) registerMisc() {
	m.handleIQ(scopeServer, "get", nsPing, pong)
	m.handleIQ(scopeAccount, "get", nsPing, func(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
		// A ping to a bare JID is answered by the server for the account
		// (XEP-0199 §4.3 leaves it to the server); only the owner gets a pong.
		if !c.self {
			return nil, stanza.ErrServiceUnavailable
		}
		return nil, nil
	})
	m.handleIQ(scopeServer, "get", nsTime, entityTime)
	m.handleIQ(scopeServer, "get", nsVersion, m.softwareVersion)
	m.handleIQ(scopeServer, "get", lastactivity.Namespace, func(context.Context, *iqCall) (*xmlstream.Element, *stanza.Error) {
		return m.last.Uptime(), nil
	})
	m.handleIQ(scopeAccount, "get", lastactivity.Namespace, m.lastActivity)
}

// lastActivity answers XEP-0012 for an account, to itself and to those
// subscribed to its presence (§4: others get <forbidden/>).
func (m *Server) lastActivity(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if !c.self && !m.granted(ctx, c.to, c.s.JID()) {
		return nil, stanza.ErrForbidden
	}
	if u := m.router.User(c.to); u != nil && len(u.Available()) > 0 {
		return lastactivity.Online(), nil
	}
	q, err := m.last.Offline(ctx, c.to, c.host.private())
	if errors.Is(err, lastactivity.ErrUnknown) {
		return nil, stanza.ErrItemNotFound.WithText("no last activity known")
	} else if err != nil {
		return nil, backendError(err)
	}
	return q, nil
}

func pong(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) { return nil, nil }

func entityTime(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	now := time.Now().UTC()
	return xmlstream.NewElement(nsTime, "time").
		AppendChild(xmlstream.NewElement(nsTime, "tzo").AppendText("+00:00")).
		AppendChild(xmlstream.NewElement(nsTime, "utc").AppendText(now.Format("2006-01-02T15:04:05.000Z"))), nil
}

func (m *Server) softwareVersion(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	return xmlstream.NewElement(nsVersion, "query").
		AppendChild(xmlstream.NewElement(nsVersion, "name").AppendText("koi")).
		AppendChild(xmlstream.NewElement(nsVersion, "version").AppendText(m.version)).
		AppendChild(xmlstream.NewElement(nsVersion, "os").AppendText(runtime.GOOS)), nil
}
