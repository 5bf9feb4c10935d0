package modules

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Component serves a domain of its own beside the hosts: a multi-user chat
// service, the upload service, an external component (XEP-0114). Every
// stanza a user addresses to the domain or to a JID at it goes to Deliver,
// with from set to the sender's full JID; the component answers through
// Server.Route.
//
// Deliver is called on the sender's goroutine, so it must not block on the
// network for long: a component queues what it cannot do at once.
type Component interface {
	Deliver(ctx context.Context, el *xmlstream.Element)
}

// components is the set of served component domains. Routing reads it for
// every stanza and external components come and go at any time, so it is
// an immutable map replaced on change.
type components struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[map[string]Component]
}

// HasComponent reports whether a component serves domain now.
func (m *Server) HasComponent(domain string) bool { return m.component(domain) != nil }

// AddComponent serves domain with c. A domain that is a host or already a
// component is refused.
func (m *Server) AddComponent(domain string, c Component) error {
	if m.Host(domain) != nil {
		return fmt.Errorf("component %q: the domain is a served host", domain)
	}
	m.comps.mu.Lock()
	defer m.comps.mu.Unlock()
	old := m.comps.m.Load()
	next := make(map[string]Component, 1)
	if old != nil {
		if (*old)[domain] != nil {
			return fmt.Errorf("component %q: already connected", domain)
		}
		for d, x := range *old {
			next[d] = x
		}
	}
	next[domain] = c
	m.comps.m.Store(&next)
	return nil
}

// RemoveComponent stops serving domain if c serves it. Stanzas for it then
// bounce like those for any unknown domain.
func (m *Server) RemoveComponent(domain string, c Component) {
	m.comps.mu.Lock()
	defer m.comps.mu.Unlock()
	old := m.comps.m.Load()
	if old == nil || (*old)[domain] != c {
		return
	}
	next := make(map[string]Component, len(*old))
	for d, x := range *old {
		if d != domain {
			next[d] = x
		}
	}
	m.comps.m.Store(&next)
}

// component returns the component serving domain, or nil.
func (m *Server) component(domain string) Component {
	p := m.comps.m.Load()
	if p == nil {
		return nil
	}
	return (*p)[domain]
}

// componentsOf lists, sorted, the component domains under host (which
// disco#items on the host shows, XEP-0030 §4).
func (m *Server) componentsOf(host string) []string {
	p := m.comps.m.Load()
	if p == nil {
		return nil
	}
	var out []string
	for d := range *p {
		if strings.HasSuffix(d, "."+host) {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

// toComponent hands a user's stanza addressed to a component to it, and
// reports whether to was a component's. Presence to a component is
// remembered as directed presence whatever the user's own availability, so
// that the component (a room) hears when the session ends.
func (m *Server) toComponent(ctx context.Context, s *router.Session, el *xmlstream.Element, to jid.JID) bool {
	c := m.component(to.Domain())
	if c == nil {
		return false
	}
	typ := el.Attr("type")
	if m.blocker != nil && m.blocker.Blocked(ctx, s.JID().Bare(), to) {
		if typ != "error" && !(el.Local == "iq" && typ == "result") {
			s.Send(m.blocker.Refusal(el))
		}
		return true
	}
	if el.Local == "presence" {
		switch typ {
		case "":
			m.shape(ctx, s, el)
			s.AddDirected(to)
		case "unavailable":
			s.RemoveDirected(to)
		}
	}
	c.Deliver(ctx, el)
	return true
}

// Route delivers a stanza a component sent: el's from is at the
// component's domain. It goes to another component, or to a local user
// under the rules for stanzas arriving from another server (RFC 6121 §8.5),
// or bounces.
func (m *Server) Route(ctx context.Context, el *xmlstream.Element) {
	from, err := jid.Parse(el.Attr("from"))
	if err != nil {
		return
	}
	to, err := jid.Parse(el.Attr("to"))
	if err != nil {
		m.bounceTo(ctx, el, stanza.ErrJIDMalformed)
		return
	}
	if c := m.component(to.Domain()); c != nil {
		c.Deliver(ctx, el)
		return
	}
	if !m.isLocal(to) {
		m.bounceTo(ctx, el, stanza.ErrRemoteNotFound.WithText("this server does not federate"))
		return
	}
	typ := el.Attr("type")
	if to.Local() != "" && m.blocker != nil && m.blocker.Blocked(ctx, to.Bare(), from) {
		if (el.Local == "iq" && (typ == "get" || typ == "set")) || (el.Local == "message" && typ != "error") {
			m.bounceTo(ctx, el, stanza.ErrServiceUnavailable)
		}
		return
	}
	switch el.Local {
	case "message":
		if to.Local() == "" {
			if typ != "error" {
				m.bounceTo(ctx, el, stanza.ErrServiceUnavailable)
			}
			return
		}
		m.deliverMessage(ctx, el, jid.JID{}, to)
	case "presence":
		if to.Local() == "" {
			return
		}
		m.inboundPresence(ctx, el, from, to)
	case "iq":
		request := typ == "get" || typ == "set"
		if to.Resource() != "" {
			if t := m.router.Session(to); t != nil {
				t.Send(el)
				return
			}
		}
		// Requests to the server or to an account from a component are not
		// answered on the account's behalf.
		if request {
			m.bounceTo(ctx, el, stanza.ErrServiceUnavailable)
		}
	}
}

// leaveComponents tells the components a session sent directed presence
// to that it is gone, when it ends without having been available (an
// available session's unavailable broadcast covers them).
func (m *Server) leaveComponents(ctx context.Context, s *router.Session) {
	for _, d := range s.TakeDirected() {
		if c := m.component(d.Domain()); c != nil {
			p := presenceEl("unavailable", s.JID(), d)
			c.Deliver(ctx, p)
		}
	}
}
