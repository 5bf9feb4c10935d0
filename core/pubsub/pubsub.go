// Package pubsub is publish-subscribe (XEP-0060): the Personal Eventing
// Protocol on every account (XEP-0163, pep.go), the service on its own
// domain (pubsub.<host>, service.go), publish-options (XEP-0223), the
// entity capabilities cache that tells who wants which notifications
// (XEP-0115, caps.go), and what rides on PEP: avatars kept in step with
// vCard hashes (XEP-0084/0153, avatar.go) and bookmarks with their
// private-storage compatibility (XEP-0402/0048/0411, bookmarks.go).
//
// Namespaces: http://jabber.org/protocol/pubsub, #owner, #event, #errors,
// #node_config, #publish-options, #meta-data; http://jabber.org/protocol/caps.
//
// Nodes, items, affiliations and subscriptions are kept by the host's
// pubsub backend (sdk.PubSub and sdk.PubSubWriter); a host without one
// keeps them in memory (MemoryStore) until koi stops.
package pubsub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Namespaces of XEP-0060 and the protocols around it.
const (
	NS               = "http://jabber.org/protocol/pubsub"
	NSOwner          = NS + "#owner"
	NSEvent          = NS + "#event"
	NSErrors         = NS + "#errors"
	NSPublishOptions = NS + "#publish-options"
	NSMetaData       = NS + "#meta-data"
	NSRSM            = "http://jabber.org/protocol/rsm"
)

// Store keeps nodes and their items (a host's pubsub backend).
type Store interface {
	sdk.PubSub
	sdk.PubSubWriter
}

// Limits bound what users may keep; they come from the config block
// pubsub.
type Limits struct {
	// MaxItems is the largest pubsub#max_items of a node; "max" means it.
	MaxItems int
	// DefaultMaxItems is max_items of a new node of the service (PEP
	// nodes keep one item unless configured, XEP-0163 §4).
	DefaultMaxItems int
	// MaxNodes is how many nodes one account may have: PEP nodes, and
	// nodes it owns on the service.
	MaxNodes int
	// MaxItemBytes bounds an item's serialised payload.
	MaxItemBytes int
}

// DefaultLimits are the limits when the config sets none.
var DefaultLimits = Limits{MaxItems: 256, DefaultMaxItems: 10, MaxNodes: 100, MaxItemBytes: 128 << 10}

// maxNodeName bounds a node name and an item id: the key length every
// backend stores (the sql plugin's columns).
const maxNodeName = 255

// perr is a stanza error with a pubsub#errors condition.
func perr(base *stanza.Error, app string) *stanza.Error { return base.WithApp(NSErrors, app) }

var (
	errNodeIDRequired    = perr(stanza.ErrBadRequest, "nodeid-required")
	errInvalidJID        = perr(stanza.ErrBadRequest, "invalid-jid")
	errNotSubscribed     = perr(stanza.ErrUnexpectedRequest, "not-subscribed")
	errPayloadTooBig     = perr(stanza.ErrNotAcceptable, "payload-too-big")
	errInvalidPayload    = perr(stanza.ErrBadRequest, "invalid-payload")
	errPayloadRequired   = perr(stanza.ErrBadRequest, "payload-required")
	errItemRequired      = perr(stanza.ErrBadRequest, "item-required")
	errPrecondition      = perr(stanza.ErrConflict, "precondition-not-met")
	errPresenceRequired  = perr(stanza.ErrNotAuthorized, "presence-subscription-required")
	errNotInRosterGroup  = perr(stanza.ErrNotAuthorized, "not-in-roster-group")
	errClosedNode        = perr(stanza.ErrNotAllowed, "closed-node")
	errInvalidSubID      = perr(stanza.ErrNotAcceptable, "invalid-subid")
	errSubOptionsUnsupp  = unsupported("subscription-options")
	errAccessUnsupported = perr(stanza.ErrNotAcceptable, "unsupported-access-model")
)

// unsupported is <feature-not-implemented/> naming the pubsub feature.
func unsupported(feature string) *stanza.Error {
	e := stanza.ErrFeatureNotImpl.WithApp(NSErrors, "unsupported")
	e.App.SetAttr("feature", feature)
	return e
}

// parsePayload reads a stored payload. A payload without a namespace of
// its own was published in the pubsub namespace's scope; stanza.Parse
// reads it in jabber:client, which serialises back the same.
func parsePayload(s string) (*xmlstream.Element, error) { return stanza.Parse(s) }

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// engine is the XEP-0060 protocol on one kind of service: every user's PEP
// (pep true, services are bare JIDs) or the pubsub service (services are
// domains). What differs between them comes in as functions.
type engine struct {
	log hclog.Logger
	lim Limits
	pep bool
	// store returns the store of a service, nil when its host has none.
	store func(service jid.JID) Store
	// roster returns owner's roster item for who: the presence and roster
	// access models of PEP nodes.
	roster func(ctx context.Context, owner, who jid.JID) (sdk.RosterItem, bool, error)
	// watchers returns the full JIDs that want node's notifications
	// without a subscription (PEP: the owner's and contacts' sessions whose
	// capabilities say +notify), with access already checked. Nil on the
	// service.
	watchers func(ctx context.Context, service jid.JID, node string, cfg nodeConfig) []jid.JID
	// mayCreate reports whether who may create nodes on service.
	mayCreate func(service, who jid.JID) bool
	// send delivers a stanza from the service (a notification).
	send func(ctx context.Context, el *xmlstream.Element)
	// published hears an item stored on a node (avatar and bookmark
	// bridges); nil for none.
	published func(ctx context.Context, service jid.JID, node string, it sdk.PubSubItem)
	now       func() time.Time

	seed  maphash.Seed
	locks [64]sync.Mutex
}

