// Package roster keeps users' rosters (RFC 6121 §2) in memory and writes
// their changes: the per-user cache with its stripe locks, the merge of a
// directory's shared roster into the personal one, the two-party
// transaction of a subscription (tx.go) and the roster pushes that follow
// a write. The IQ handlers and the subscription state machine that drive
// it live in core/modules.
package roster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"hash/maphash"
	"slices"
	"sort"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// NS is the roster namespace (RFC 6121 §2).
const NS = "jabber:iq:roster"

// Backend stores rosters.
type Backend interface {
	sdk.Roster
	sdk.RosterWriter
}

// Source is what a host serves rosters from.
type Source struct {
	// Host identifies the version of the host the source belongs to: a
	// cached roster read with another version (a reload may have switched
	// the backends) is read again. It must be comparable.
	Host     any
	Backend  Backend
	On       bool
	Writable bool
	// Shared is the host's read-only shared roster (a directory), merged
	// into every roster when SharedOn.
	Shared   sdk.Roster
	SharedOn bool
}

// Users finds a user's sessions: whether the roster is worth caching, and
// where pushes go. *router.Router is one.
type Users interface {
	User(bare jid.JID) *router.User
}

// Config is what Rosters needs from the server around it.
type Config struct {
	Log hclog.Logger
	// Source returns the roster source of a served domain; false for a
	// domain that is not served.
	Source func(domain string) (Source, bool)
	Users  Users
	// Written, if set, is told that owner's stored roster changed (the
	// cluster drops the copies of other nodes).
	Written func(owner jid.JID)
}

// Roster is one user's roster in memory.
//
// With a shared roster, items is the merged view that presence and
// clients see, while personal and shared keep the two sources apart;
// without one, personal is nil and items is the personal roster. See
// mergeItem for the rules.
type Roster struct {
	host    any
	owner   jid.JID
	version string // what clients see: personal, or personal~shared
	items   map[jid.JID]sdk.RosterItem
	pending map[jid.JID]string // pending inbound subscriptions: contact -> stanza

	personalVersion string
	sharedVersion   string
	personal        map[jid.JID]sdk.RosterItem // nil without a shared roster
	shared          map[jid.JID]sdk.RosterItem
}

// Owner is the bare JID whose roster r is.
func (r *Roster) Owner() jid.JID { return r.owner }

// Version is the roster version clients see (XEP-0237).
func (r *Roster) Version() string { return r.version }

// Item is the visible item for contact c.
func (r *Roster) Item(c jid.JID) (sdk.RosterItem, bool) {
	it, ok := r.items[c]
	return it, ok
}

// Items is the visible roster, by contact. It belongs to r: callers hold
// the owner's lock while they read it and never change it.
func (r *Roster) Items() map[jid.JID]sdk.RosterItem { return r.items }

// Pending is the pending inbound subscriptions, contact to stanza, under
// the same rules as Items.
func (r *Roster) Pending() map[jid.JID]string { return r.pending }

// Shared reports whether c comes from the directory's shared roster.
func (r *Roster) Shared(c jid.JID) bool {
	_, ok := r.shared[c]
	return ok
}

// Sorted is the visible items ordered by JID.
func (r *Roster) Sorted() []sdk.RosterItem {
	out := make([]sdk.RosterItem, 0, len(r.items))
	for _, it := range r.items {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].JID < out[j].JID })
	return out
}

// Rosters loads rosters from the backends and keeps those of connected
// users in memory, so presence broadcasts never touch a backend. Every
// read-modify-write of a roster runs under that owner's stripe lock.
type Rosters struct {
	cfg   Config
	seed  maphash.Seed
	locks [64]sync.Mutex

	mu    sync.Mutex
	cache map[jid.JID]*Roster
}

// New returns an empty roster cache.
func New(cfg Config) *Rosters {
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	return &Rosters{cfg: cfg, seed: maphash.MakeSeed(), cache: make(map[jid.JID]*Roster)}
}

func (rs *Rosters) lock(owner jid.JID) *sync.Mutex { return &rs.locks[rs.stripe(owner)] }

// stripe is the index of owner's lock.
func (rs *Rosters) stripe(owner jid.JID) int {
	return int(maphash.String(rs.seed, owner.String()) % uint64(len(rs.locks)))
}

