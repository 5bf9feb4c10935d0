package pubsub

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// NSDiscoItems is service discovery items (XEP-0030).
const NSDiscoItems = "http://jabber.org/protocol/disco#items"

// Server is what PEP needs of the module server (modules.Server
// implements it).
type Server interface {
	Host(name string) *modules.Host
	HandleAccountIQ(typ, ns string, h modules.AccountIQ)
	ObservePresence(o modules.PresenceObserver)
	ShapePresence(f modules.PresenceShaper)
	SetAccountDisco(d modules.AccountDisco)
	HandleReplies(h modules.ReplyHandler)
	HandlePrivate(ns string, p modules.PrivateStore)
	HandleOwnIQ(typ, ns string, h modules.OwnIQ)
	AddAccountFeature(ns string, on func(*modules.Host) bool)
	WrapAccountIQ(typ, ns string, wrap func(next modules.AccountIQ) modules.AccountIQ) bool
	RosterItem(ctx context.Context, owner, contact jid.JID) (sdk.RosterItem, bool, error)
	RosterItems(ctx context.Context, owner jid.JID) ([]sdk.RosterItem, error)
	Blocked(ctx context.Context, a, b jid.JID) bool
	Rebroadcast(ctx context.Context, s *router.Session)
}

// pepFeatures are the pubsub features of every account (XEP-0163 §8,
// XEP-0060 §10). config-node-max says that max_items takes "max" (the
// service's limit): without it Converse.js asks for 9999 bookmarks, over
// the limit, and its publish fails with precondition-not-met.
var pepFeatures = []string{
	"access-open", "access-presence", "access-roster", "access-whitelist",
	"auto-create", "auto-subscribe", "config-node", "config-node-max", "create-and-configure", "create-nodes",
	"delete-items", "delete-nodes", "filtered-notifications", "item-ids", "last-published",
	"manage-affiliations", "manage-subscriptions", "member-affiliation", "meta-data",
	"modify-affiliations", "multi-items", "outcast-affiliation", "persistent-items",
	"presence-notifications", "presence-subscribe", "publish", "publish-options",
	"publisher-affiliation", "purge-nodes", "retract-items", "retrieve-affiliations",
	"retrieve-default", "retrieve-items", "retrieve-subscriptions", "rsm", "subscribe",
}

// PEP is the Personal Eventing Protocol on every account of the served
// hosts. Safe for concurrent use.
type PEP struct {
	log    hclog.Logger
	srv    Server
	router *router.Router
	caps   *Caps
	e      *engine

	// Last items sent on presence are read in the background, at most
	// `slots` users at once, so that a login never waits on storage.
	slots   chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	closed  bool
	timeout time.Duration
	av      avatars
}

// RegisterPEP builds PEP with caps and hooks it into srv. Each host's
// nodes are kept by its PubSub feature (a backend, or a memory.PubSub the
// caller put there).
func RegisterPEP(log hclog.Logger, lim Limits, srv Server, r *router.Router, caps *Caps) *PEP {
	p := &PEP{log: log, srv: srv, router: r, caps: caps, slots: make(chan struct{}, 4), timeout: 30 * time.Second,
		av: avatars{m: map[jid.JID]avatarHash{}}}
	p.e = &engine{
		log: log, lim: lim, pep: true, now: time.Now, seed: maphash.MakeSeed(),
		store:  p.store,
		roster: srv.RosterItem,
		send:   p.send,
	}
	p.e.watchers = p.watchers
	for _, typ := range []string{"get", "set"} {
		srv.HandleAccountIQ(typ, NS, p.iq)
		srv.HandleAccountIQ(typ, NSOwner, p.iq)
	}
	srv.ObservePresence(p.presence)
	srv.ShapePresence(p.shape)
	srv.HandleReplies(p.reply)
	srv.SetAccountDisco(p)
	srv.HandlePrivate(NSBookmarksLegacy, privateBookmarks{p})
	p.convertVCardAvatars(srv)
	return p
}

// Close waits for the last-item deliveries under way.
func (p *PEP) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *PEP) store(service jid.JID) Store {
	h := p.srv.Host(service.Domain())
	if h == nil || !h.PubSub.On || service.Local() == "" {
		return nil
	}
	return h.PubSub.Backend
}

func (p *PEP) iq(ctx context.Context, s *router.Session, to jid.JID, iq, payload *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	to = to.Bare()
	if p.store(to) != nil {
		if res, serr, ok := p.legacyPEP(ctx, s, to, iq, payload); ok {
			return res, serr
		}
	}
	res, serr := p.e.handle(ctx, s.JID(), to, iq, payload)
	if serr == nil && iq.Attr("type") == "set" && to == s.JID().Bare() {
		switch {
		case touches(payload, NSBookmarks):
			p.legacyBroadcast(ctx, to)
		case touches(payload, NSAvatarMeta):
			p.avatarChanged(ctx, to)
		}
	}
	return res, serr
}