// lock serialises the changes of one service: node creation against the
// node limit, auto-creation on publish.
func (e *engine) lock(service jid.JID) func() {
	l := &e.locks[maphash.String(e.seed, service.String())%uint64(len(e.locks))]
	l.Lock()
	return l.Unlock
}

// call is one request to a service.
type call struct {
	ctx     context.Context
	from    jid.JID // the requester's full JID
	service jid.JID
	st      Store
}

// handle answers a pubsub IQ (payload in NS or NSOwner) addressed to
// service.
func (e *engine) handle(ctx context.Context, from, service jid.JID, iq, ps *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	if ps.Local != "pubsub" {
		return nil, stanza.ErrBadRequest.WithText("want <pubsub/>")
	}
	st := e.store(service)
	if st == nil {
		return nil, stanza.ErrServiceUnavailable
	}
	c := &call{ctx: ctx, from: from, service: service, st: st}
	set := iq.Attr("type") == "set"
	kids := ps.Elements()
	if len(kids) == 0 {
		return nil, stanza.ErrBadRequest.WithText("no pubsub action")
	}
	act := kids[0]
	if ps.Space == NSOwner {
		switch {
		case act.Local == "configure" && !set:
			return e.configureGet(c, act)
		case act.Local == "configure" && set:
			return e.configureSet(c, act)
		case act.Local == "default" && !set:
			return e.defaultConfig(act, NSOwner)
		case act.Local == "delete" && set:
			return e.deleteNode(c, act)
		case act.Local == "purge" && set:
			return e.purge(c, act)
		case act.Local == "subscriptions" && !set:
			return e.ownerSubscriptions(c, act)
		case act.Local == "subscriptions" && set:
			return e.ownerSetSubscriptions(c, act)
		case act.Local == "affiliations" && !set:
			return e.ownerAffiliations(c, act)
		case act.Local == "affiliations" && set:
			return e.ownerSetAffiliations(c, act)
		}
		return nil, stanza.ErrBadRequest.WithText("unknown pubsub#owner action " + act.Local)
	}
	switch {
	case act.Local == "create" && set:
		return e.create(c, act, ps.Child(NS, "configure"))
	case act.Local == "publish" && set:
		return e.publish(c, act, ps.Child(NS, "publish-options"))
	case act.Local == "retract" && set:
		return e.retract(c, act)
	case act.Local == "items" && !set:
		return e.items(c, act, ps.Child(NSRSM, "set"))
	case act.Local == "subscribe" && set:
		return e.subscribe(c, act, ps.Child(NS, "options"))
	case act.Local == "unsubscribe" && set:
		return e.unsubscribe(c, act)
	case act.Local == "subscriptions" && !set:
		return e.subscriptions(c, act)
	case act.Local == "affiliations" && !set:
		return e.affiliations(c, act)
	case act.Local == "default" && !set:
		return e.defaultConfig(act, NS)
	case act.Local == "options":
		return nil, errSubOptionsUnsupp
	}
	return nil, stanza.ErrBadRequest.WithText("unknown pubsub action " + act.Local)
}

// nodeName reads and checks the node attribute.
func nodeName(el *xmlstream.Element) (string, *stanza.Error) {
	n := el.Attr("node")
	if n == "" {
		return "", errNodeIDRequired
	}
	if len(n) > maxNodeName {
		return "", stanza.ErrNotAcceptable.WithText("node name too long")
	}
	return n, nil
}

// node loads a node and its configuration.
func (e *engine) node(c *call, name string) (sdk.PubSubNode, nodeConfig, *stanza.Error) {
	n, err := c.st.GetPubSubNode(c.ctx, c.service.String(), name)
	if err != nil {
		return n, nil, modules.BackendError(err)
	}
	return n, loadConfig(n.Config, e.pep, e.lim), nil
}

// affiliation is who's affiliation with a node: the PEP owner owns every
// node of the account; others have what the store says, or "none".
func (e *engine) affiliation(c *call, node string, who jid.JID) (string, *stanza.Error) {
	bare := who.Bare()
	if e.pep && bare == c.service {
		return "owner", nil
	}
	affs, err := c.st.GetPubSubAffiliations(c.ctx, c.service.String(), node, bare.String())
	if err != nil {
		return "", modules.BackendError(err)
	}
	if len(affs) > 0 {
		return affs[0].Affiliation, nil
	}
	return "none", nil
}

