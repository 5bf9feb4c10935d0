// Package router keeps the live part of the server's world: which users are
// connected, with which resources, and each session's presence. It never
// blocks on a session: delivering to a session only enqueues.
package router

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/xmlstream"
)

// Conn is the connection behind a session, as the router needs it.
type Conn interface {
	// Send enqueues a stanza for the client and reports whether it was
	// accepted (false when the connection is closing or its queue is full).
	Send(el *xmlstream.Element) bool
	// Close ends the stream with a stream error condition ("" for a plain
	// close).
	Close(condition, text string)
}

// Router maps addresses to sessions.
type Router struct {
	mu    sync.RWMutex
	users map[jid.JID]*User
	obs   Observer
}

// Observer hears of changes to the sessions bound on this node (not to
// remote ones): a cluster publishes them for the other nodes. It is called
// after the change, outside the router's locks, on the changer's goroutine.
type Observer interface {
	// SessionChanged reports a bind, a presence, roster-interest or
	// carbons change.
	SessionChanged(s *Session)
	// SessionGone reports an unbind.
	SessionGone(s *Session)
}

// SetObserver installs o; call it before the first Bind.
func (r *Router) SetObserver(o Observer) { r.obs = o }

// New returns an empty router.
func New() *Router { return &Router{users: make(map[jid.JID]*User)} }

// User is a connected account: the sessions of one bare JID.
type User struct {
	Bare jid.JID
	obs  Observer

	mu       sync.Mutex
	sessions sessionSet // by resource
	views    *views     // nil when stale (views.go)

	// flush is closed when the running offline delivery ends; nil when
	// none runs (flush.go).
	flush atomic.Pointer[chan struct{}]
}

// Session is one bound resource.
type Session struct {
	user *User
	jid  jid.JID
	addr string // jid.String(), built once: every stanza the session sends is stamped with it
	// conn is swapped when stream management (XEP-0198) moves the session
	// to a new connection or parks it while detached: the session, its
	// address and presence stay; only where stanzas go changes.
	conn atomic.Pointer[connBox]

	// Presence state, guarded by user.mu.
	available  bool
	priority   int
	presence   *xmlstream.Element // last available presence broadcast, nil if none
	interested bool               // requested the roster: gets roster pushes
	carbons    bool               // enabled Message Carbons (XEP-0280)
	directed   map[jid.JID]struct{}

	// remote marks a session bound on another node of a cluster: its Conn
	// forwards there, and it is not counted among this node's sessions.
	remote bool
}

// Remote reports whether the session lives on another node of a cluster.
func (s *Session) Remote() bool { return s.remote }

// JID is the session's full JID.
func (s *Session) JID() jid.JID { return s.jid }

// Address is JID().String(), without building it.
func (s *Session) Address() string { return s.addr }

// User is the account the session belongs to.
func (s *Session) User() *User { return s.user }

// connBox holds a Conn for atomic.Pointer (interfaces cannot be stored
// there directly).
type connBox struct{ c Conn }

// Send enqueues el to the client.
func (s *Session) Send(el *xmlstream.Element) bool { return s.conn.Load().c.Send(el) }

// Close ends the session's stream with a stream error.
func (s *Session) Close(condition, text string) { s.conn.Load().c.Close(condition, text) }

// Conn returns the connection the session currently sends to.
func (s *Session) Conn() Conn { return s.conn.Load().c }

// SetConn points the session at c: a resumed stream (XEP-0198) takes over
// the session without unbinding it, so no presence changes hands.
func (s *Session) SetConn(c Conn) { s.conn.Store(&connBox{c}) }

// Bind registers a session for full. When the resource is already bound,
// the newest session wins: the old one is returned so the caller can close
// it with <conflict/>.
func (r *Router) Bind(full jid.JID, c Conn) (s *Session, replaced *Session) {
	s, replaced = r.bind(full, c, false)
	if r.obs != nil {
		r.obs.SessionChanged(s)
	}
	return s, replaced
}

// BindRemote registers a session that another node of a cluster serves;
// c forwards to it. Like Bind, the newest session of a resource wins.
func (r *Router) BindRemote(full jid.JID, c Conn) (s *Session, replaced *Session) {
	return r.bind(full, c, true)
}

func (r *Router) bind(full jid.JID, c Conn, remote bool) (s *Session, replaced *Session) {
	bare := full.Bare()
	r.mu.Lock()
	u := r.users[bare]
	if u == nil {
		u = &User{Bare: bare, obs: r.obs}
		r.users[bare] = u
	}
	s = &Session{user: u, jid: full, addr: full.String(), remote: remote}
	s.SetConn(c)
	u.mu.Lock()
	// The replaced session keeps its user for presence bookkeeping; Unbind
	// of it finds s in the map and leaves s alone.
	replaced = u.sessions.put(s)
	u.views = nil
	u.mu.Unlock()
	r.mu.Unlock()
	return s, replaced
}

// Unbind removes s. It reports whether s was still bound (false when a
// newer session replaced it, or it was already removed).
func (r *Router) Unbind(s *Session) bool {
	ok := r.unbind(s)
	if ok && r.obs != nil && !s.remote {
		r.obs.SessionGone(s)
	}
	return ok
}

