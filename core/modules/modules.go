// Package modules is the server's instant messaging logic (RFC 6121) and
// its feature modules: roster, presence, messages, offline storage,
// service discovery, vCards, private storage, registration, ping, time,
// version, the message archive (mam.go) and carbons. Each feature is one
// file; backends are reached through the small interfaces declared here.
package modules

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/auth"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/lastactivity"
	"github.com/koi-im/koi/core/roster"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// RosterBackend stores rosters (package roster keeps them in memory).
type RosterBackend = roster.Backend

// VCardBackend stores vCards.
type VCardBackend interface {
	sdk.VCard
	sdk.VCardWriter
}

// PrivateBackend stores private XML.
type PrivateBackend interface {
	sdk.Private
	sdk.PrivateWriter
}

// PubSubBackend stores publish-subscribe nodes and PEP (package pubsub).
type PubSubBackend interface {
	sdk.PubSub
	sdk.PubSubWriter
}

// BlocklistBackend stores blocklists; the blocking command that uses them
// is package blocking.
type BlocklistBackend interface {
	sdk.Blocklist
	sdk.BlocklistWriter
}

// Feature is one backend-served feature of a host: nil Backend means off.
type Feature[T any] struct {
	Backend  T
	On       bool
	Writable bool
}

// Host is one virtual host with its backends and settings.
type Host struct {
	Name           string
	Auth           *auth.Chain
	Roster         Feature[RosterBackend]
	SharedRoster   Feature[sdk.Roster] // read-only contacts (directory groups) merged into every roster; see package roster
	Offline        Feature[sdk.Offline]
	VCard          Feature[VCardBackend]
	Private        Feature[PrivateBackend]
	Archive        Feature[*Archive]
	Blocklist      Feature[BlocklistBackend]
	PubSub         Feature[PubSubBackend]    // PEP nodes of the host's accounts (package pubsub)
	Tokens         Feature[sdk.TokensWriter] // FAST tokens (XEP-0484): revoked on password change and removal
	Registration   bool
	PasswordChange bool
	OfflineLimit   int
	Admins         []string // bare JIDs that run the admin commands (XEP-0133)
}

// Server handles the stanzas of bound sessions. It implements c2s.Handler.
type Server struct {
	log    hclog.Logger
	router *router.Router
	// hosts is replaced whole by SetHosts (a configuration reload): an
	// operation reads its host once and works with that one throughout.
	hosts   atomic.Pointer[map[string]*Host]
	hostsMu sync.Mutex // serialises SetHosts
	onHosts []func(old, new *Host)
	rosters *roster.Rosters
	archive *archiveState
	iq      map[iqKey]iqHandler
	// Set by modules outside the package (hooks.go).
	features        []serverFeature
	accountFeatures []serverFeature
	serverInfo      []func(*Host) *xmlstream.Element // hooks.go
	blocker         Blocker
	replies         []ReplyHandler
	notifier        Notifier
	retractions     Retractions
	serverNodes     ServerNodes
	serverMsgs      map[string]ServerMessage // hooks.go
	observers       []PresenceObserver
	shapers         []PresenceShaper
	accountDisco    AccountDisco
	privateNS       map[string]PrivateStore
	version         string
	last            *lastactivity.Tracker
	comps           components
	rosterWritten   func(owner jid.JID) // cluster.go
}

// New builds the module server for hosts.
func New(log hclog.Logger, r *router.Router, hosts []*Host, version string) *Server {
	m := &Server{
		log: log, router: r,
		iq: make(map[iqKey]iqHandler), serverMsgs: map[string]ServerMessage{}, version: version, last: lastactivity.New(nil),
	}
	byName := make(map[string]*Host, len(hosts))
	for _, h := range hosts {
		byName[h.Name] = h
	}
	m.hosts.Store(&byName)
	m.rosters = newRosters(m)
	m.archive = newArchiveState()
	m.registerRoster()
	m.registerDisco()
	m.registerMisc()
	m.registerVCard()
	m.registerPrivate()
	m.registerRegister()
	m.registerMAM()
	m.registerCarbons()
	return m
}

// Host returns the served host called name, or nil.
func (m *Server) Host(name string) *Host { return (*m.hosts.Load())[name] }

// Hosts returns the served hosts, in no particular order.
func (m *Server) Hosts() []*Host {
	hs := *m.hosts.Load()
	out := make([]*Host, 0, len(hs))
	for _, h := range hs {
		out = append(out, h)
	}
	return out
}

// SetHosts replaces the served hosts (a configuration reload switching a
// host's backends or settings): the next operation on a host uses the new
// one, sessions stay. What is kept in memory from a backend that a host no
// longer uses is read again from the new one when next needed: rosters,
// archive preferences, and whatever the OnHostChange hooks drop.
func (m *Server) SetHosts(hosts []*Host) {
	m.hostsMu.Lock()
	defer m.hostsMu.Unlock()
	old := *m.hosts.Load()
	byName := make(map[string]*Host, len(hosts))
	for _, h := range hosts {
		byName[h.Name] = h
	}
	m.hosts.Store(&byName)
	m.archive.forgetAllPrefs()
	for _, h := range hosts {
		if o := old[h.Name]; o != nil && o != h {
			for _, f := range m.onHosts {
				f(o, h)
			}
		}
	}
}