// mayRetrieve decides whether who may subscribe to node and read its items
// (XEP-0060 §4.5 access models, §6.1.3 errors).
func (e *engine) mayRetrieve(c *call, node string, cfg nodeConfig, who jid.JID) *stanza.Error {
	aff, serr := e.affiliation(c, node, who)
	if serr != nil {
		return serr
	}
	switch aff {
	case "owner", "publisher", "member":
		return nil
	case "outcast":
		return stanza.ErrForbidden
	}
	return e.modelAllows(c.ctx, c.service, cfg, who)
}

// modelAllows applies the access model alone to a JID without an
// affiliation.
func (e *engine) modelAllows(ctx context.Context, service jid.JID, cfg nodeConfig, who jid.JID) *stanza.Error {
	switch cfg.accessModel() {
	case AccessOpen:
		return nil
	case AccessPresence, AccessRoster:
		if !e.pep || e.roster == nil {
			return errClosedNode
		}
		it, ok, err := e.roster(ctx, service, who)
		if err != nil {
			return modules.BackendError(err)
		}
		subscribed := ok && (it.Subscription == sdk.SubFrom || it.Subscription == sdk.SubBoth)
		if cfg.accessModel() == AccessPresence {
			if !subscribed {
				return errPresenceRequired
			}
			return nil
		}
		for _, g := range it.Groups {
			for _, allowed := range cfg[fRosterGroups] {
				if g == allowed && ok {
					return nil
				}
			}
		}
		return errNotInRosterGroup
	}
	return errClosedNode
}

// create makes a node (XEP-0060 §8.1).
func (e *engine) create(c *call, cr, configure *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name := cr.Attr("node")
	if name == "" {
		if e.pep {
			return nil, errNodeIDRequired
		}
		name = newID() // instant node, §8.1.2
	} else if _, serr := nodeName(cr); serr != nil {
		return nil, serr
	}
	if !e.mayCreateOn(c) {
		return nil, stanza.ErrForbidden.WithText("you may not create nodes here")
	}
	cfg := defaultConfig(e.pep, e.lim)
	if configure != nil {
		if x := configure.Child(NSData, "x"); x != nil {
			f, err := parseForm(x)
			if err != nil {
				return nil, stanza.ErrBadRequest.WithText("configuration form: " + err.Error())
			}
			if f.formType != "" && f.formType != NSNodeConfig {
				return nil, stanza.ErrBadRequest.WithText("configuration form of type " + f.formType)
			}
			var cerr *configError
			if cfg, cerr = cfg.apply(f, e.lim); cerr != nil {
				return nil, e.configErr(cerr)
			}
		}
	}
	if serr := e.checkModel(cfg); serr != nil {
		return nil, serr
	}
	defer e.lock(c.service)()
	if serr := e.createLocked(c, name, cfg); serr != nil {
		return nil, serr
	}
	ps := xmlstream.NewElement(NS, "pubsub")
	ps.AppendChild(xmlstream.NewElement(NS, "create").SetAttr("node", name))
	return ps, nil
}

func (e *engine) mayCreateOn(c *call) bool {
	if e.pep {
		return c.from.Bare() == c.service
	}
	return e.mayCreate != nil && e.mayCreate(c.service, c.from)
}

// checkModel refuses an access model the kind of service cannot apply:
// presence and roster need an owner with a roster, which only PEP has.
func (e *engine) checkModel(cfg nodeConfig) *stanza.Error {
	if m := cfg.accessModel(); !e.pep && (m == AccessPresence || m == AccessRoster) {
		return errAccessUnsupported.WithText("this service's nodes are open or whitelist")
	}
	return nil
}

func (e *engine) configErr(ce *configError) *stanza.Error {
	if ce.field == fAccessModel {
		return errAccessUnsupported.WithText(ce.Error())
	}
	return stanza.ErrNotAcceptable.WithText(ce.Error())
}

// createLocked creates a node under the service lock, within the node
// limit.
func (e *engine) createLocked(c *call, name string, cfg nodeConfig) *stanza.Error {
	owner := c.from.Bare().String()
	if e.pep {
		nodes, err := c.st.ListPubSubNodes(c.ctx, c.service.String())
		if err != nil {
			return modules.BackendError(err)
		}
		for _, n := range nodes {
			if n.Node == name {
				return stanza.ErrConflict.WithText("the node exists")
			}
		}
		if len(nodes) >= e.lim.MaxNodes {
			return perr(stanza.ErrNotAllowed, "max-nodes-exceeded").WithText(fmt.Sprintf("an account may have at most %d PEP nodes", e.lim.MaxNodes))
		}
		owner = c.service.String()
	} else {
		affs, err := c.st.GetPubSubAffiliations(c.ctx, c.service.String(), "", owner)
		if err != nil {
			return modules.BackendError(err)
		}
		owned := 0
		for _, a := range affs {
			if a.Affiliation == "owner" {
				owned++
			}
		}
		if owned >= e.lim.MaxNodes {
			return perr(stanza.ErrNotAllowed, "max-nodes-exceeded").WithText(fmt.Sprintf("a user may own at most %d nodes here", e.lim.MaxNodes))
		}
	}
	n := sdk.PubSubNode{Service: c.service.String(), Node: name, Config: cfg, Created: e.now().UTC().Truncate(time.Millisecond)}
	if err := c.st.CreatePubSubNode(c.ctx, n, owner); err != nil {
		if errors.Is(err, sdk.ErrExists) {
			return stanza.ErrConflict.WithText("the node exists")
		}
		return modules.BackendError(err)
	}
	return nil
}

