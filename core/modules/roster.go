package modules

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// NSRoster is the roster namespace (RFC 6121 §2).
const NSRoster = "jabber:iq:roster"

// roster is one user's roster in memory.
//
// With a shared roster (host key shared_roster), items is the merged view
// that presence and clients see, while personal and shared keep the two
// sources apart; without one, personal is nil and items is the personal
// roster. See mergeItem for the rules.
type roster struct {
	// host is the version of the owner's host the roster was read with:
	// a cached roster of another version (a reload may have switched the
	// backends) is read again.
	host    *Host
	owner   jid.JID
	version string // what clients see: personal, or personal~shared
	items   map[jid.JID]sdk.RosterItem
	pending map[jid.JID]string // pending inbound subscriptions: contact -> stanza

	personalVersion string
	sharedVersion   string
	personal        map[jid.JID]sdk.RosterItem // nil without a shared roster
	shared          map[jid.JID]sdk.RosterItem
}

func (r *roster) item(c jid.JID) (sdk.RosterItem, bool) {
	it, ok := r.items[c]
	return it, ok
}

// rosters loads rosters from the backends and keeps those of connected
// users in memory, so presence broadcasts never touch a backend. Every
// read-modify-write of a roster runs under that owner's stripe lock.
type rosters struct {
	m     *Server
	seed  maphash.Seed
	locks [64]sync.Mutex

	mu    sync.Mutex
	cache map[jid.JID]*roster
}

func newRosters(m *Server) *rosters {
	return &rosters{m: m, seed: maphash.MakeSeed(), cache: make(map[jid.JID]*roster)}
}

func (rs *rosters) lock(owner jid.JID) *sync.Mutex { return &rs.locks[rs.stripe(owner)] }

// stripe is the index of owner's lock.
func (rs *rosters) stripe(owner jid.JID) int {
	return int(maphash.String(rs.seed, owner.String()) % uint64(len(rs.locks)))
}

// with runs fn on owner's roster under its lock. The roster passed to fn
// may be changed by fn only together with the backend (see setItem).
func (rs *rosters) with(ctx context.Context, owner jid.JID, fn func(r *roster) error) error {
	l := rs.lock(owner)
	l.Lock()
	defer l.Unlock()
	r, err := rs.load(ctx, owner)
	if err != nil {
		return err
	}
	return fn(r)
}

// load returns owner's roster: cached for connected users, read from the
// backend otherwise. Callers hold owner's lock.
func (rs *rosters) load(ctx context.Context, owner jid.JID) (*roster, error) {
	h := rs.m.Host(owner.Domain())
	rs.mu.Lock()
	r := rs.cache[owner]
	rs.mu.Unlock()
	if r != nil && r.host == h {
		return r, nil
	}
	r = &roster{host: h, owner: owner, version: "0", items: map[jid.JID]sdk.RosterItem{}, pending: map[jid.JID]string{}}
	if h == nil || (!h.Roster.On && !h.SharedRoster.On) {
		return r, nil
	}
	if h.Roster.On {
		st, err := h.Roster.Backend.GetRoster(ctx, owner.String())
		if err != nil {
			return nil, err
		}
		r.version = st.Version
		for _, it := range st.Items {
			c, err := jid.Parse(it.JID)
			if err != nil {
				rs.m.log.Warn("skipping roster item with invalid JID", "owner", owner.String(), "jid", it.JID)
				continue
			}
			r.items[c] = it
		}
		for _, p := range st.Pending {
			if c, err := jid.Parse(p.JID); err == nil {
				r.pending[c] = p.Stanza
			}
		}
	}
	if h.SharedRoster.On {
		rs.loadShared(ctx, h, r)
	}
	// Only rosters of users with a session on this node are kept: in a
	// cluster the other nodes' writes invalidate them (ForgetRoster).
	if u := rs.m.router.User(owner); u != nil && u.HasLocal() {
		rs.mu.Lock()
		rs.cache[owner] = r
		rs.mu.Unlock()
	}
	return r, nil
}