// touches reports whether a pubsub request acts on node.
func touches(ps *xmlstream.Element, node string) bool {
	a := ps.FirstChild()
	return a != nil && a.Attr("node") == node
}

// send delivers a notification from an account's PEP service, unless one
// of the two blocked the other: to a full JID its session, to a bare JID
// its available resources of non-negative priority (RFC 6121 §8.5.2.1.1,
// headline).
func (p *PEP) send(ctx context.Context, el *xmlstream.Element) {
	from, err1 := jid.Parse(el.Attr("from"))
	to, err2 := jid.Parse(el.Attr("to"))
	if err1 != nil || err2 != nil || p.srv.Blocked(ctx, from, to) {
		return
	}
	if to.Resource() != "" {
		if s := p.router.Session(to); s != nil {
			s.Send(el)
		}
		return
	}
	if u := p.router.User(to); u != nil {
		for _, s := range u.NonNegative() {
			c := el.Copy()
			c.SetAttr("to", s.JID().String())
			s.Send(c)
		}
	}
}

// watchers lists the sessions that asked for node's notifications with
// "+notify" in their capabilities (XEP-0163 §4.3.1): the owner's own, and
// those of contacts the access model lets see the node.
func (p *PEP) watchers(ctx context.Context, owner jid.JID, node string, cfg nodeConfig) []jid.JID {
	feature := node + "+notify"
	var out []jid.JID
	if u := p.router.User(owner); u != nil {
		for _, s := range u.Available() {
			if p.caps.Wants(s.JID(), feature) {
				out = append(out, s.JID())
			}
		}
	}
	model := cfg.accessModel()
	var members map[string]bool
	if model == AccessWhitelist {
		members = map[string]bool{}
		if st := p.store(owner); st != nil {
			affs, err := st.GetPubSubAffiliations(ctx, owner.String(), node, "")
			if err != nil {
				p.log.Warn("whitelist unreadable: members not notified", "owner", owner.String(), "node", node, "error", err)
			}
			for _, a := range affs {
				if a.Affiliation == "member" || a.Affiliation == "publisher" || a.Affiliation == "owner" {
					members[a.JID] = true
				}
			}
		}
	}
	items, err := p.srv.RosterItems(ctx, owner)
	if err != nil {
		p.log.Warn("contacts not notified: roster unavailable", "owner", owner.String(), "error", err)
		return out
	}
	for _, it := range items {
		c, err := jid.Parse(it.JID)
		if err != nil || c == owner {
			continue
		}
		u := p.router.User(c)
		if u == nil || !p.itemAllows(model, cfg, it, members) || p.srv.Blocked(ctx, owner, c) {
			continue
		}
		for _, s := range u.Available() {
			if p.caps.Wants(s.JID(), feature) {
				out = append(out, s.JID())
			}
		}
	}
	return out
}

// itemAllows applies a node's access model to a contact's roster item: a
// presence notification goes to contacts subscribed to the owner's
// presence, whatever else the model allows.
func (p *PEP) itemAllows(model string, cfg nodeConfig, it sdk.RosterItem, members map[string]bool) bool {
	subscribed := it.Subscription == sdk.SubFrom || it.Subscription == sdk.SubBoth
	switch model {
	case AccessOpen, AccessPresence:
		return subscribed
	case AccessRoster:
		for _, g := range it.Groups {
			for _, a := range cfg[fRosterGroups] {
				if g == a {
					return subscribed
				}
			}
		}
	case AccessWhitelist:
		return subscribed && members[it.JID]
	}
	return false
}

// presence reads the capabilities of a session's presence: a session that
// announces new features gets the last items it asked for; unknown
// features are asked of the client first.
func (p *PEP) presence(ctx context.Context, s *router.Session, pres *xmlstream.Element) {
	full := s.JID()
	if pres.Attr("type") == "unavailable" {
		p.caps.Forget(full)
		p.avatarGone(full.Bare())
		return
	}
	if p.store(full.Bare()) == nil {
		return
	}
	_, changed, q := p.caps.Presence(full, pres)
	if q != nil {
		iq := xmlstream.NewElement(xmlstream.NSClient, "iq").SetAttr("type", "get").SetAttr("id", q.ID).
			SetAttr("from", full.Domain()).SetAttr("to", full.String())
		iq.AppendChild(xmlstream.NewElement(NSDiscoInfo, "query").SetAttr("node", q.Node))
		s.Send(iq)
	}
	if changed {
		p.lastItemsLater(full)
	}
}