// publish stores an item and notifies (XEP-0060 §7.1), creating the node
// when it does not exist (XEP-0163 §3, auto-create) with the
// publish-options as its configuration (XEP-0060 §7.1.5).
func (e *engine) publish(c *call, pub, opts *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, serr := nodeName(pub)
	if serr != nil {
		return nil, serr
	}
	var items []*xmlstream.Element
	for _, k := range pub.Elements() {
		if k.Space == NS && k.Local == "item" {
			items = append(items, k)
		}
	}
	if len(items) == 0 {
		return nil, errItemRequired
	}
	if len(items) > 1 {
		return nil, errInvalidPayload.WithText("publish one item at a time")
	}
	itEl := items[0]
	payloads := itEl.Elements()
	if len(payloads) == 0 {
		return nil, errPayloadRequired
	}
	if len(payloads) > 1 {
		return nil, errInvalidPayload.WithText("an item carries exactly one payload element")
	}
	payload := payloads[0].String()
	if len(payload) > e.lim.MaxItemBytes {
		return nil, errPayloadTooBig.WithText(fmt.Sprintf("an item may be at most %d bytes", e.lim.MaxItemBytes))
	}
	id := itEl.Attr("id")
	if id == "" {
		id = newID()
	} else if len(id) > maxNodeName {
		return nil, stanza.ErrBadRequest.WithText("item id too long")
	}
	var opt *form
	if opts != nil {
		if x := opts.Child(NSData, "x"); x != nil {
			f, err := parseForm(x)
			if err != nil {
				return nil, stanza.ErrBadRequest.WithText("publish-options: " + err.Error())
			}
			if f.formType != NSPublishOptions {
				return nil, stanza.ErrBadRequest.WithText("publish-options want FORM_TYPE " + NSPublishOptions)
			}
			opt = f
		}
	}
	it := sdk.PubSubItem{ID: id, Publisher: c.from.Bare().String(), Payload: payload, Published: e.now().UTC().Truncate(time.Millisecond)}
	cfg, serr := e.publishLocked(c, name, opt, it)
	if serr != nil {
		return nil, serr
	}
	if e.published != nil {
		e.published(c.ctx, c.service, name, it)
	}
	e.notifyItem(c, name, cfg, it, payloads[0])
	ps := xmlstream.NewElement(NS, "pubsub")
	ps.AppendChild(xmlstream.NewElement(NS, "publish").SetAttr("node", name).
		AppendChild(xmlstream.NewElement(NS, "item").SetAttr("id", id)))
	return ps, nil
}

func (e *engine) publishLocked(c *call, name string, opt *form, it sdk.PubSubItem) (nodeConfig, *stanza.Error) {
	defer e.lock(c.service)()
	_, cfg, serr := e.node(c, name)
	created := false
	switch {
	case serr == stanza.ErrItemNotFound:
		if !e.mayCreateOn(c) {
			if e.pep {
				return nil, stanza.ErrForbidden.WithText("only the account may publish to its PEP nodes")
			}
			return nil, stanza.ErrItemNotFound
		}
		cfg = defaultConfig(e.pep, e.lim)
		if opt != nil {
			next, cerr := cfg.apply(opt, e.lim)
			if cerr != nil {
				return nil, errPrecondition.WithText(cerr.Error())
			}
			cfg = next
		}
		if serr := e.checkModel(cfg); serr != nil {
			return nil, serr
		}
		if serr := e.createLocked(c, name, cfg); serr != nil {
			return nil, serr
		}
		created = true
	case serr != nil:
		return nil, serr
	default:
		if opt != nil {
			if f := cfg.unmet(opt, e.lim); f != "" {
				return nil, errPrecondition.WithText("the node's " + f + " differs from the publish-options")
			}
		}
		if serr := e.mayPublish(c, name, cfg); serr != nil {
			return nil, serr
		}
	}
	if !cfg.bool(fPersistItems) {
		return cfg, nil
	}
	if err := c.st.PublishPubSubItem(c.ctx, c.service.String(), name, it, cfg.maxItems()); err != nil {
		if created {
			// The publish failed as a whole: no empty node is left behind.
			if derr := c.st.DeletePubSubNode(c.ctx, c.service.String(), name); derr != nil {
				e.log.Warn("node created for a failed publish not removed", "service", c.service.String(), "node", name, "error", derr)
			}
		}
		return nil, modules.BackendError(err)
	}
	return cfg, nil
}

