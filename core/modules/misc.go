package modules

import (
	"context"
	"runtime"
	"time"

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
