package modules

import (
	"context"
	"strconv"
	"strings"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/roster"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

func isSubscription(typ string) bool {
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		return true
	}
	return false
}

func presenceEl(typ string, from, to jid.JID) *xmlstream.Element {
	p := xmlstream.NewElement(xmlstream.NSClient, "presence")
	if typ != "" {
		p.SetAttr("type", typ)
	}
	return p.SetAttr("from", from.String()).SetAttr("to", to.String())
}

// priority reads <priority/> (RFC 6121 §4.7.2.3): -128..127, default 0.
func priority(p *xmlstream.Element) int {
	pe := p.Child(xmlstream.NSClient, "priority")
	if pe == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(pe.Text()))
	if err != nil || n < -128 || n > 127 {
		return 0
	}
	return n
}

// outboundPresence handles presence a client sent (RFC 6121 §3, §4).
func (m *Server) outboundPresence(ctx context.Context, s *router.Session, el *xmlstream.Element, to jid.JID) {
	typ := el.Attr("type")
	switch {
	case isSubscription(typ):
		if to.IsZero() {
			m.bounce(s, el, stanza.ErrBadRequest.WithText("a subscription request needs a to address"))
			return
		}
		m.outboundSubscription(ctx, s, el, typ, to.Bare())
	case to.IsZero() && (typ == "" || typ == "unavailable"):
		m.presenceBroadcast(ctx, s, el, typ)
	case to.IsZero():
		// probes and errors addressed to nobody have no meaning: ignore
	case !m.isLocal(to):
		m.bounce(s, el, stanza.ErrRemoteNotFound.WithText("this server does not federate"))
	case typ == "probe":
		m.inboundPresence(ctx, el, s.JID(), to)
	case typ == "" || typ == "unavailable":
		m.directedPresence(ctx, s, el, typ, to)
	default:
		m.inboundPresence(ctx, el, s.JID(), to)
	}
}

// presenceBroadcast handles broadcast presence: initial, subsequent and
// unavailable (RFC 6121 §4.2–4.5).
func (m *Server) presenceBroadcast(ctx context.Context, s *router.Session, el *xmlstream.Element, typ string) {
	el.RemoveAttr("to")
	if typ == "unavailable" {
		wasAvailable := s.SetPresence(nil, 0)
		if wasAvailable {
			m.broadcastPresence(ctx, s, el)
		}
		return
	}
	prio := priority(el)
	before := s.State()
	m.shape(ctx, s, el)
	// Offline messages go to the first presence that can take messages
	// sent to the bare JID: non-negative priority (XEP-0160 §3). They are
	// older than anything routed to the user once the session is
	// available, so they go first: deliveries wait for the flush.
	if prio >= 0 && (!before.Available || before.Priority < 0) {
		end := s.User().BeginFlush()
		s.SetPresence(el.Copy(), prio)
		m.deliverOffline(ctx, s)
		end()
	} else {
		s.SetPresence(el.Copy(), prio)
	}
	m.broadcastPresence(ctx, s, el)
	if !before.Available {
		// Initial presence: learn the contacts' presence, receive what waited.
		m.warmArchivePrefs(ctx, s.JID().Bare())
		m.probeContacts(ctx, s)
		m.deliverPendingSubscriptions(ctx, s)
	}
}

// broadcastPresence sends p (from s) to the contacts subscribed to the
// user, to the user's own available resources and, for unavailable
// presence, to every target of directed presence.
func (m *Server) broadcastPresence(ctx context.Context, s *router.Session, p *xmlstream.Element) {
	owner := s.JID().Bare()
	p.SetAttr("from", s.JID().String())
	var contacts []jid.JID
	err := m.rosters.With(ctx, owner, func(r *roster.Roster) error {
		for c, it := range r.Items() {
			if it.Subscription == sdk.SubFrom || it.Subscription == sdk.SubBoth {
				contacts = append(contacts, c)
			}
		}
		return nil
	})
	if err != nil {
		m.log.Warn("presence broadcast without roster", "user", owner.String(), "error", err)
	}
	unavailable := p.Attr("type") == "unavailable"
	sent := make(map[jid.JID]bool, len(contacts))
	for _, c := range contacts {
		sent[c] = true
		if !m.blockedEither(ctx, s.JID(), c) {
			m.deliverPresence(ctx, p, c)
		}
	}
	if unavailable {
		for _, d := range s.TakeDirected() {
			if (!sent[d.Bare()] || d.Resource() != "") && !m.blockedEither(ctx, s.JID(), d) {
				m.deliverPresence(ctx, p, d)
			}
		}
	}
	var others []*router.Session
	if u := s.User(); u != nil {
		others = u.Available()
		for _, o := range others {
			sendTo(o, p)
		}
		if unavailable && !s.State().Available {
			sendTo(s, p) // the originating resource sees its own unavailable presence
		}
	}
	if unavailable && len(others) == 0 {
		if err := m.last.WentOffline(ctx, owner, p, m.Host(owner.Domain()).private()); err != nil {
			m.log.Warn("last activity not stored", "user", owner.String(), "error", err)
		}
	}
	for _, o := range m.observers {
		o(ctx, s, p)
	}
}