// mayPublish applies the publish model (XEP-0060 §7.1.3.1).
func (e *engine) mayPublish(c *call, name string, cfg nodeConfig) *stanza.Error {
	aff, serr := e.affiliation(c, name, c.from)
	if serr != nil {
		return serr
	}
	switch aff {
	case "owner", "publisher", "publish-only":
		return nil
	case "outcast":
		return stanza.ErrForbidden
	}
	switch cfg.str(fPublishModel) {
	case "open":
		return nil
	case "subscribers":
		subs, err := c.st.GetPubSubSubscriptions(c.ctx, c.service.String(), name, "")
		if err != nil {
			return modules.BackendError(err)
		}
		for _, s := range subs {
			if s.State == "subscribed" && bareOf(s.JID) == c.from.Bare().String() {
				return nil
			}
		}
	}
	return stanza.ErrForbidden.WithText("only the node's publishers may publish")
}

// retract deletes an item (XEP-0060 §7.2).
func (e *engine) retract(c *call, r *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, serr := nodeName(r)
	if serr != nil {
		return nil, serr
	}
	it := r.Child(NS, "item")
	if it == nil || it.Attr("id") == "" {
		return nil, perr(stanza.ErrBadRequest, "item-required")
	}
	id := it.Attr("id")
	_, cfg, serr := e.node(c, name)
	if serr != nil {
		return nil, serr
	}
	aff, serr := e.affiliation(c, name, c.from)
	if serr != nil {
		return nil, serr
	}
	if aff != "owner" && aff != "publisher" {
		return nil, stanza.ErrForbidden
	}
	if err := c.st.RetractPubSubItem(c.ctx, c.service.String(), name, id); err != nil {
		return nil, modules.BackendError(err)
	}
	notify := cfg.bool(fNotifyRetract)
	if v := r.Attr("notify"); v != "" {
		notify, _ = parseBool(v)
	}
	if notify {
		ev := xmlstream.NewElement(NSEvent, "items").SetAttr("node", name)
		ev.AppendChild(xmlstream.NewElement(NSEvent, "retract").SetAttr("id", id))
		e.broadcast(c, name, cfg, ev)
	}
	return nil, nil
}

// items returns a node's items (XEP-0060 §6.5), by id, the newest
// max_items, or a page (XEP-0059).
func (e *engine) items(c *call, req, rsm *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, serr := nodeName(req)
	if serr != nil {
		return nil, serr
	}
	_, cfg, serr := e.node(c, name)
	if serr != nil {
		return nil, serr
	}
	if serr := e.mayRetrieve(c, name, cfg, c.from); serr != nil {
		return nil, serr
	}
	q := sdk.PubSubItemQuery{Service: c.service.String(), Node: name, Max: min(e.lim.MaxItems, sdk.MaxPubSubPage)}
	for _, it := range req.Elements() {
		if it.Space == NS && it.Local == "item" {
			if id := it.Attr("id"); id != "" && !slices.Contains(q.IDs, id) {
				q.IDs = append(q.IDs, id)
			}
		}
	}
	if len(q.IDs) > sdk.MaxPubSubPage {
		return nil, stanza.ErrNotAcceptable.WithText(fmt.Sprintf("at most %d item ids at once", sdk.MaxPubSubPage))
	}
	if s := req.Attr("max_items"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, stanza.ErrBadRequest.WithText("max_items wants a number")
		}
		q.Max = min(n, q.Max)
	}
	if rsm != nil {
		if m := rsm.Child(NSRSM, "max"); m != nil {
			n, err := strconv.Atoi(m.Text())
			if err != nil || n < 0 {
				return nil, stanza.ErrBadRequest.WithText("RSM max wants a number")
			}
			q.Max = min(n, sdk.MaxPubSubPage)
		}
		if a := rsm.Child(NSRSM, "after"); a != nil {
			q.After = a.Text()
		}
		if b := rsm.Child(NSRSM, "before"); b != nil {
			q.Before = b.Text()
			if q.Before == "" { // <before/>: the last page
				q.Before, q.After = "", ""
			}
		}
	}
	page := sdk.PubSubItemPage{Items: nil}
	if cfg.bool(fPersistItems) {
		var err error
		page, err = c.st.GetPubSubItems(c.ctx, q)
		if err != nil {
			if errors.Is(err, sdk.ErrNotFound) && (q.After != "" || q.Before != "") {
				return nil, stanza.ErrItemNotFound.WithText("no such item to page from")
			}
			return nil, modules.BackendError(err)
		}
	}
	out := xmlstream.NewElement(NS, "items").SetAttr("node", name)
	for _, it := range page.Items {
		ie, err := e.itemElement(NS, it, true, cfg)
		if err != nil {
			e.log.Warn("stored item unreadable", "service", c.service.String(), "node", name, "item", it.ID, "error", err)
			continue
		}
		out.AppendChild(ie)
	}
	ps := xmlstream.NewElement(NS, "pubsub").AppendChild(out)
	if rsm != nil {
		set := xmlstream.NewElement(NSRSM, "set")
		if len(page.Items) > 0 {
			set.AppendChild(xmlstream.NewElement(NSRSM, "first").AppendText(page.Items[0].ID))
			set.AppendChild(xmlstream.NewElement(NSRSM, "last").AppendText(page.Items[len(page.Items)-1].ID))
		}
		set.AppendChild(xmlstream.NewElement(NSRSM, "count").AppendText(strconv.Itoa(page.Count)))
		ps.AppendChild(set)
	}
	return ps, nil
}