// With runs fn on owner's roster under its lock. The roster passed to fn
// may be changed by fn only through a transaction (Begin, SetItem).
func (rs *Rosters) With(ctx context.Context, owner jid.JID, fn func(r *Roster) error) error {
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
func (rs *Rosters) load(ctx context.Context, owner jid.JID) (*Roster, error) {
	src, served := rs.cfg.Source(owner.Domain())
	rs.mu.Lock()
	r := rs.cache[owner]
	rs.mu.Unlock()
	if r != nil && r.host == src.Host {
		return r, nil
	}
	r = &Roster{host: src.Host, owner: owner, version: "0", items: map[jid.JID]sdk.RosterItem{}, pending: map[jid.JID]string{}}
	if !served || (!src.On && !src.SharedOn) {
		return r, nil
	}
	if src.On {
		st, err := src.Backend.GetRoster(ctx, owner.String())
		if err != nil {
			return nil, err
		}
		r.version = st.Version
		for _, it := range st.Items {
			c, err := jid.Parse(it.JID)
			if err != nil {
				rs.cfg.Log.Warn("skipping roster item with invalid JID", "owner", owner.String(), "jid", it.JID)
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
	if src.SharedOn {
		rs.loadShared(ctx, src.Shared, r)
	}
	// Only rosters of users with a session on this node are kept: in a
	// cluster the other nodes' writes invalidate them (Drop).
	if u := rs.cfg.Users.User(owner); u != nil && u.HasLocal() {
		rs.mu.Lock()
		rs.cache[owner] = r
		rs.mu.Unlock()
	}
	return r, nil
}

// loadShared adds the host's shared roster (read-only, from a directory)
// to r. A shared roster that cannot be read is left out, with a warning:
// the user still gets the personal roster and can log in.
func (rs *Rosters) loadShared(ctx context.Context, shared sdk.Roster, r *Roster) {
	r.personalVersion = r.version
	r.personal = r.items
	r.shared = map[jid.JID]sdk.RosterItem{}
	r.items = make(map[jid.JID]sdk.RosterItem, len(r.personal))
	st, err := shared.GetRoster(ctx, r.owner.String())
	if err != nil {
		rs.cfg.Log.Warn("shared roster not loaded", "owner", r.owner.String(), "error", err)
		st = sdk.RosterState{Version: "unavailable"}
	}
	r.sharedVersion = st.Version
	for _, it := range st.Items {
		c, err := jid.Parse(it.JID)
		if err != nil || c.Bare() != c || c == r.owner {
			rs.cfg.Log.Warn("skipping shared roster item", "owner", r.owner.String(), "jid", it.JID)
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
func (r *Roster) remerge(c jid.JID) {
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
func (r *Roster) combinedVersion() string {
	if r.personal == nil {
		return r.personalVersion
	}
	return r.personalVersion + "~" + r.sharedVersion
}

// Forget drops a roster from memory once its user has no session left.
func (rs *Rosters) Forget(owner jid.JID) {
	l := rs.lock(owner)
	l.Lock()
	defer l.Unlock()
	if u := rs.cfg.Users.User(owner); u == nil || !u.HasLocal() {
		rs.mu.Lock()
		delete(rs.cache, owner)
		rs.mu.Unlock()
	}
}

// Drop forgets owner's cached roster whatever its sessions: another node
// of a cluster changed it.
func (rs *Rosters) Drop(owner jid.JID) {
	l := rs.lock(owner)
	l.Lock()
	defer l.Unlock()
	rs.mu.Lock()
	delete(rs.cache, owner)
	rs.mu.Unlock()
}

// written tells the cluster hook, if any, that owner's stored roster
// changed.
func (rs *Rosters) written(owner jid.JID) {
	if f := rs.cfg.Written; f != nil {
		f(owner)
	}
}

func (rs *Rosters) backend(owner jid.JID) (Backend, *stanza.Error) {
	src, served := rs.cfg.Source(owner.Domain())
	switch {
	case served && !src.On && src.SharedOn:
		return nil, stanza.ErrNotAllowed.WithText("the roster of this host comes from a directory and is read-only")
	case !served || !src.On:
		return nil, stanza.ErrServiceUnavailable.WithText("rosters are not enabled on this host")
	case !src.Writable:
		return nil, stanza.ErrNotAllowed.WithText("the roster backend of this host is read-only")
	}
	return src.Backend, nil
}

// push sends a roster push (RFC 6121 §2.1.6) to every resource of owner
// that requested the roster.
func (rs *Rosters) push(owner jid.JID, item *xmlstream.Element, version string) {
	u := rs.cfg.Users.User(owner)
	if u == nil {
		return
	}
	for _, s := range u.Interested() {
		q := xmlstream.NewElement(NS, "query").SetAttr("ver", version).AppendChild(item.Copy())
		iq := xmlstream.NewElement(xmlstream.NSClient, "iq").SetAttr("type", "set").
			SetAttr("id", "push-"+newID()).SetAttr("to", s.JID().String()).AppendChild(q)
		s.Send(iq)
	}
}

// ItemElement renders it as a roster item element.
func ItemElement(it sdk.RosterItem) *xmlstream.Element {
	el := xmlstream.NewElement(NS, "item").SetAttr("jid", it.JID)
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
		el.AppendChild(xmlstream.NewElement(NS, "group").AppendText(g))
	}
	return el
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