// deliverPresence hands broadcast or directed presence to a local contact.
func (m *Server) deliverPresence(ctx context.Context, p *xmlstream.Element, to jid.JID) {
	if !m.isLocal(to) && m.component(to.Domain()) == nil {
		return // no federation: remote contacts get nothing
	}
	c := p.Copy()
	c.SetAttr("to", to.String())
	m.routeToJID(ctx, c, to)
}

func (m *Server) directedPresence(ctx context.Context, s *router.Session, el *xmlstream.Element, typ string, to jid.JID) {
	// Directed presence to a contact that already gets our broadcasts is
	// not remembered: the broadcast covers it.
	subscribed := false
	m.rosters.With(ctx, s.JID().Bare(), func(r *roster.Roster) error {
		it, ok := r.Item(to.Bare())
		subscribed = ok && (it.Subscription == sdk.SubFrom || it.Subscription == sdk.SubBoth)
		return nil
	})
	if typ == "unavailable" {
		s.RemoveDirected(to)
	} else {
		m.shape(ctx, s, el)
		if !subscribed && s.State().Available {
			s.AddDirected(to)
		}
	}
	m.routeToJID(ctx, el, to)
}

// probeContacts answers, for a new available session, the question its
// server would ask with probes: the presence of every contact the user is
// subscribed to, and of the user's other resources.
func (m *Server) probeContacts(ctx context.Context, s *router.Session) {
	owner := s.JID().Bare()
	var contacts []jid.JID
	m.rosters.With(ctx, owner, func(r *roster.Roster) error {
		for c, it := range r.Items() {
			if it.Subscription == sdk.SubTo || it.Subscription == sdk.SubBoth {
				contacts = append(contacts, c)
			}
		}
		return nil
	})
	for _, c := range contacts {
		if m.router.User(c) == nil {
			continue // offline: nothing to report
		}
		probe := presenceEl("probe", owner, c)
		m.answerProbe(ctx, probe, s.JID(), c)
	}
	if u := s.User(); u != nil {
		for _, o := range u.Available() {
			if o != s {
				if st := o.State(); st.Presence != nil {
					p := st.Presence.Copy()
					p.SetAttr("from", o.JID().String())
					sendTo(s, p)
				}
			}
		}
	}
}

// answerProbe sends the presence of contact's available resources to
// prober if contact has granted prober a subscription (RFC 6121 §4.3.2).
func (m *Server) answerProbe(ctx context.Context, probe *xmlstream.Element, prober, contact jid.JID) {
	contact = contact.Bare()
	if !m.granted(ctx, contact, prober) {
		return
	}
	m.sendAvailableTo(ctx, contact, prober)
}

// granted reports whether owner has granted who a subscription to its
// presence.
func (m *Server) granted(ctx context.Context, owner, who jid.JID) bool {
	allowed := false
	m.rosters.With(ctx, owner.Bare(), func(r *roster.Roster) error {
		it, ok := r.Item(who.Bare())
		allowed = ok && (it.Subscription == sdk.SubFrom || it.Subscription == sdk.SubBoth)
		return nil
	})
	return allowed
}

// sendAvailableTo sends the current presence of owner's available
// resources to target.
func (m *Server) sendAvailableTo(ctx context.Context, owner, target jid.JID) {
	u := m.router.User(owner)
	if u == nil {
		return
	}
	for _, o := range u.Available() {
		st := o.State()
		if st.Presence == nil || m.blockedEither(ctx, o.JID(), target) {
			continue
		}
		p := st.Presence.Copy()
		p.SetAttr("from", o.JID().String())
		p.SetAttr("to", target.String())
		m.routeToJID(ctx, p, target)
	}
}

// sendUnavailableTo tells target that owner's resources are gone for it
// (after a subscription was cancelled).
func (m *Server) sendUnavailableTo(ctx context.Context, owner, target jid.JID) {
	u := m.router.User(owner)
	if u == nil || !m.isLocal(target) {
		return
	}
	for _, o := range u.Available() {
		if !m.blockedEither(ctx, o.JID(), target) {
			m.routeToJID(ctx, presenceEl("unavailable", o.JID(), target), target)
		}
	}
}

func (m *Server) deliverPendingSubscriptions(ctx context.Context, s *router.Session) {
	var pend []string
	m.rosters.With(ctx, s.JID().Bare(), func(r *roster.Roster) error {
		for _, st := range r.Pending() {
			pend = append(pend, st)
		}
		return nil
	})
	for _, st := range pend {
		el, err := stanza.Parse(st)
		if err != nil {
			m.log.Warn("dropping unreadable pending subscription", "user", s.JID().Bare().String(), "error", err)
			continue
		}
		sendTo(s, el)
	}
}

// inboundPresence handles presence arriving for a local address (RFC 6121
// §3 and §4, "contact's server" side). from is the sender.
func (m *Server) inboundPresence(ctx context.Context, p *xmlstream.Element, from, to jid.JID) {
	typ := p.Attr("type")
	switch typ {
	case "probe":
		m.answerProbe(ctx, p, from, to)
		return
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		m.inboundSubscription(ctx, p, typ, from.Bare(), to.Bare())
		return
	}
	m.routeToJID(ctx, p, to)
}
