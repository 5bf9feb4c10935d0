package sdk

import (
	"context"
	"time"
)

// MaxPubSubPage is the largest PubSubItemQuery.Max a backend must serve,
// and the most IDs a PubSubItemQuery may name.
const MaxPubSubPage = 1000

// MaxPubSubPayload is the largest PubSubItem.Payload, in bytes, that a
// backend must store and that the plugin wire carries (one gRPC message
// holds one item; pages are streamed in chunks). The SDK refuses a larger
// one with ErrInvalid on both ends of the wire; the core's own limit (the
// stanza size) is normally far lower.
const MaxPubSubPayload = 2 << 20

// Affiliations with a node (XEP-0060 §4.1). PubSubNone is never stored:
// setting it removes the affiliation.
const (
	PubSubOwner       = "owner"
	PubSubPublisher   = "publisher"
	PubSubPublishOnly = "publish-only"
	PubSubMember      = "member"
	PubSubOutcast     = "outcast"
	PubSubNone        = "none"
)

// Subscription states (XEP-0060 §4.2). PubSubNone is never stored either:
// setting it removes the subscription.
const (
	PubSubSubscribed   = "subscribed"
	PubSubPending      = "pending"
	PubSubUnconfigured = "unconfigured"
)

// ValidPubSubAffiliation reports whether a is an affiliation a backend
// accepts in SetPubSubAffiliation (PubSubNone included).
func ValidPubSubAffiliation(a string) bool {
	switch a {
	case PubSubOwner, PubSubPublisher, PubSubPublishOnly, PubSubMember, PubSubOutcast, PubSubNone:
		return true
	}
	return false
}

// ValidPubSubSubscriptionState reports whether s is a state a backend
// accepts in SetPubSubSubscription (PubSubNone included).
func ValidPubSubSubscriptionState(s string) bool {
	switch s {
	case PubSubSubscribed, PubSubPending, PubSubUnconfigured, PubSubNone:
		return true
	}
	return false
}

// PubSubNode is one publish-subscribe node (XEP-0060). Service names the
// node's home: an account's bare JID for PEP (XEP-0163), the service's
// domain (pubsub.example.org) for a pubsub service. Node is the node's name
// within the service.
type PubSubNode struct {
	Service string
	Node    string
	// Config holds the node's configuration as form values keyed by field
	// var (pubsub#access_model, pubsub#max_items, ...). The core validates
	// and fills in defaults; a backend stores the map as it is and returns
	// it unchanged (a field's values in their order). An empty map may
	// come back nil, and a field without values with a nil slice.
	Config map[string][]string
	// Created is when the node was created, in UTC, to the millisecond;
	// the core sets it (zero is ErrInvalid).
	Created time.Time
}

// PubSubItem is one published item.
type PubSubItem struct {
	// ID is the item's id, unique within its node (the core makes one up
	// when the publisher gave none).
	ID string
	// Publisher is the JID that published the item.
	Publisher string
	// Payload is the item's serialised XML payload (one element), or ""
	// for an item without one.
	Payload string
	// Published is when the item was (last) published, in UTC, to the
	// millisecond; the core sets it (zero is ErrInvalid).
	Published time.Time
}

// PubSubAffiliation is a JID's affiliation with a node: "owner",
// "publisher", "publish-only", "member" or "outcast" ("none" is never
// stored).
type PubSubAffiliation struct {
	Service     string
	Node        string
	JID         string
	Affiliation string
}

// PubSubSubscription is a JID's subscription to a node. JID is the
// subscribed JID, bare or full as the subscriber asked; SubID tells apart
// several subscriptions of one JID to one node.
type PubSubSubscription struct {
	Service string
	Node    string
	JID     string
	// SubID may be "" for the one subscription of a JID that has no
	// subid (XEP-0060 §6.1.6).
	SubID string
	// State is "subscribed", "pending" or "unconfigured" ("none" is never
	// stored).
	State string
	// Options holds the subscription options form values
	// (pubsub#deliver, pubsub#include_body, ...), nil for the defaults
	// (an empty map may come back nil).
	Options map[string][]string
}

// PubSubItemQuery selects items of one node. Items are ordered newest
// first (by Published, then by the order of publication for equal
// stamps); a page is a slice of that order.
type PubSubItemQuery struct {
	Service string
	Node    string
	// IDs, if not empty, returns just these items (those that exist, each
	// once), in the newest-first order, with Complete true; After, Before
	// and Max are then ignored. More than MaxPubSubPage IDs is ErrInvalid.
	IDs []string
	// After, if not empty, starts the page right after the item with this
	// ID (an older item); Before ends it right before that item (newer
	// items), taking the Max items closest to it. With both, the page lies
	// between the two items. An ID that is not in the node is ErrNotFound.
	After, Before string
	// Max is the page size, 0 to MaxPubSubPage (else ErrInvalid); 0
	// returns no items (useful for Count).
	Max int
}