// loadShared adds the host's shared roster (read-only, from a directory)
// to r. A shared roster that cannot be read is left out, with a warning:
// the user still gets the personal roster and can log in.
func (rs *rosters) loadShared(ctx context.Context, h *Host, r *roster) {
	r.personalVersion = r.version
	r.personal = r.items
	r.shared = map[jid.JID]sdk.RosterItem{}
	r.items = make(map[jid.JID]sdk.RosterItem, len(r.personal))
	st, err := h.SharedRoster.Backend.GetRoster(ctx, r.owner.String())
	if err != nil {
		rs.m.log.Warn("shared roster not loaded", "owner", r.owner.String(), "error", err)
		st = sdk.RosterState{Version: "unavailable"}
	}
	r.sharedVersion = st.Version
	for _, it := range st.Items {
		c, err := jid.Parse(it.JID)
		if err != nil || c.Bare() != c || c == r.owner {
			rs.m.log.Warn("skipping shared roster item", "owner", r.owner.String(), "jid", it.JID)
			continue
		}
		it.JID = c.String()
		r.shared[c] = it
	}
	for c := range r.personal {
		r.remerge(c)
	}
	for c := range r.shared {
		r.remerge(c)
	}
	r.version = r.combinedVersion()
}

// mergeItem combines a contact's personal item and shared item: a shared
// contact is subscribed both ways (the directory decides, and both sides
// see each other), the user's own name wins, the groups are united.
func mergeItem(p sdk.RosterItem, hasP bool, sh sdk.RosterItem) sdk.RosterItem {
	out := sdk.RosterItem{JID: sh.JID, Name: sh.Name, Subscription: sdk.SubBoth, Groups: slices.Clone(sh.Groups)}
	if hasP {
		if p.Name != "" {
			out.Name = p.Name
		}
		for _, g := range p.Groups {
			if !slices.Contains(out.Groups, g) {
				out.Groups = append(out.Groups, g)
			}
		}
	}
	return out
}

// remerge recomputes the visible item of c from its sources.
func (r *roster) remerge(c jid.JID) {
	if r.personal == nil {
		return
	}
	p, hasP := r.personal[c]
	sh, hasS := r.shared[c]
	switch {
	case hasS:
		r.items[c] = mergeItem(p, hasP, sh)
	case hasP:
		r.items[c] = p
	default:
		delete(r.items, c)
	}
}

// combinedVersion is the version clients see (XEP-0237): it changes when
// either the personal roster or the directory's part changes.
func (r *roster) combinedVersion() string {
	if r.personal == nil {
		return r.personalVersion
	}
	return r.personalVersion + "~" + r.sharedVersion
}

// forget drops a roster from memory once its user has no session left.
func (rs *rosters) forget(owner jid.JID) {
	l := rs.lock(owner)
	l.Lock()
	defer l.Unlock()
	if u := rs.m.router.User(owner); u == nil || !u.HasLocal() {
		rs.mu.Lock()
		delete(rs.cache, owner)
		rs.mu.Unlock()
	}
}

// drop forgets owner's cached roster whatever its sessions: another node
// of a cluster changed it.
func (rs *rosters) drop(owner jid.JID) {
	l := rs.lock(owner)
	l.Lock()
	defer l.Unlock()
	rs.mu.Lock()
	delete(rs.cache, owner)
	rs.mu.Unlock()
}

// written tells the cluster hook, if any, that owner's stored roster
// changed.
func (rs *rosters) written(owner jid.JID) {
	if f := rs.m.rosterWritten; f != nil {
		f(owner)
	}
}

func (rs *rosters) backend(owner jid.JID) (RosterBackend, *stanza.Error) {
	h := rs.m.Host(owner.Domain())
	switch {
	case h != nil && !h.Roster.On && h.SharedRoster.On:
		return nil, stanza.ErrNotAllowed.WithText("the roster of this host comes from a directory and is read-only")
	case h == nil || !h.Roster.On:
		return nil, stanza.ErrServiceUnavailable.WithText("rosters are not enabled on this host")
	case !h.Roster.Writable:
		return nil, stanza.ErrNotAllowed.WithText("the roster backend of this host is read-only")
	}
	return h.Roster.Backend, nil
}

