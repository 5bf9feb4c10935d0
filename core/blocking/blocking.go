// Package blocking is the blocking command (XEP-0191): the IQs that read
// and change a user's blocklist, the pushes of changes to the user's
// resources, and the filter routing asks whether two users may exchange
// stanzas. The list itself is stored by the host's blocklist backend and
// kept in memory while its user has a session, so that routing never waits
// on the backend for an online user.
package blocking

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/spamreport"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Namespaces of XEP-0191.
const (
	NS       = "urn:xmpp:blocking"
	NSErrors = "urn:xmpp:blocking:errors"
)

// Server is what the module needs of the module server: its hosts and
// its hooks (modules.Server implements it).
type Server interface {
	Host(name string) *modules.Host
	HandleOwnIQ(typ, ns string, h modules.OwnIQ)
	AddServerFeature(ns string, on func(*modules.Host) bool)
	SetBlocker(b modules.Blocker)
	OnHostChange(f func(old, new *modules.Host))
}

// Module is the blocking command. It implements modules.Blocker.
type Module struct {
	log    hclog.Logger
	srv    Server
	router *router.Router

	mu    sync.Mutex
	lists map[jid.JID]*list // by owner; only while the owner has a session

	changed func(ctx context.Context, owner jid.JID) // cluster.go
	reports Reports
}

// Reports takes the spam and abuse reports attached to blocks (XEP-0377)
// once the block is stored.
type Reports interface {
	Reported(ctx context.Context, r spamreport.Report)
}

// SetReports installs r; without it reports are ignored and not
// advertised.
func (b *Module) SetReports(r Reports) {
	b.reports = r
	for _, f := range spamreport.Features {
		b.srv.AddServerFeature(f, func(h *modules.Host) bool { return h.Blocklist.On })
	}
}

// reportTimeout bounds the handing on of one block's reports.
const reportTimeout = 10 * time.Second

// report hands on the reports of block q, stored for owner, without
// holding up the answer.
func (b *Module) report(owner jid.JID, q *xmlstream.Element) {
	if b.reports == nil {
		return
	}
	var reports []spamreport.Report
	for _, it := range q.Elements() {
		if it.Space != NS || it.Local != "item" {
			continue
		}
		if j, err := jid.Parse(it.Attr("jid")); err == nil {
			if r, ok := spamreport.Parse(owner, j, q, it); ok {
				reports = append(reports, r)
			}
		}
	}
	if len(reports) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
		defer cancel()
		for _, r := range reports {
			b.reports.Reported(ctx, r)
		}
	}()
}

// list is one user's blocklist in memory.
type list struct {
	mu     sync.Mutex
	loaded bool
	items  []jid.JID
	// wants are the sessions that asked for the list, which get pushes
	// (§3.2); a session that ended stays until the next change or until
	// its user is forgotten, harmlessly: the router no longer lists it.
	wants map[*router.Session]bool
}

// Register builds the module and hooks it into srv.
func Register(log hclog.Logger, srv Server, r *router.Router) *Module {
	b := &Module{log: log, srv: srv, router: r, lists: map[jid.JID]*list{}}
	srv.HandleOwnIQ("get", NS, b.get)
	srv.HandleOwnIQ("set", NS, b.set)
	srv.AddServerFeature(NS, func(h *modules.Host) bool { return h.Blocklist.On })
	srv.SetBlocker(b)
	srv.OnHostChange(b.hostChanged)
	return b
}

// hostChanged reads the lists of the host's users again from its new
// version's blocklist backend (a reload may have switched it): each list is marked
// unloaded under its lock, so a load in progress finishes first and the
// next use reads the new backend. The sessions that asked for a list stay
// subscribed to its pushes.
func (b *Module) hostChanged(_, new *modules.Host) {
	b.mu.Lock()
	var lists []*list
	for owner, l := range b.lists {
		if owner.Domain() == new.Name {
			lists = append(lists, l)
		}
	}
	b.mu.Unlock()
	for _, l := range lists {
		l.mu.Lock()
		l.loaded, l.items = false, nil
		l.mu.Unlock()
	}
}

// backend returns owner's host's blocklist backend, or nil when the host
// has no blocklist.
func (b *Module) backend(owner jid.JID) *modules.Feature[modules.BlocklistBackend] {
	h := b.srv.Host(owner.Domain())
	if h == nil || !h.Blocklist.On {
		return nil
	}
	return &h.Blocklist
}

// cached returns owner's list, loaded. Only an owner with a session is
// cached; for others it returns a fresh list that nobody keeps.
func (b *Module) cached(ctx context.Context, owner jid.JID) (*list, error) {
	b.mu.Lock()
	l := b.lists[owner]
	if l == nil {
		l = &list{wants: map[*router.Session]bool{}}
		if b.router.User(owner) != nil {
			b.lists[owner] = l
		}
	}
	b.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.loaded {
		return l, nil
	}
	f := b.backend(owner)
	if f == nil {
		l.loaded = true
		return l, nil
	}
	strs, err := f.Backend.GetBlocklist(ctx, owner.String())
	if err != nil {
		return nil, err
	}
	l.items = parseAll(b.log, owner, strs)
	l.loaded = true
	return l, nil
}

// parseAll parses stored items, skipping (and logging) any that no longer
// parse rather than failing the whole list.
func parseAll(log hclog.Logger, owner jid.JID, strs []string) []jid.JID {
	items := make([]jid.JID, 0, len(strs))
	for _, s := range strs {
		j, err := jid.Parse(s)
		if err != nil {
			log.Warn("ignoring a stored blocklist item that is not a JID", "user", owner.String(), "item", s, "error", err)
			continue
		}
		items = append(items, j)
	}
	return items
}

