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
// keeps them in memory (sdk/memory) until koi stops.
package pubsub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"hash/maphash"
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
