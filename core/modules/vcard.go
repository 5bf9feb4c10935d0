package modules

import (
	"context"
	"errors"

	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// nsVCard is vcard-temp (XEP-0054).
const nsVCard = "vcard-temp"

func (m *Server) registerVCard() {
	m.handleIQ(scopeAccount, "get", nsVCard, m.vcardGet)
	m.handleIQ(scopeAccount, "set", nsVCard, m.vcardSet)
}

func (m *Server) vcardGet(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if c.q.Local != "vCard" {
		return nil, stanza.ErrBadRequest
	}
	if !c.host.VCard.On {
		return nil, stanza.ErrServiceUnavailable
	}
	s, err := c.host.VCard.Backend.GetVCard(ctx, c.to.String())
	if errors.Is(err, sdk.ErrNotFound) {
		// XEP-0054 §3.1: an account without a vCard has an empty one.
		return xmlstream.NewElement(nsVCard, "vCard"), nil
	}
	if err != nil {
		return nil, backendError(err)
	}
	el, err := stanza.Parse(s)
	if err != nil || el.Space != nsVCard || el.Local != "vCard" {
		m.log.Warn("stored vCard unreadable", "owner", c.to.String(), "error", err)
		return nil, stanza.ErrInternalCancel
	}
	return el, nil
}

func (m *Server) vcardSet(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if !c.self {
		return nil, stanza.ErrForbidden.WithText("only the owner can change a vCard")
	}
	if c.q.Local != "vCard" {
		return nil, stanza.ErrBadRequest
	}
	if !c.host.VCard.On {
		return nil, stanza.ErrServiceUnavailable
	}
	if !c.host.VCard.Writable {
		return nil, stanza.ErrNotAllowed.WithText("vCards come from a read-only directory on this host")
	}
	var err error
	if len(c.q.Children) == 0 {
		err = c.host.VCard.Backend.DeleteVCard(ctx, c.to.String())
		if errors.Is(err, sdk.ErrNotFound) {
			err = nil
		}
	} else {
		err = c.host.VCard.Backend.SetVCard(ctx, c.to.String(), c.q.String())
	}
	if err != nil {
		return nil, backendError(err)
	}
	return nil, nil
}