// push sends a roster push (RFC 6121 §2.1.6) to every resource of owner
// that requested the roster.
func (rs *rosters) push(owner jid.JID, item *xmlstream.Element, version string) {
	u := rs.m.router.User(owner)
	if u == nil {
		return
	}
	for _, s := range u.Interested() {
		q := xmlstream.NewElement(NSRoster, "query").SetAttr("ver", version).AppendChild(item.Copy())
		iq := xmlstream.NewElement(xmlstream.NSClient, "iq").SetAttr("type", "set").
			SetAttr("id", "push-"+newID()).SetAttr("to", s.JID().String()).AppendChild(q)
		s.Send(iq)
	}
}

func itemElement(it sdk.RosterItem) *xmlstream.Element {
	el := xmlstream.NewElement(NSRoster, "item").SetAttr("jid", it.JID)
	if it.Name != "" {
		el.SetAttr("name", it.Name)
	}
	sub := it.Subscription
	if sub == "" {
		sub = sdk.SubNone
	}
	el.SetAttr("subscription", sub)
	if it.Ask {
		el.SetAttr("ask", "subscribe")
	}
	if it.Approved {
		el.SetAttr("approved", "true")
	}
	for _, g := range it.Groups {
		el.AppendChild(xmlstream.NewElement(NSRoster, "group").AppendText(g))
	}
	return el
}

func (m *Server) registerRoster() {
	m.handleIQ(scopeAccount, "get", NSRoster, m.rosterGet)
	m.handleIQ(scopeAccount, "set", NSRoster, m.rosterSet)
}

func (m *Server) rosterGet(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if !c.self {
		return nil, stanza.ErrForbidden
	}
	h := c.host
	if !h.Roster.On && !h.SharedRoster.On {
		return nil, stanza.ErrServiceUnavailable
	}
	var out *xmlstream.Element
	err := m.rosters.with(ctx, c.to, func(r *roster) error {
		c.s.SetInterested()
		if ver := c.q.Attr("ver"); ver != "" && ver == r.version {
			return nil // XEP-0237: unchanged, pushes will follow
		}
		out = xmlstream.NewElement(NSRoster, "query").SetAttr("ver", r.version)
		for _, it := range sortedItems(r) {
			out.AppendChild(itemElement(it))
		}
		return nil
	})
	if err != nil {
		return nil, asStanzaError(err)
	}
	return out, nil
}

func asStanzaError(err error) *stanza.Error {
	if se, ok := err.(*stanza.Error); ok {
		return se
	}
	return backendError(err)
}

func (m *Server) rosterSet(ctx context.Context, c *iqCall) (*xmlstream.Element, *stanza.Error) {
	if !c.self {
		return nil, stanza.ErrForbidden
	}
	items := c.q.Elements()
	if len(items) != 1 || items[0].Space != NSRoster || items[0].Local != "item" {
		return nil, stanza.ErrBadRequest.WithText("a roster set carries exactly one item")
	}
	el := items[0]
	contact, err := jid.Parse(el.Attr("jid"))
	if err != nil {
		return nil, stanza.ErrJIDMalformed.WithText("invalid item jid")
	}
	contact = contact.Bare()
	if el.Attr("subscription") == "remove" {
		return nil, errOrNil(m.rosterRemove(ctx, c.s.JID().Bare(), contact))
	}
	var groups []string
	seen := map[string]bool{}
	for _, g := range el.Elements() {
		if g.Space != NSRoster || g.Local != "group" {
			continue
		}
		name := g.Text()
		if name == "" || seen[name] || len(name) > 1023 {
			return nil, stanza.ErrNotAcceptable.WithText("group names must be non-empty, unique and short")
		}
		seen[name] = true
		groups = append(groups, name)
	}
	if len(el.Attr("name")) > 1023 {
		return nil, stanza.ErrNotAcceptable.WithText("item name too long")
	}
	err = m.rosters.with(ctx, c.to, func(r *roster) error {
		it, ok := r.item(contact)
		if !ok {
			it = sdk.RosterItem{JID: contact.String(), Subscription: sdk.SubNone}
		}
		it.Name = el.Attr("name")
		it.Groups = groups
		return m.rosters.setItem(ctx, r, it)
	})
	return nil, errOrNil(err)
}

func errOrNil(err error) *stanza.Error {
	if err == nil {
		return nil
	}
	return asStanzaError(err)
}