// Blocked implements modules.Blocker. When the list cannot be read it says
// no: a backend failure must not cut every conversation.
func (b *Module) Blocked(ctx context.Context, owner, other jid.JID) bool {
	if b.backend(owner) == nil {
		return false
	}
	l, err := b.cached(ctx, owner)
	if err != nil {
		b.log.Warn("blocklist unavailable; not blocking", "user", owner.String(), "error", err)
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return matchesAny(l.items, other)
}

// Refusal implements modules.Blocker (§3.5).
func (b *Module) Refusal(el *xmlstream.Element) *xmlstream.Element {
	r := stanza.ErrorReply(el, stanza.ErrNotAcceptable)
	if e := r.Child(r.Space, "error"); e != nil {
		e.AppendChild(xmlstream.NewElement(NSErrors, "blocked"))
	}
	return r
}

// Forget implements modules.Blocker: the list is dropped once its user has
// no session left.
func (b *Module) Forget(owner jid.JID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.router.User(owner) == nil {
		delete(b.lists, owner)
	}
}

// get answers a blocklist request (§3.2) and subscribes the session to
// pushes.
func (b *Module) get(ctx context.Context, s *router.Session, _, q *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	if q.Local != "blocklist" {
		return nil, stanza.ErrBadRequest
	}
	owner := s.JID().Bare()
	if b.backend(owner) == nil {
		return nil, stanza.ErrServiceUnavailable
	}
	l, err := b.cached(ctx, owner)
	if err != nil {
		return nil, backendError(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.wants[s] = true
	return itemsElement("blocklist", l.items), nil
}

func itemsElement(name string, items []jid.JID) *xmlstream.Element {
	el := xmlstream.NewElement(NS, name)
	for _, it := range items {
		el.AppendChild(xmlstream.NewElement(NS, "item").SetAttr("jid", it.String()))
	}
	return el
}

// set blocks (§3.3) or unblocks (§3.4, §3.5) JIDs.
func (b *Module) set(ctx context.Context, s *router.Session, _, q *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	if q.Local != "block" && q.Local != "unblock" {
		return nil, stanza.ErrBadRequest
	}
	owner := s.JID().Bare()
	f := b.backend(owner)
	if f == nil {
		return nil, stanza.ErrServiceUnavailable
	}
	if !f.Writable {
		return nil, stanza.ErrNotAllowed.WithText("this server's blocklist backend is read-only")
	}
	var items []jid.JID
	for _, it := range q.Elements() {
		if it.Space != NS || it.Local != "item" {
			continue
		}
		j, err := jid.Parse(it.Attr("jid"))
		if err != nil || it.Attr("jid") == "" {
			return nil, stanza.ErrJIDMalformed.WithText("not a JID: " + it.Attr("jid"))
		}
		if !slices.Contains(items, j) {
			items = append(items, j)
		}
	}
	if q.Local == "block" && len(items) == 0 {
		return nil, stanza.ErrBadRequest.WithText("a block needs at least one item")
	}
	l, err := b.cached(ctx, owner)
	if err != nil {
		return nil, backendError(err)
	}
	// The list's lock is held through the backend call so that changes
	// apply in the order they are stored.
	l.mu.Lock()
	before := slices.Clone(l.items)
	strs := make([]string, len(items))
	for i, j := range items {
		strs[i] = j.String()
	}
	switch {
	case q.Local == "block":
		err = f.Backend.Block(ctx, owner.String(), strs)
	case len(items) == 0:
		err = f.Backend.UnblockAll(ctx, owner.String())
	default:
		err = f.Backend.Unblock(ctx, owner.String(), strs)
	}
	if err != nil {
		l.mu.Unlock()
		return nil, backendError(err)
	}
	switch {
	case q.Local == "block":
		for _, j := range items {
			if !slices.Contains(l.items, j) {
				l.items = append(l.items, j)
			}
		}
	case len(items) == 0:
		l.items = nil
	default:
		l.items = slices.DeleteFunc(l.items, func(j jid.JID) bool { return slices.Contains(items, j) })
	}
	after := slices.Clone(l.items)
	var pushTo []*router.Session
	wants := map[*router.Session]bool{}
	if u := b.router.User(owner); u != nil {
		for _, o := range u.Sessions() {
			if l.wants[o] {
				pushTo = append(pushTo, o)
				wants[o] = true
			}
		}
	}
	l.wants = wants // without the sessions that ended
	l.mu.Unlock()
	if b.changed != nil {
		b.changed(ctx, owner)
	}
	pushChange(pushTo, q.Local, items)
	b.presenceChanges(ctx, owner, before, after)
	if q.Local == "block" {
		b.report(owner, q)
	}
	return nil, nil
}

// pushChange tells sessions of a block or unblock of items (§3.3, §3.4).
func pushChange(to []*router.Session, kind string, items []jid.JID) {
	push := xmlstream.NewElement(xmlstream.NSClient, "iq").SetAttr("type", "set")
	push.AppendChild(itemsElement(kind, items))
	for _, o := range to {
		p := push.Copy()
		p.SetAttr("id", "push-"+newID())
		p.SetAttr("to", o.JID().String())
		o.Send(p)
	}
}

// backendError maps a backend failure to the stanza error the client sees.
func backendError(err error) *stanza.Error {
	switch {
	case errors.Is(err, sdk.ErrReadOnly):
		return stanza.ErrNotAllowed.WithText("this server's blocklist backend is read-only")
	case errors.Is(err, sdk.ErrInvalid):
		return stanza.ErrBadRequest
	default:
		return stanza.ErrInternal.WithText("the storage backend is unavailable; try again later")
	}
}
