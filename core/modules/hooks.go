package modules

import (
	"context"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Hooks for feature modules kept in their own packages (packages blocking
// and push): an IQ handler on the user's own account, disco features, the
// blocking filter on routing, answers to IQs the server sent, and the
// notifier of messages stored offline.

// Blocker is the blocking command's filter (XEP-0191). Routing asks it
// about every stanza between two users, so it must answer from memory.
type Blocker interface {
	// Blocked reports whether owner (a local bare JID) blocked other.
	Blocked(ctx context.Context, owner, other jid.JID) bool
	// Refusal is the error reply to el, which its sender addressed to a
	// JID the sender blocked.
	Refusal(el *xmlstream.Element) *xmlstream.Element
	// Forget is called when one of owner's sessions ended.
	Forget(owner jid.JID)
}

// OwnIQ answers an IQ request a user addressed to their own account (or to
// nobody): payload is its first child. It returns the result's payload (nil
// for an empty result) or a stanza error.
type OwnIQ func(ctx context.Context, s *router.Session, iq, payload *xmlstream.Element) (*xmlstream.Element, *stanza.Error)

// HandleOwnIQ routes requests of type typ ("get" or "set") with a payload
// in ns, addressed to the sender's own account, to h. Addressed to another
// account they get <service-unavailable/>.
func (m *Server) HandleOwnIQ(typ, ns string, h OwnIQ) {
	m.handleIQ(scopeAccount, typ, ns, func(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
		if !c.self {
			return nil, stanza.ErrServiceUnavailable
		}
		return h(ctx, c.s, c.iq, c.q)
	})
}

// AddServerFeature advertises ns in the disco#info of the hosts for which
// on is true.
func (m *Server) AddServerFeature(ns string, on func(*Host) bool) {
	m.features = append(m.features, serverFeature{ns, on})
}

// AddAccountFeature advertises ns in the disco#info a user gets about
// their own account (XEP-0030 on the bare JID), for the hosts for which on
// is true.
func (m *Server) AddAccountFeature(ns string, on func(*Host) bool) {
	m.accountFeatures = append(m.accountFeatures, serverFeature{ns, on})
}

// ReplyHandler is offered the IQ results and errors a client addressed to
// a served domain or account, which answer requests the server sent in
// their name; it reports whether el answered one of its requests.
type ReplyHandler func(ctx context.Context, s *router.Session, el *xmlstream.Element) bool

// HandleReplies adds h to the handlers offered IQ answers.
func (m *Server) HandleReplies(h ReplyHandler) { m.replies = append(m.replies, h) }

// Notifier hears of the messages stored offline for a user (push
// notifications, XEP-0357).
type Notifier interface {
	Notify(ctx context.Context, to jid.JID, msg *xmlstream.Element)
}

// SetNotifier installs the notifier of offline messages; nil (the default)
// tells nobody.
func (m *Server) SetNotifier(n Notifier) { m.notifier = n }

type serverFeature struct {
	ns string
	on func(*Host) bool
}

// SetBlocker installs the blocking filter; nil (the default) blocks nothing.
func (m *Server) SetBlocker(b Blocker) { m.blocker = b }

// blockedEither reports whether a and b may not exchange stanzas because
// one blocked the other. Either may be a full JID.
func (m *Server) blockedEither(ctx context.Context, a, b jid.JID) bool {
	if m.blocker == nil || a.Bare() == b.Bare() {
		return false
	}
	return (m.isLocal(a) && m.blocker.Blocked(ctx, a.Bare(), b)) ||
		(m.isLocal(b) && b.Local() != "" && m.blocker.Blocked(ctx, b.Bare(), a))
}

// refuseBlocked stops a stanza s sent to another user when either blocked
// the other (XEP-0191 §3.5, §3.6): to a JID the sender blocked it is
// refused with <not-acceptable/>; from a JID the addressee blocked, a
// message or IQ request is answered <service-unavailable/> as if nobody
// were there (§3.3: the same answer an offline account without storage
// gives, so the block is not revealed) and presence is dropped silently.
// It reports whether it stopped el.
func (m *Server) refuseBlocked(ctx context.Context, s *router.Session, el *xmlstream.Element, to jid.JID) bool {
	if m.blocker == nil || to.Local() == "" || to.Bare() == s.JID().Bare() || !m.isLocal(to) {
		return false
	}
	typ := el.Attr("type")
	reply := typ != "error" && !(el.Local == "iq" && typ == "result")
	if m.blocker.Blocked(ctx, s.JID().Bare(), to) {
		if reply {
			s.Send(m.blocker.Refusal(el))
		}
		return true
	}
	if m.blocker.Blocked(ctx, to.Bare(), s.JID()) {
		if (el.Local == "iq" && (typ == "get" || typ == "set")) || (el.Local == "message" && typ != "error") {
			m.bounce(s, el, stanza.ErrServiceUnavailable)
		}
		return true
	}
	return false
}