// reply takes the answers to caps queries.
func (p *PEP) reply(ctx context.Context, s *router.Session, el *xmlstream.Element) bool {
	ok, sessions, _ := p.caps.Answer(el)
	for _, j := range sessions {
		p.lastItemsLater(j)
	}
	return ok
}

// lastItemsLater sends full, in the background, the last items it wants.
func (p *PEP) lastItemsLater(full jid.JID) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		p.slots <- struct{}{}
		defer func() { <-p.slots }()
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		defer cancel()
		p.lastItems(ctx, full)
	}()
}

// lastItems sends a session that announced "+notify" features the last
// item of each such node of its own account and of every contact whose
// presence it is subscribed to, where the node says so and its access
// model lets the session see it (XEP-0163 §4.3.2).
func (p *PEP) lastItems(ctx context.Context, full jid.JID) {
	want := p.caps.notifyNodes(full)
	if len(want) == 0 || p.router.Session(full) == nil {
		return
	}
	user := full.Bare()
	owners := []jid.JID{user}
	items, err := p.srv.RosterItems(ctx, user)
	if err != nil {
		p.log.Warn("contacts' last items not sent: roster unavailable", "user", user.String(), "error", err)
	}
	for _, it := range items {
		if it.Subscription != sdk.SubTo && it.Subscription != sdk.SubBoth {
			continue
		}
		if c, err := jid.Parse(it.JID); err == nil && c.Local() != "" && c != user && p.store(c) != nil {
			owners = append(owners, c)
		}
	}
	for _, owner := range owners {
		if owner != user && p.srv.Blocked(ctx, owner, full) {
			continue
		}
		st := p.store(owner)
		nodes, err := st.ListPubSubNodes(ctx, owner.String())
		if err != nil {
			p.log.Warn("last items not sent", "owner", owner.String(), "to", full.String(), "error", err)
			continue
		}
		c := &call{ctx: ctx, from: full, service: owner, st: st}
		for _, n := range nodes {
			if !want[n.Node] {
				continue
			}
			cfg := loadConfig(n.Config, true, p.e.lim)
			if cfg.str(fSendLast) != "on_sub_and_presence" || p.e.mayRetrieve(c, n.Node, cfg, full) != nil {
				continue
			}
			p.e.sendLast(ctx, st, owner, n.Node, cfg, full)
		}
	}
}

// ExtendInfo implements modules.AccountDisco: every account is a PEP
// service (XEP-0163 §8).
func (p *PEP) ExtendInfo(ctx context.Context, owner, from jid.JID, q *xmlstream.Element) {
	if p.store(owner) == nil {
		return
	}
	q.AppendChild(xmlstream.NewElement(NSDiscoInfo, "identity").SetAttr("category", "pubsub").SetAttr("type", "pep"))
	fs := append([]string{NS}, bookmarkFeatures...)
	for _, f := range pepFeatures {
		fs = append(fs, NS+"#"+f)
	}
	for _, f := range fs {
		q.AppendChild(xmlstream.NewElement(NSDiscoInfo, "feature").SetAttr("var", f))
	}
}

// NodeInfo implements modules.AccountDisco (XEP-0060 §5.3).
func (p *PEP) NodeInfo(ctx context.Context, owner, from jid.JID, node string) (*xmlstream.Element, *stanza.Error) {
	st := p.store(owner)
	if st == nil {
		return nil, stanza.ErrItemNotFound
	}
	return p.e.nodeInfo(&call{ctx: ctx, from: from, service: owner, st: st}, node)
}

// Items implements modules.AccountDisco: the account's nodes the asker
// may see, or a node's item ids (XEP-0060 §5.2, §5.5).
func (p *PEP) Items(ctx context.Context, owner, from jid.JID, node string) (*xmlstream.Element, *stanza.Error) {
	st := p.store(owner)
	if st == nil {
		if node == "" {
			return xmlstream.NewElement(NSDiscoItems, "query"), nil
		}
		return nil, stanza.ErrItemNotFound
	}
	return p.e.discoItems(&call{ctx: ctx, from: from, service: owner, st: st}, node)
}

// notifyNodes lists the nodes whose notifications the session asked for.
func (c *Caps) notifyNodes(full jid.JID) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[full]
	if s == nil {
		return nil
	}
	out := map[string]bool{}
	for f := range s.feat {
		if n, ok := strings.CutSuffix(f, "+notify"); ok && n != "" {
			out[n] = true
		}
	}
	return out
}