// itemElement renders a stored item in ns (pubsub or pubsub#event).
func (e *engine) itemElement(ns string, it sdk.PubSubItem, withPayload bool, cfg nodeConfig) (*xmlstream.Element, error) {
	ie := xmlstream.NewElement(ns, "item").SetAttr("id", it.ID)
	if cfg.str(fItemReply) == "publisher" && it.Publisher != "" {
		ie.SetAttr("publisher", it.Publisher)
	}
	if withPayload && it.Payload != "" {
		p, err := parsePayload(it.Payload)
		if err != nil {
			return nil, err
		}
		ie.AppendChild(p)
	}
	return ie, nil
}

// subscribe subscribes a JID of the requester (XEP-0060 §6.1).
func (e *engine) subscribe(c *call, sub, opts *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, serr := nodeName(sub)
	if serr != nil {
		return nil, serr
	}
	j, err := jid.Parse(sub.Attr("jid"))
	if err != nil || j.Bare() != c.from.Bare() {
		return nil, errInvalidJID
	}
	if opts != nil && opts.Child(NSData, "x") != nil {
		return nil, errSubOptionsUnsupp
	}
	_, cfg, serr := e.node(c, name)
	if serr != nil {
		return nil, serr
	}
	if serr := e.mayRetrieve(c, name, cfg, c.from); serr != nil {
		return nil, serr
	}
	subs, err := c.st.GetPubSubSubscriptions(c.ctx, c.service.String(), name, "")
	if err != nil {
		return nil, modules.BackendError(err)
	}
	s := sdk.PubSubSubscription{Service: c.service.String(), Node: name, JID: j.String(), SubID: newID(), State: "subscribed"}
	found := false
	for _, x := range subs {
		if x.JID == s.JID {
			s, found = x, true
			break
		}
	}
	if !found {
		if err := c.st.SetPubSubSubscription(c.ctx, s); err != nil {
			return nil, modules.BackendError(err)
		}
	}
	if sl := cfg.str(fSendLast); sl == "on_sub" || sl == "on_sub_and_presence" {
		e.sendLast(c.ctx, c.st, c.service, name, cfg, j)
	}
	return xmlstream.NewElement(NS, "pubsub").AppendChild(subscriptionEl(NS, s)), nil
}

func subscriptionEl(ns string, s sdk.PubSubSubscription) *xmlstream.Element {
	el := xmlstream.NewElement(ns, "subscription").SetAttr("node", s.Node).SetAttr("jid", s.JID)
	if s.SubID != "" {
		el.SetAttr("subid", s.SubID)
	}
	return el.SetAttr("subscription", s.State)
}

// unsubscribe removes a subscription (XEP-0060 §6.2).
func (e *engine) unsubscribe(c *call, u *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, serr := nodeName(u)
	if serr != nil {
		return nil, serr
	}
	j, err := jid.Parse(u.Attr("jid"))
	if err != nil || j.Bare() != c.from.Bare() {
		return nil, errInvalidJID
	}
	if _, _, serr := e.node(c, name); serr != nil {
		return nil, serr
	}
	subs, err := c.st.GetPubSubSubscriptions(c.ctx, c.service.String(), name, "")
	if err != nil {
		return nil, modules.BackendError(err)
	}
	subid := u.Attr("subid")
	var mine []sdk.PubSubSubscription
	for _, s := range subs {
		if s.JID == j.String() {
			mine = append(mine, s)
		}
	}
	if len(mine) == 0 {
		return nil, errNotSubscribed
	}
	for _, s := range mine {
		if subid != "" && s.SubID != subid {
			continue
		}
		s.State = "none"
		if err := c.st.SetPubSubSubscription(c.ctx, s); err != nil {
			return nil, modules.BackendError(err)
		}
		if subid != "" {
			return nil, nil
		}
	}
	if subid != "" {
		return nil, errInvalidSubID
	}
	return nil, nil
}

// subscriptions lists the requester's subscriptions (XEP-0060 §5.6).
func (e *engine) subscriptions(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	subs, err := c.st.GetPubSubSubscriptions(c.ctx, c.service.String(), "", c.from.Bare().String())
	if err != nil {
		return nil, modules.BackendError(err)
	}
	node := req.Attr("node")
	out := xmlstream.NewElement(NS, "subscriptions")
	if node != "" {
		out.SetAttr("node", node)
	}
	for _, s := range subs {
		if node == "" || s.Node == node {
			out.AppendChild(subscriptionEl(NS, s))
		}
	}
	return xmlstream.NewElement(NS, "pubsub").AppendChild(out), nil
}