// PubSubItemPage is one page of a node's items.
type PubSubItemPage struct {
	// Items are newest first.
	Items []PubSubItem
	// Count is the number of items in the node.
	Count int
	// Complete is true when no item older than the page's last one is left
	// (for a Before query: no newer item than the page's first one), within
	// the bounds After and Before set; for an empty page, none beyond the
	// bound it starts from.
	Complete bool
}

// PubSub reads publish-subscribe nodes (XEP-0060, XEP-0163). Services and
// JIDs are normalised by the core, and compared byte for byte; "sorted"
// means in Go's string order. An empty service, node (where one is
// required), item ID or JID is ErrInvalid.
type PubSub interface {
	// GetPubSubNode returns one node; ErrNotFound if it does not exist.
	GetPubSubNode(ctx context.Context, service, node string) (PubSubNode, error)
	// ListPubSubNodes returns the service's nodes sorted by name; none is
	// an empty list, not an error.
	ListPubSubNodes(ctx context.Context, service string) ([]PubSubNode, error)
	// GetPubSubItems returns a page of a node's items; ErrNotFound if the
	// node does not exist.
	GetPubSubItems(ctx context.Context, q PubSubItemQuery) (PubSubItemPage, error)
	// GetPubSubAffiliations returns a node's affiliations sorted by JID
	// (node != ""; ErrNotFound if the node does not exist; only jid's, if
	// jid != ""), or every affiliation of jid on the service's nodes
	// sorted by node (node == "", jid != ""; none is an empty list). Both
	// empty is ErrInvalid.
	GetPubSubAffiliations(ctx context.Context, service, node, jid string) ([]PubSubAffiliation, error)
	// GetPubSubSubscriptions returns a node's subscriptions sorted by JID
	// then SubID (node != ""; ErrNotFound if the node does not exist; only
	// those of jid's bare JID, if jid != ""), or every subscription of jid
	// (its bare JID matching the subscriptions' JIDs' bare part) on the
	// service's nodes sorted by node, JID and SubID (node == "", jid !=
	// ""; none is an empty list). Both empty is ErrInvalid.
	GetPubSubSubscriptions(ctx context.Context, service, node, jid string) ([]PubSubSubscription, error)
}

// PubSubWriter changes publish-subscribe nodes. Each call is atomic: a
// failure leaves nothing half-changed.
type PubSubWriter interface {
	// CreatePubSubNode creates n and makes owner (a bare JID, required)
	// its "owner" in the same transaction; ErrExists if the node exists.
	CreatePubSubNode(ctx context.Context, n PubSubNode, owner string) error
	// ConfigurePubSubNode replaces the node's Config; ErrNotFound if the
	// node does not exist.
	ConfigurePubSubNode(ctx context.Context, n PubSubNode) error
	// DeletePubSubNode removes the node with its items, affiliations and
	// subscriptions; ErrNotFound if it does not exist.
	DeletePubSubNode(ctx context.Context, service, node string) error
	// PublishPubSubItem stores it in the node, replacing an item with the
	// same ID (which becomes the newest), then, if maxItems > 0, deletes
	// the oldest items beyond maxItems, all in one transaction, so that
	// concurrent publishers never leave more than maxItems behind (the
	// core passes the node's pubsub#max_items; a negative maxItems is
	// ErrInvalid). ErrNotFound if the node does not exist; a payload over
	// MaxPubSubPayload is ErrInvalid.
	PublishPubSubItem(ctx context.Context, service, node string, it PubSubItem, maxItems int) error
	// RetractPubSubItem deletes one item; ErrNotFound if the node or the
	// item does not exist.
	RetractPubSubItem(ctx context.Context, service, node, id string) error
	// PurgePubSubNode deletes every item of the node; ErrNotFound if the
	// node does not exist.
	PurgePubSubNode(ctx context.Context, service, node string) error
	// SetPubSubAffiliation stores a.Affiliation for a.JID, or removes it
	// when a.Affiliation is "none" (absent is not an error); ErrNotFound if
	// the node does not exist, ErrInvalid for an affiliation that
	// ValidPubSubAffiliation refuses.
	SetPubSubAffiliation(ctx context.Context, a PubSubAffiliation) error
	// SetPubSubSubscription stores s (replacing the one with the same JID
	// and SubID), or removes it when s.State is "none" (absent is not an
	// error); ErrNotFound if the node does not exist, ErrInvalid for a
	// state that ValidPubSubSubscriptionState refuses.
	SetPubSubSubscription(ctx context.Context, s PubSubSubscription) error
}
