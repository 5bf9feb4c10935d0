package modules

import (
	"context"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

type iqScope int

const (
	// scopeServer: IQs addressed to the domain itself.
	scopeServer iqScope = iota
	// scopeAccount: IQs addressed to a bare JID (or to nobody, which
	// means the sender's own account), answered by the server on the
	// account's behalf.
	scopeAccount
)

type iqKey struct {
	scope iqScope
	typ   string // "get" or "set"
	ns    string // payload namespace
}

// iqCall is one IQ request being handled.
type iqCall struct {
	s    *router.Session
	iq   *xmlstream.Element
	q    *xmlstream.Element // the payload
	to   jid.JID            // the addressee: a domain or a bare JID, never zero
	host *Host              // the addressee's host
	self bool               // addressed to the sender's own account
}

// iqHandler answers a request with a payload (nil for an empty result) or
// a stanza error.
type iqHandler func(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error)

func (m *Server) handleIQ(scope iqScope, typ, ns string, h iqHandler) {
	m.iq[iqKey{scope, typ, ns}] = h
}

func (m *Server) outboundIQ(ctx context.Context, s *router.Session, el *xmlstream.Element, to jid.JID) {
	typ := el.Attr("type")
	if to.IsZero() {
		to = s.JID().Bare()
	}
	request := typ == "get" || typ == "set"
	if !m.isLocal(to) {
		if request {
			m.bounce(s, el, stanza.ErrRemoteNotFound.WithText("this server does not federate"))
		}
		return
	}
	if to.Resource() != "" {
		if t := m.router.Session(to); t != nil {
			t.Send(el)
		} else if request {
			m.bounce(s, el, stanza.ErrServiceUnavailable)
		}
		return
	}
	if !request {
		// Answers to the server or to an account: a module may be waiting
		// for them (push notifications); otherwise nobody is.
		for _, h := range m.replies {
			if h(ctx, s, el) {
				break
			}
		}
		return
	}
	scope := scopeServer
	if to.Local() != "" {
		scope = scopeAccount
	}
	q := el.FirstChild()
	h := m.iq[iqKey{scope, typ, q.Space}]
	if scope == scopeAccount && to != s.JID().Bare() {
		ok, err := m.userExists(ctx, to)
		if err != nil {
			m.bounce(s, el, backendError(err))
			return
		}
		if !ok {
			m.bounce(s, el, stanza.ErrServiceUnavailable)
			return
		}
	}
	if h == nil {
		m.bounce(s, el, stanza.ErrServiceUnavailable)
		return
	}
	payload, serr := h(ctx, &iqCall{s: s, iq: el, q: q, to: to, host: m.Host(to.Domain()), self: to == s.JID().Bare()})
	if serr != nil {
		m.bounce(s, el, serr)
		return
	}
	s.Send(stanza.Result(el, payload))
}
