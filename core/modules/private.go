package modules

import (
	"context"
	"errors"
	"strings"

	"github.com/koi-im/koi/core/lastactivity"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// nsPrivate is private XML storage (XEP-0049).
const nsPrivate = "jabber:iq:private"

func (m *Server) registerPrivate() {
	m.handleIQ(scopeAccount, "get", nsPrivate, m.privateIQ)
	m.handleIQ(scopeAccount, "set", nsPrivate, m.privateIQ)
}

// nsKoiPrefix starts the namespaces under which koi keeps its own state in
// an account's private storage (last activity, push registrations): a
// client may not read or forge them.
const nsKoiPrefix = "urn:koi:"

// reservedNS may not be used for private storage (XEP-0049 §3).
func reservedNS(ns string) bool {
	switch ns {
	case "", xmlstream.NSClient, "jabber:server", nsPrivate, xmlstream.NSStream:
		return true
	}
	return strings.HasPrefix(ns, nsKoiPrefix)
}

func (m *Server) privateIQ(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if !c.self {
		return nil, stanza.ErrForbidden.WithText("private storage belongs to its owner")
	}
	if c.q.Local != "query" {
		return nil, stanza.ErrBadRequest
	}
	h := c.host
	if !h.Private.On {
		return nil, stanza.ErrServiceUnavailable
	}
	kids := c.q.Elements()
	if len(kids) != 1 || reservedNS(kids[0].Space) {
		return nil, stanza.ErrNotAcceptable.WithText("private storage takes exactly one element in a namespace of its own")
	}
	k := kids[0]
	if p := m.privateNS[k.Space]; p != nil {
		return m.privateHooked(ctx, c, p, k)
	}
	owner := c.to.String()
	if c.iq.Attr("type") == "get" {
		s, err := h.Private.Backend.GetPrivate(ctx, owner, k.Local, k.Space)
		if errors.Is(err, sdk.ErrNotFound) {
			return xmlstream.NewElement(nsPrivate, "query").AppendChild(xmlstream.NewElement(k.Space, k.Local)), nil
		}
		if err != nil {
			return nil, backendError(err)
		}
		el, err := stanza.Parse(s)
		if err != nil {
			m.log.Warn("stored private XML unreadable", "owner", owner, "error", err)
			return nil, stanza.ErrInternalCancel
		}
		return xmlstream.NewElement(nsPrivate, "query").AppendChild(el), nil
	}
	if !h.Private.Writable {
		return nil, stanza.ErrNotAllowed
	}
	if err := h.Private.Backend.SetPrivate(ctx, owner, k.Local, k.Space, k.String()); err != nil {
		return nil, backendError(err)
	}
	return nil, nil
}

// private returns the host's private storage for features that keep a
// little per-account state in it (last activity), nil where it is off or
// read-only.
func (h *Host) private() lastactivity.Private {
	if h == nil || !h.Private.On || !h.Private.Writable {
		return nil
	}
	return h.Private.Backend
}

// privateHooked serves a namespace that a module keeps elsewhere
// (HandlePrivate).
func (m *Server) privateHooked(ctx context.Context, c *iqCall, p PrivateStore, k *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	if c.iq.Attr("type") == "get" {
		el, serr := p.GetPrivate(ctx, c.to, k.Local, k.Space)
		if serr != nil {
			return nil, serr
		}
		return xmlstream.NewElement(nsPrivate, "query").AppendChild(el), nil
	}
	return nil, p.SetPrivate(ctx, c.to, k)
}