func (r *Router) unbind(s *Session) bool {
	bare := s.jid.Bare()
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.users[bare]
	if u == nil {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.sessions.get(s.jid.Resource()) != s {
		return false
	}
	u.sessions.del(s.jid.Resource())
	u.views = nil
	if u.sessions.len() == 0 {
		delete(r.users, bare)
	}
	return true
}

// User returns the connected account for bare, or nil.
func (r *Router) User(bare jid.JID) *User {
	r.mu.RLock()
	u := r.users[bare]
	r.mu.RUnlock()
	return u
}

// Session returns the session bound to full, or nil.
func (r *Router) Session(full jid.JID) *Session {
	u := r.User(full.Bare())
	if u == nil {
		return nil
	}
	u.mu.Lock()
	s := u.sessions.get(full.Resource())
	u.mu.Unlock()
	return s
}

// Sessions returns every session of bare, sorted by resource.
func (r *Router) Sessions(bare jid.JID) []*Session {
	u := r.User(bare)
	if u == nil {
		return nil
	}
	return u.Sessions()
}

// All returns every session bound on this node (not the remote sessions
// of a cluster). It is for shutdown and administration, not for hot paths.
func (r *Router) All() []*Session {
	r.mu.RLock()
	users := make([]*User, 0, len(r.users))
	for _, u := range r.users {
		users = append(users, u)
	}
	r.mu.RUnlock()
	var out []*Session
	for _, u := range users {
		for _, s := range u.Sessions() {
			if !s.remote {
				out = append(out, s)
			}
		}
	}
	return out
}

// Count returns the number of users with a session on this node and of
// those sessions (the remote sessions of a cluster are not counted).
func (r *Router) Count() (users, sessions int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, u := range r.users {
		n := 0
		u.mu.Lock()
		for s := range u.sessions.all() {
			if !s.remote {
				n++
			}
		}
		u.mu.Unlock()
		if n > 0 {
			users++
			sessions += n
		}
	}
	return users, sessions
}

// HasLocal reports whether one of the user's sessions is bound on this
// node.
func (u *User) HasLocal() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for s := range u.sessions.all() {
		if !s.remote {
			return true
		}
	}
	return false
}

// Sessions returns the user's sessions sorted by resource.
func (u *User) Sessions() []*Session {
	u.mu.Lock()
	out := make([]*Session, 0, u.sessions.len())
	for s := range u.sessions.all() {
		out = append(out, s)
	}
	u.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].jid.Resource() < out[j].jid.Resource() })
	return out
}

// PresenceState is a snapshot of a session's presence.
type PresenceState struct {
	Available  bool
	Priority   int
	Presence   *xmlstream.Element // shared: do not modify, Copy first
	Interested bool
	Carbons    bool
}

// State returns a snapshot of the session's presence state.
func (s *Session) State() PresenceState {
	u := s.user
	u.mu.Lock()
	defer u.mu.Unlock()
	return PresenceState{Available: s.available, Priority: s.priority, Presence: s.presence, Interested: s.interested, Carbons: s.carbons}
}

// SetInterested marks the session as having requested the roster.
func (s *Session) SetInterested() {
	s.user.mu.Lock()
	was := s.interested
	s.interested = true
	s.user.mu.Unlock()
	s.changed(!was)
}

// SetCarbons records whether the session wants carbon copies (XEP-0280).
// It lives with the session, not in the carbons module, so that a cluster
// publishes it with the rest of the state: the node that routes a message
// copies it to every resource that asked, wherever it is bound.
func (s *Session) SetCarbons(on bool) {
	s.user.mu.Lock()
	was := s.carbons
	s.carbons = on
	if was != on {
		s.user.views = nil
	}
	s.user.mu.Unlock()
	s.changed(was != on)
}

// Carbons reports whether the session enabled carbons.
func (s *Session) Carbons() bool {
	s.user.mu.Lock()
	defer s.user.mu.Unlock()
	return s.carbons
}

// changed tells the observer of a local session's change.
func (s *Session) changed(did bool) {
	if did && !s.remote {
		if o := s.user.obs; o != nil {
			o.SessionChanged(s)
		}
	}
}

// SetPresence records an available presence (p non-nil) or unavailability
// (p nil). It returns whether the session was available before.
func (s *Session) SetPresence(p *xmlstream.Element, priority int) (wasAvailable bool) {
	s.user.mu.Lock()
	wasAvailable = s.available
	s.available = p != nil
	s.presence = p
	s.priority = priority
	s.user.views = nil
	s.user.mu.Unlock()
	s.changed(true)
	return wasAvailable
}

// SetRemoteState sets a remote session's presence state as its node
// published it.
func (s *Session) SetRemoteState(st PresenceState) {
	s.user.mu.Lock()
	s.available = st.Available
	s.presence = st.Presence
	s.priority = st.Priority
	s.interested = st.Interested
	s.carbons = st.Carbons
	s.user.views = nil
	s.user.mu.Unlock()
}

// AddDirected remembers that the session sent directed presence to to, so
// it gets our unavailable presence later.
func (s *Session) AddDirected(to jid.JID) {
	s.user.mu.Lock()
	if s.directed == nil {
		s.directed = make(map[jid.JID]struct{})
	}
	s.directed[to] = struct{}{}
	s.user.mu.Unlock()
}

// RemoveDirected forgets a directed presence target.
func (s *Session) RemoveDirected(to jid.JID) {
	s.user.mu.Lock()
	delete(s.directed, to)
	s.user.mu.Unlock()
}

// TakeDirected returns and clears the directed presence targets.
func (s *Session) TakeDirected() []jid.JID {
	s.user.mu.Lock()
	defer s.user.mu.Unlock()
	out := make([]jid.JID, 0, len(s.directed))
	for j := range s.directed {
		out = append(out, j)
	}
	s.directed = nil
	return out
}

// Interested returns the sessions that requested the roster.
func (u *User) Interested() []*Session {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []*Session
	for s := range u.sessions.all() {
		if s.interested {
			out = append(out, s)
		}
	}
	return out
}