// OnHostChange adds f to what SetHosts calls for each host replaced by a
// new version, after the new one is served: a module that keeps data of a
// backend in memory drops what the new version reads elsewhere.
func (m *Server) OnHostChange(f func(old, new *Host)) {
	m.onHosts = append(m.onHosts, f)
}

// Stanza implements c2s.Handler.
func (m *Server) Stanza(ctx context.Context, s *router.Session, el *xmlstream.Element) {
	var to jid.JID
	if t := el.Attr("to"); t != "" {
		j, err := jid.Parse(t)
		if err != nil {
			if el.Attr("type") != "error" {
				el.RemoveAttr("to")
				s.Send(stanza.ErrorReply(el, stanza.ErrJIDMalformed.WithText("invalid address in to")))
			}
			return
		}
		to = j
		el.SetAttr("to", j.Reuse(t))
	}
	if !to.IsZero() && m.toComponent(ctx, s, el, to) {
		return
	}
	if m.refuseBlocked(ctx, s, el, to) {
		return
	}
	switch el.Local {
	case "message":
		m.outboundMessage(ctx, s, el, to)
	case "presence":
		m.outboundPresence(ctx, s, el, to)
	case "iq":
		m.outboundIQ(ctx, s, el, to)
	}
}

// Closed implements c2s.Handler: an ended session goes unavailable.
func (m *Server) Closed(ctx context.Context, s *router.Session) {
	if s.State().Available {
		un := xmlstream.NewElement(xmlstream.NSClient, "presence").SetAttr("type", "unavailable")
		un.SetAttr("from", s.JID().String())
		m.broadcastPresence(ctx, s, un)
	} else {
		m.leaveComponents(ctx, s)
	}
	m.rosters.Forget(s.JID().Bare())
	m.wentOffline(s.JID().Bare())
	if m.blocker != nil {
		m.blocker.Forget(s.JID().Bare())
	}
}

// isLocal reports whether j belongs to a served host.
func (m *Server) isLocal(j jid.JID) bool { return m.Host(j.Domain()) != nil }

// userExists asks the host's auth backends whether bare names an account.
// Connected users exist without asking.
func (m *Server) userExists(ctx context.Context, bare jid.JID) (bool, error) {
	h := m.Host(bare.Domain())
	if h == nil || bare.Local() == "" {
		return false, nil
	}
	if m.router.User(bare) != nil {
		return true, nil
	}
	if h.Auth == nil {
		return false, nil
	}
	return h.Auth.UserExists(ctx, bare.Local())
}

// BackendError maps a backend failure to the stanza error a client sees,
// for the feature modules kept in packages of their own.
func BackendError(err error) *stanza.Error { return backendError(err) }

// backendError maps a backend failure to the stanza error a client sees.
func backendError(err error) *stanza.Error {
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		return stanza.ErrItemNotFound
	case errors.Is(err, sdk.ErrExists):
		return stanza.ErrConflict
	case errors.Is(err, sdk.ErrReadOnly):
		return stanza.ErrNotAllowed.WithText("this server's backend for the feature is read-only")
	case errors.Is(err, sdk.ErrInvalid):
		return stanza.ErrBadRequest
	default:
		return stanza.ErrInternal.WithText("the storage backend is unavailable; try again later")
	}
}

// sendTo delivers el to one session, with to set to its full JID.
func sendTo(s *router.Session, el *xmlstream.Element) bool {
	c := el.Copy()
	c.SetAttr("to", s.JID().String())
	return s.Send(c)
}

// bounce sends an error reply to the sender, unless el is itself an error.
func (m *Server) bounce(s *router.Session, el *xmlstream.Element, e *stanza.Error) {
	if el.Attr("type") == "error" {
		return
	}
	s.Send(stanza.ErrorReply(el, e))
}

// bounceTo sends an error reply for el to whoever sent it, local or not.
func (m *Server) bounceTo(ctx context.Context, el *xmlstream.Element, e *stanza.Error) {
	if el.Attr("type") == "error" {
		return
	}
	from, err := jid.Parse(el.Attr("from"))
	if err != nil {
		return
	}
	m.routeToJID(ctx, stanza.ErrorReply(el, e), from)
}

// routeToJID delivers a server-generated stanza to a local address: a full
// JID's session, or a bare JID's available resources.
func (m *Server) routeToJID(ctx context.Context, el *xmlstream.Element, to jid.JID) {
	if c := m.component(to.Domain()); c != nil {
		c.Deliver(ctx, el)
		return
	}
	if to.Resource() != "" {
		if s := m.router.Session(to); s != nil {
			s.Send(el)
		}
		return
	}
	if u := m.router.User(to); u != nil {
		for _, s := range u.Available() {
			sendTo(s, el)
		}
	}
}