// affiliations lists the requester's affiliations (XEP-0060 §5.7).
func (e *engine) affiliations(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	node := req.Attr("node")
	out := xmlstream.NewElement(NS, "affiliations")
	if node != "" {
		out.SetAttr("node", node)
	}
	add := func(n, a string) {
		if node == "" || n == node {
			out.AppendChild(xmlstream.NewElement(NS, "affiliation").SetAttr("node", n).SetAttr("affiliation", a))
		}
	}
	if e.pep && c.from.Bare() == c.service {
		nodes, err := c.st.ListPubSubNodes(c.ctx, c.service.String())
		if err != nil {
			return nil, modules.BackendError(err)
		}
		for _, n := range nodes {
			add(n.Node, "owner")
		}
	} else {
		affs, err := c.st.GetPubSubAffiliations(c.ctx, c.service.String(), "", c.from.Bare().String())
		if err != nil {
			return nil, modules.BackendError(err)
		}
		for _, a := range affs {
			add(a.Node, a.Affiliation)
		}
	}
	return xmlstream.NewElement(NS, "pubsub").AppendChild(out), nil
}

// defaultConfig returns the default node configuration (XEP-0060 §8.3).
func (e *engine) defaultConfig(req *xmlstream.Element, ns string) (*xmlstream.Element, *stanza.Error) {
	d := xmlstream.NewElement(ns, "default").AppendChild(defaultConfig(e.pep, e.lim).xform("form"))
	return xmlstream.NewElement(ns, "pubsub").AppendChild(d), nil
}

// owned loads a node the requester must own.
func (e *engine) owned(c *call, el *xmlstream.Element) (string, nodeConfig, *stanza.Error) {
	name, serr := nodeName(el)
	if serr != nil {
		return "", nil, serr
	}
	_, cfg, serr := e.node(c, name)
	if serr != nil {
		return "", nil, serr
	}
	aff, serr := e.affiliation(c, name, c.from)
	if serr != nil {
		return "", nil, serr
	}
	if aff != "owner" {
		return "", nil, stanza.ErrForbidden.WithText("only the node's owner may do this")
	}
	return name, cfg, nil
}

func (e *engine) configureGet(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, cfg, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	conf := xmlstream.NewElement(NSOwner, "configure").SetAttr("node", name).AppendChild(cfg.xform("form"))
	return xmlstream.NewElement(NSOwner, "pubsub").AppendChild(conf), nil
}

// configureSet applies a submitted configuration (XEP-0060 §8.2.4).
func (e *engine) configureSet(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, cfg, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	f, err := parseForm(req.Child(NSData, "x"))
	if err != nil {
		return nil, stanza.ErrBadRequest.WithText("configuration form: " + err.Error())
	}
	if f.typ == "cancel" {
		return nil, nil
	}
	if f.typ != "submit" || (f.formType != "" && f.formType != NSNodeConfig) {
		return nil, stanza.ErrBadRequest.WithText("want a submitted " + NSNodeConfig + " form")
	}
	next, cerr := cfg.apply(f, e.lim)
	if cerr != nil {
		return nil, e.configErr(cerr)
	}
	if serr := e.checkModel(next); serr != nil {
		return nil, serr
	}
	if err := c.st.ConfigurePubSubNode(c.ctx, sdk.PubSubNode{Service: c.service.String(), Node: name, Config: next}); err != nil {
		return nil, modules.BackendError(err)
	}
	if next.maxItems() < cfg.maxItems() {
		e.trim(c, name, next.maxItems())
	}
	if next.bool(fNotifyConfig) {
		ev := xmlstream.NewElement(NSEvent, "configuration").SetAttr("node", name)
		e.broadcast(c, name, next, ev)
	}
	return nil, nil
}

// trim drops the items beyond a lowered max_items at once, rather than at
// the next publish.
func (e *engine) trim(c *call, name string, keep int) {
	page, err := c.st.GetPubSubItems(c.ctx, sdk.PubSubItemQuery{Service: c.service.String(), Node: name, Max: sdk.MaxPubSubPage})
	if err != nil {
		e.log.Warn("items beyond max_items not trimmed", "service", c.service.String(), "node", name, "error", err)
		return
	}
	for i := keep; i < len(page.Items); i++ {
		if err := c.st.RetractPubSubItem(c.ctx, c.service.String(), name, page.Items[i].ID); err != nil && !errors.Is(err, sdk.ErrNotFound) {
			e.log.Warn("item beyond max_items not trimmed", "service", c.service.String(), "node", name, "error", err)
		}
	}
}

// deleteNode deletes a node (XEP-0060 §8.4).
func (e *engine) deleteNode(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, cfg, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	to := e.recipients(c, name, cfg)
	if err := c.st.DeletePubSubNode(c.ctx, c.service.String(), name); err != nil {
		return nil, modules.BackendError(err)
	}
	if cfg.bool(fNotifyDelete) {
		e.deliver(c.ctx, c.service, to, xmlstream.NewElement(NSEvent, "delete").SetAttr("node", name))
	}
	return nil, nil
}

