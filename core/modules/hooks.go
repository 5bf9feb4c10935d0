package modules

import (
	"context"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/roster"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
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
// nobody), or to their server: payload is its first child. It returns the result's payload (nil
// for an empty result) or a stanza error.
type OwnIQ func(ctx context.Context, s *router.Session, iq, payload *xmlstream.Element) (*xmlstream.Element, *stanza.Error)

// AccountIQ answers an IQ request addressed to an account's bare JID,
// the sender's own or another user's (to), on the account's behalf:
// payload is its first child. It returns the result's payload (nil for an
// empty result) or a stanza error.
type AccountIQ func(ctx context.Context, s *router.Session, to jid.JID, iq, payload *xmlstream.Element) (*xmlstream.Element, *stanza.Error)

// HandleAccountIQ routes requests of type typ with a payload in ns,
// addressed to any existing local account, to h (PEP answers contacts on
// the owner's behalf, XEP-0163). Requests to an account that does not
// exist get <service-unavailable/> before h is asked.
func (m *Server) HandleAccountIQ(typ, ns string, h AccountIQ) {
	m.handleIQ(scopeAccount, typ, ns, func(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
		return h(ctx, c.s, c.to, c.iq, c.q)
	})
}

// WrapAccountIQ puts wrap around the handler of account requests of type
// typ in ns that is already registered, which wrap gets as next (the
// avatar conversion of XEP-0398 around vcard-temp). It reports whether
// there was such a handler.
func (m *Server) WrapAccountIQ(typ, ns string, wrap func(next AccountIQ) AccountIQ) bool {
	inner := m.iq[iqKey{scopeAccount, typ, ns}]
	if inner == nil {
		return false
	}
	m.HandleAccountIQ(typ, ns, wrap(func(ctx context.Context, s *router.Session, to jid.JID, iq, payload *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
		return inner(ctx, &iqCall{s: s, iq: iq, q: payload, to: to, host: m.Host(to.Domain()), self: to == s.JID().Bare()})
	}))
	return true
}

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

// HandleServerIQ routes requests of type typ with a payload in ns,
// addressed to a served domain, to h (External Service Discovery).
func (m *Server) HandleServerIQ(typ, ns string, h OwnIQ) {
	m.handleIQ(scopeServer, typ, ns, func(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
		return h(ctx, c.s, c.iq, c.q)
	})
}

// AddServerFeature advertises ns in the disco#info of the hosts for which
// on is true.
func (m *Server) AddServerFeature(ns string, on func(*Host) bool) {
	m.features = append(m.features, serverFeature{ns, on})
}

// AddServerInfo adds the form f makes (nil: none) to the disco#info of
// the hosts (XEP-0128: contact addresses, XEP-0157).
func (m *Server) AddServerInfo(f func(*Host) *xmlstream.Element) {
	m.serverInfo = append(m.serverInfo, f)
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

// Retractions hears of retractions of one-to-one messages (XEP-0424)
// once they are archived, as copies (a slice of its own, which it may
// keep), to put tombstones in the places of the messages they name
// (target).
type Retractions interface {
	Retracted(copies []sdk.ArchivedMessage, target, retraction string)
}

// SetRetractions installs r; nil (the default) leaves retracted messages
// in the archives.
func (m *Server) SetRetractions(r Retractions) { m.retractions = r }

// ServerNodes answers disco#info and disco#items about the nodes of a
// served domain (the commands of XEP-0050) for from.
type ServerNodes interface {
	NodeInfo(ctx context.Context, host string, from jid.JID, node string) (*xmlstream.Element, *stanza.Error)
	NodeItems(ctx context.Context, host string, from jid.JID, node string) (*xmlstream.Element, *stanza.Error)
}

// SetServerNodes installs n; without it a domain has no nodes.
func (m *Server) SetServerNodes(n ServerNodes) { m.serverNodes = n }

// ServerMessage takes a message a user sent to a served domain's
// resource (DOMAIN/announce/online); an error is sent back to the user.
type ServerMessage func(ctx context.Context, s *router.Session, el *xmlstream.Element, to jid.JID) *stanza.Error

// HandleServerMessage routes the messages to DOMAIN/resource to h.
func (m *Server) HandleServerMessage(resource string, h ServerMessage) { m.serverMsgs[resource] = h }

// PresenceObserver hears a session's broadcast presence once it has been
// sent: available (initial or changed) and unavailable, including the
// unavailable presence of a session that ends. It runs on the sender's
// goroutine and must not wait on the network.
type PresenceObserver func(ctx context.Context, s *router.Session, p *xmlstream.Element)

// ObservePresence adds o to the observers of broadcast presence.
func (m *Server) ObservePresence(o PresenceObserver) { m.observers = append(m.observers, o) }

// PresenceShaper may change a session's available presence, broadcast or
// directed, before it is stored and sent (the avatar hash of XEP-0153).
type PresenceShaper func(ctx context.Context, s *router.Session, p *xmlstream.Element)

// ShapePresence adds f to the shapers of available presence, broadcast
// and directed (a room join carries the avatar hash, XEP-0398 §4).
func (m *Server) ShapePresence(f PresenceShaper) { m.shapers = append(m.shapers, f) }

func (m *Server) shape(ctx context.Context, s *router.Session, p *xmlstream.Element) {
	for _, f := range m.shapers {
		f(ctx, s, p)
	}
}

// Rebroadcast sends a session's current available presence again, shaped
// anew, to whoever gets its broadcasts: after something a shaper adds
// changed (the avatar hash of XEP-0153). An unavailable session is left
// alone.
func (m *Server) Rebroadcast(ctx context.Context, s *router.Session) {
	st := s.State()
	if !st.Available || st.Presence == nil {
		return
	}
	p := st.Presence.Copy()
	m.shape(ctx, s, p)
	s.SetPresence(p.Copy(), st.Priority)
	m.broadcastPresence(ctx, s, p)
}

// AccountDisco extends service discovery on accounts (XEP-0030 on a bare
// JID, asked by from, which may be the owner).
type AccountDisco interface {
	// ExtendInfo adds identities and features to q, the disco#info
	// result about owner's account itself.
	ExtendInfo(ctx context.Context, owner, from jid.JID, q *xmlstream.Element)
	// NodeInfo answers disco#info about a node of owner's account.
	NodeInfo(ctx context.Context, owner, from jid.JID, node string) (*xmlstream.Element, *stanza.Error)
	// Items answers disco#items about owner's account (node "") or one
	// of its nodes.
	Items(ctx context.Context, owner, from jid.JID, node string) (*xmlstream.Element, *stanza.Error)
}

// SetAccountDisco installs the extension of account disco; nil (the
// default) answers with the account's own features only.
func (m *Server) SetAccountDisco(d AccountDisco) { m.accountDisco = d }

// PrivateStore serves one namespace of private XML storage (XEP-0049) in
// place of the host's private backend: XEP-0048 bookmarks kept in PEP
// (XEP-0402 §5.1). Get returns the stored element (an empty one of the
// namespace when there is none); Set replaces it.
type PrivateStore interface {
	GetPrivate(ctx context.Context, owner jid.JID, local, ns string) (*xmlstream.Element, *stanza.Error)
	SetPrivate(ctx context.Context, owner jid.JID, el *xmlstream.Element) *stanza.Error
}

// HandlePrivate serves private storage in namespace ns with p.
func (m *Server) HandlePrivate(ns string, p PrivateStore) {
	if m.privateNS == nil {
		m.privateNS = map[string]PrivateStore{}
	}
	m.privateNS[ns] = p
}

// RosterItem returns owner's roster item for contact, if there is one.
func (m *Server) RosterItem(ctx context.Context, owner, contact jid.JID) (sdk.RosterItem, bool, error) {
	var it sdk.RosterItem
	var ok bool
	err := m.rosters.With(ctx, owner.Bare(), func(r *roster.Roster) error {
		it, ok = r.Item(contact.Bare())
		return nil
	})
	return it, ok, err
}

// Blocked reports whether a and b may not exchange stanzas because one
// blocked the other (XEP-0191).
func (m *Server) Blocked(ctx context.Context, a, b jid.JID) bool { return m.blockedEither(ctx, a, b) }

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