// purge deletes every item of a node (XEP-0060 §8.5).
func (e *engine) purge(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, cfg, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	if err := c.st.PurgePubSubNode(c.ctx, c.service.String(), name); err != nil {
		return nil, modules.BackendError(err)
	}
	if cfg.bool(fNotifyRetract) {
		e.broadcast(c, name, cfg, xmlstream.NewElement(NSEvent, "purge").SetAttr("node", name))
	}
	return nil, nil
}

func (e *engine) ownerSubscriptions(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, _, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	subs, err := c.st.GetPubSubSubscriptions(c.ctx, c.service.String(), name, "")
	if err != nil {
		return nil, modules.BackendError(err)
	}
	out := xmlstream.NewElement(NSOwner, "subscriptions").SetAttr("node", name)
	for _, s := range subs {
		el := xmlstream.NewElement(NSOwner, "subscription").SetAttr("jid", s.JID).SetAttr("subscription", s.State)
		if s.SubID != "" {
			el.SetAttr("subid", s.SubID)
		}
		out.AppendChild(el)
	}
	return xmlstream.NewElement(NSOwner, "pubsub").AppendChild(out), nil
}

// ownerSetSubscriptions changes subscriptions (XEP-0060 §8.8.2): all are
// checked before any is stored.
func (e *engine) ownerSetSubscriptions(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, _, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	existing, err := c.st.GetPubSubSubscriptions(c.ctx, c.service.String(), name, "")
	if err != nil {
		return nil, modules.BackendError(err)
	}
	var changes []sdk.PubSubSubscription
	for _, el := range req.Elements() {
		if el.Local != "subscription" {
			continue
		}
		j, err := jid.Parse(el.Attr("jid"))
		if err != nil {
			return nil, stanza.ErrJIDMalformed
		}
		state := el.Attr("subscription")
		if state != "subscribed" && state != "none" {
			return nil, stanza.ErrNotAcceptable.WithText("subscription state must be subscribed or none")
		}
		s := sdk.PubSubSubscription{Service: c.service.String(), Node: name, JID: j.String(), SubID: el.Attr("subid"), State: state}
		matched := false
		for _, x := range existing {
			if x.JID == s.JID && (s.SubID == "" || s.SubID == x.SubID) {
				x.State = state
				changes = append(changes, x)
				matched = true
			}
		}
		if !matched && state == "subscribed" {
			if s.SubID == "" {
				s.SubID = newID()
			}
			changes = append(changes, s)
		}
	}
	for _, s := range changes {
		if err := c.st.SetPubSubSubscription(c.ctx, s); err != nil {
			return nil, modules.BackendError(err)
		}
	}
	return nil, nil
}

func (e *engine) ownerAffiliations(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, _, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	affs, err := c.st.GetPubSubAffiliations(c.ctx, c.service.String(), name, "")
	if err != nil {
		return nil, modules.BackendError(err)
	}
	out := xmlstream.NewElement(NSOwner, "affiliations").SetAttr("node", name)
	for _, a := range affs {
		out.AppendChild(xmlstream.NewElement(NSOwner, "affiliation").SetAttr("jid", a.JID).SetAttr("affiliation", a.Affiliation))
	}
	return xmlstream.NewElement(NSOwner, "pubsub").AppendChild(out), nil
}

// ownerSetAffiliations changes affiliations (XEP-0060 §8.9.2): all are
// checked before any is stored; an owner cannot give up the last
// ownership, nor the PEP owner theirs.
func (e *engine) ownerSetAffiliations(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, _, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	current, err := c.st.GetPubSubAffiliations(c.ctx, c.service.String(), name, "")
	if err != nil {
		return nil, modules.BackendError(err)
	}
	owners := map[string]bool{}
	for _, a := range current {
		if a.Affiliation == "owner" {
			owners[a.JID] = true
		}
	}
	var changes []sdk.PubSubAffiliation
	for _, el := range req.Elements() {
		if el.Local != "affiliation" {
			continue
		}
		j, err := jid.Parse(el.Attr("jid"))
		if err != nil {
			return nil, stanza.ErrJIDMalformed
		}
		j = j.Bare()
		a := el.Attr("affiliation")
		switch a {
		case "owner", "publisher", "publish-only", "member", "outcast", "none":
		default:
			return nil, stanza.ErrNotAcceptable.WithText("unknown affiliation " + a)
		}
		if e.pep && j == c.service {
			return nil, stanza.ErrNotAcceptable.WithText("the account owns its PEP nodes")
		}
		if e.pep && a == "owner" {
			return nil, stanza.ErrNotAcceptable.WithText("a PEP node has one owner, its account")
		}
		if a == "owner" {
			owners[j.String()] = true
		} else {
			delete(owners, j.String())
		}
		changes = append(changes, sdk.PubSubAffiliation{Service: c.service.String(), Node: name, JID: j.String(), Affiliation: a})
	}
	if !e.pep && len(owners) == 0 {
		return nil, stanza.ErrNotAcceptable.WithText("a node keeps at least one owner")
	}
	for _, a := range changes {
		if err := c.st.SetPubSubAffiliation(c.ctx, a); err != nil {
			return nil, modules.BackendError(err)
		}
	}
	return nil, nil
}
