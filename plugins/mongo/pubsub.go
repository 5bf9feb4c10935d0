package mongobackend

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/koi-im/koi/sdk"
)

// Publish-subscribe nodes (XEP-0060) and PEP (XEP-0163), in four
// collections. A node document carries uid, an id made up at creation that
// its items, affiliations and subscriptions are filed under. Without
// transactions that is what keeps a node's changes atomic as seen by
// readers: a node is created by writing its owner's affiliation under the
// new uid and then the node document, and deleted by removing the node
// document first; whatever a crash leaves under an old uid is never read
// again, and a node created anew under the name starts empty. Within the
// plugin, the work on one node is serialised by a lock, so a publish and
// the trim to the node's max items that follows it are not interleaved
// with another; as for rosters, two koi processes on one database are not
// serialised with each other.
//
// Items are ordered by published (Unix microseconds), then seq, a counter
// in the node document bumped by each publish. Forms (config, options) are
// arrays of {k, v} pairs: a field var may hold dots, which a document key
// may not.

type formField struct {
	K string   `bson:"k"`
	V []string `bson:"v"`
}

type pubsubNodeDoc struct {
	ID      string      `bson:"_id"`
	UID     string      `bson:"uid"`
	Service string      `bson:"service"`
	Node    string      `bson:"node"`
	Config  []formField `bson:"config,omitempty"`
	Created int64       `bson:"created"`
	Seq     int64       `bson:"seq"`
}

type pubsubItemDoc struct {
	ID        string `bson:"_id"`
	UID       string `bson:"uid"`
	ItemID    string `bson:"id"`
	Publisher string `bson:"publisher"`
	Payload   string `bson:"payload"`
	Published int64  `bson:"published"`
	Seq       int64  `bson:"seq"`
}

type pubsubAffDoc struct {
	ID          string `bson:"_id"`
	UID         string `bson:"uid"`
	Service     string `bson:"service"`
	Node        string `bson:"node"`
	JID         string `bson:"jid"`
	Affiliation string `bson:"aff"`
}

type pubsubSubDoc struct {
	ID      string      `bson:"_id"`
	UID     string      `bson:"uid"`
	Service string      `bson:"service"`
	Node    string      `bson:"node"`
	JID     string      `bson:"jid"`
	SubID   string      `bson:"subid"`
	Bare    string      `bson:"bare"`
	State   string      `bson:"state"`
	Options []formField `bson:"options,omitempty"`
}

// pubsubLocks serialises the work on one node within the process.
type pubsubLocks struct {
	once  sync.Once
	seed  maphash.Seed
	locks [64]sync.Mutex
}

func (l *pubsubLocks) lock(service, node string) func() {
	l.once.Do(func() { l.seed = maphash.MakeSeed() })
	m := &l.locks[maphash.String(l.seed, docKey(service, node))%uint64(len(l.locks))]
	m.Lock()
	return m.Unlock
}

func formToDoc(f map[string][]string) []formField {
	if len(f) == 0 {
		return nil
	}
	out := make([]formField, 0, len(f))
	for k, v := range f {
		out = append(out, formField{K: k, V: slices.Clone(v)})
	}
	slices.SortFunc(out, func(a, b formField) int { return strings.Compare(a.K, b.K) })
	return out
}

func formFromDoc(f []formField) map[string][]string {
	if len(f) == 0 {
		return nil
	}
	out := make(map[string][]string, len(f))
	for _, kv := range f {
		out[kv.K] = kv.V
	}
	return out
}

func checkForm(field string, f map[string][]string) error {
	for k, vs := range f {
		if err := checkText(field+" field", k); err != nil {
			return err
		}
		for _, v := range vs {
			if err := checkText(field+" value", v); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkServiceNode(service, node string) error {
	return checkAll(checkKey("service", service), checkKey("node", node))
}

func checkStamp(field string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("%w: %s is not set", sdk.ErrInvalid, field)
	}
	return nil
}

func bareJID(jid string) string {
	b, _, _ := strings.Cut(jid, "/")
	return b
}

func newUID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func byID(id string) bson.D   { return bson.D{{Key: "_id", Value: id}} }
func byUID(uid string) bson.D { return bson.D{{Key: "uid", Value: uid}} }

// pubsubNode reads a node document; ErrNotFound if there is none.
func (s *Store) pubsubNode(ctx context.Context, service, node string) (pubsubNodeDoc, error) {
	var d pubsubNodeDoc
	err := s.psNodes.FindOne(ctx, byID(docKey(service, node))).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return d, fmt.Errorf("%w: no pubsub node %q at %s", sdk.ErrNotFound, node, service)
	}
	return d, err
}

func (d pubsubNodeDoc) sdk() sdk.PubSubNode {
	return sdk.PubSubNode{Service: d.Service, Node: d.Node, Config: formFromDoc(d.Config), Created: time.UnixMicro(d.Created).UTC()}
}

// GetPubSubNode returns one node.
func (s *Store) GetPubSubNode(ctx context.Context, service, node string) (sdk.PubSubNode, error) {
	const op = "pubsub.GetNode"
	if err := checkServiceNode(service, node); err != nil {
		return sdk.PubSubNode{}, s.fail(op, err)
	}
	d, err := s.pubsubNode(ctx, service, node)
	if err != nil {
		return sdk.PubSubNode{}, s.fail(op, err)
	}
	return d.sdk(), nil
}

// ListPubSubNodes returns the service's nodes in byte order of their names.
func (s *Store) ListPubSubNodes(ctx context.Context, service string) ([]sdk.PubSubNode, error) {
	const op = "pubsub.ListNodes"
	if err := checkKey("service", service); err != nil {
		return nil, s.fail(op, err)
	}
	docs, err := s.serviceNodes(ctx, service)
	if err != nil {
		return nil, s.fail(op, err)
	}
	out := make([]sdk.PubSubNode, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.sdk())
	}
	slices.SortFunc(out, func(a, b sdk.PubSubNode) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

func (s *Store) serviceNodes(ctx context.Context, service string) ([]pubsubNodeDoc, error) {
	var docs []pubsubNodeDoc
	err := findAll(ctx, s.psNodes, bson.D{{Key: "service", Value: service}}, options.Find(), &docs)
	return docs, err
}

func itemFromDoc(d pubsubItemDoc) sdk.PubSubItem {
	return sdk.PubSubItem{ID: d.ItemID, Publisher: d.Publisher, Payload: d.Payload, Published: time.UnixMicro(d.Published).UTC()}
}

// GetPubSubItems returns a page of a node's items, newest first.
func (s *Store) GetPubSubItems(ctx context.Context, q sdk.PubSubItemQuery) (sdk.PubSubItemPage, error) {
	const op = "pubsub.GetItems"
	if err := checkServiceNode(q.Service, q.Node); err != nil {
		return sdk.PubSubItemPage{}, s.fail(op, err)
	}
	if q.Max < 0 || q.Max > sdk.MaxPubSubPage || len(q.IDs) > sdk.MaxPubSubPage {
		return sdk.PubSubItemPage{}, s.fail(op, fmt.Errorf("%w: max %d with %d ids (limit %d)", sdk.ErrInvalid, q.Max, len(q.IDs), sdk.MaxPubSubPage))
	}
	defer s.psLocks.lock(q.Service, q.Node)()
	n, err := s.pubsubNode(ctx, q.Service, q.Node)
	if err != nil {
		return sdk.PubSubItemPage{}, s.fail(op, err)
	}
	count, err := s.psItems.CountDocuments(ctx, byUID(n.UID))
	if err != nil {
		return sdk.PubSubItemPage{}, s.fail(op, err)
	}
	page := sdk.PubSubItemPage{Count: int(count)}
	var docs []pubsubItemDoc
	if len(q.IDs) > 0 {
		keys := make([]string, 0, len(q.IDs))
		for _, id := range q.IDs {
			keys = append(keys, docKey(n.UID, id))
		}
		err = findAll(ctx, s.psItems, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}}, options.Find(), &docs)
		if err != nil {
			return sdk.PubSubItemPage{}, s.fail(op, err)
		}
		slices.SortFunc(docs, newestFirst)
		page.Complete = true
	} else if docs, page.Complete, err = s.pubsubPage(ctx, n.UID, q); err != nil {
		return sdk.PubSubItemPage{}, s.fail(op, err)
	}
	for _, d := range docs {
		page.Items = append(page.Items, itemFromDoc(d))
	}
	return page, nil
}

func newestFirst(a, b pubsubItemDoc) int {
	return cmp.Or(cmp.Compare(b.Published, a.Published), cmp.Compare(b.Seq, a.Seq))
}

// pubsubCursor reads the item a page starts or ends at.
func (s *Store) pubsubCursor(ctx context.Context, uid, id string) (pubsubItemDoc, error) {
	var d pubsubItemDoc
	err := s.psItems.FindOne(ctx, byID(docKey(uid, id))).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return d, fmt.Errorf("%w: no item %q in the node", sdk.ErrNotFound, id)
	}
	return d, err
}

// beyond is the filter of items after c in direction op ("$lt": older,
// "$gt": newer).
func beyond(op string, c pubsubItemDoc) bson.D {
	return bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "published", Value: bson.D{{Key: op, Value: c.Published}}}},
		bson.D{{Key: "published", Value: c.Published}, {Key: "seq", Value: bson.D{{Key: op, Value: c.Seq}}}},
	}}}
}

// pubsubPage reads one page between the cursors; one item more than Max
// tells whether the window goes on.
func (s *Store) pubsubPage(ctx context.Context, uid string, q sdk.PubSubItemQuery) ([]pubsubItemDoc, bool, error) {
	conds := bson.A{byUID(uid)}
	if q.After != "" {
		c, err := s.pubsubCursor(ctx, uid, q.After)
		if err != nil {
			return nil, false, err
		}
		conds = append(conds, beyond("$lt", c))
	}
	if q.Before != "" {
		c, err := s.pubsubCursor(ctx, uid, q.Before)
		if err != nil {
			return nil, false, err
		}
		conds = append(conds, beyond("$gt", c))
	}
	dir := -1
	if q.Before != "" {
		dir = 1
	}
	o := options.Find().SetSort(bson.D{{Key: "published", Value: dir}, {Key: "seq", Value: dir}}).SetLimit(int64(q.Max + 1))
	var docs []pubsubItemDoc
	if err := findAll(ctx, s.psItems, bson.D{{Key: "$and", Value: conds}}, o, &docs); err != nil {
		return nil, false, err
	}
	complete := len(docs) <= q.Max
	docs = docs[:min(len(docs), q.Max)]
	if q.Before != "" {
		slices.Reverse(docs)
	}
	return docs, complete, nil
}

func checkLookup(service, node, jid string) error {
	if err := checkKey("service", service); err != nil {
		return err
	}
	if node == "" && jid == "" {
		return fmt.Errorf("%w: neither a node nor a JID", sdk.ErrInvalid)
	}
	if node != "" {
		if err := checkKey("node", node); err != nil {
			return err
		}
	}
	if jid != "" {
		return checkKey("jid", jid)
	}
	return nil
}

// liveUIDs returns the uids of the service's nodes: documents filed under
// another uid belong to a deleted node.
func (s *Store) liveUIDs(ctx context.Context, service string) (map[string]bool, error) {
	docs, err := s.serviceNodes(ctx, service)
	if err != nil {
		return nil, err
	}
	live := make(map[string]bool, len(docs))
	for _, d := range docs {
		live[d.UID] = true
	}
	return live, nil
}

// GetPubSubAffiliations returns a node's affiliations by JID, or a JID's
// on the service's nodes by node.
func (s *Store) GetPubSubAffiliations(ctx context.Context, service, node, jid string) ([]sdk.PubSubAffiliation, error) {
	const op = "pubsub.GetAffiliations"
	if err := checkLookup(service, node, jid); err != nil {
		return nil, s.fail(op, err)
	}
	var docs []pubsubAffDoc
	if node != "" {
		defer s.psLocks.lock(service, node)()
		n, err := s.pubsubNode(ctx, service, node)
		if err != nil {
			return nil, s.fail(op, err)
		}
		filter := byUID(n.UID)
		if jid != "" {
			filter = byID(docKey(n.UID, jid))
		}
		if err := findAll(ctx, s.psAffs, filter, options.Find(), &docs); err != nil {
			return nil, s.fail(op, err)
		}
	} else {
		live, err := s.liveUIDs(ctx, service)
		if err != nil {
			return nil, s.fail(op, err)
		}
		if err := findAll(ctx, s.psAffs, bson.D{{Key: "jid", Value: jid}, {Key: "service", Value: service}}, options.Find(), &docs); err != nil {
			return nil, s.fail(op, err)
		}
		docs = slices.DeleteFunc(docs, func(d pubsubAffDoc) bool { return !live[d.UID] })
	}
	out := make([]sdk.PubSubAffiliation, 0, len(docs))
	for _, d := range docs {
		out = append(out, sdk.PubSubAffiliation{Service: d.Service, Node: d.Node, JID: d.JID, Affiliation: d.Affiliation})
	}
	slices.SortFunc(out, func(a, b sdk.PubSubAffiliation) int {
		return cmp.Or(strings.Compare(a.Node, b.Node), strings.Compare(a.JID, b.JID))
	})
	return out, nil
}

// GetPubSubSubscriptions returns a node's subscriptions, or a JID's (by its
// bare JID) on the service's nodes.
func (s *Store) GetPubSubSubscriptions(ctx context.Context, service, node, jid string) ([]sdk.PubSubSubscription, error) {
	const op = "pubsub.GetSubscriptions"
	if err := checkLookup(service, node, jid); err != nil {
		return nil, s.fail(op, err)
	}
	var docs []pubsubSubDoc
	if node != "" {
		defer s.psLocks.lock(service, node)()
		n, err := s.pubsubNode(ctx, service, node)
		if err != nil {
			return nil, s.fail(op, err)
		}
		filter := byUID(n.UID)
		if jid != "" {
			filter = append(filter, bson.E{Key: "bare", Value: bareJID(jid)})
		}
		if err := findAll(ctx, s.psSubs, filter, options.Find(), &docs); err != nil {
			return nil, s.fail(op, err)
		}
	} else {
		live, err := s.liveUIDs(ctx, service)
		if err != nil {
			return nil, s.fail(op, err)
		}
		if err := findAll(ctx, s.psSubs, bson.D{{Key: "bare", Value: bareJID(jid)}, {Key: "service", Value: service}}, options.Find(), &docs); err != nil {
			return nil, s.fail(op, err)
		}
		docs = slices.DeleteFunc(docs, func(d pubsubSubDoc) bool { return !live[d.UID] })
	}
	out := make([]sdk.PubSubSubscription, 0, len(docs))
	for _, d := range docs {
		out = append(out, sdk.PubSubSubscription{Service: d.Service, Node: d.Node, JID: d.JID, SubID: d.SubID, State: d.State,
			Options: formFromDoc(d.Options)})
	}
	slices.SortFunc(out, func(a, b sdk.PubSubSubscription) int {
		return cmp.Or(strings.Compare(a.Node, b.Node), strings.Compare(a.JID, b.JID), strings.Compare(a.SubID, b.SubID))
	})
	return out, nil
}

// CreatePubSubNode creates the node with its owner's affiliation.
func (s *Store) CreatePubSubNode(ctx context.Context, n sdk.PubSubNode, owner string) error {
	const op = "pubsub.CreateNode"
	if err := checkAll(checkServiceNode(n.Service, n.Node), checkKey("owner", owner),
		checkForm("config", n.Config), checkStamp("created", n.Created)); err != nil {
		return s.fail(op, err)
	}
	uid, err := newUID()
	if err != nil {
		return s.fail(op, err)
	}
	defer s.psLocks.lock(n.Service, n.Node)()
	// The affiliation first: without its node it is never read.
	aff := pubsubAffDoc{ID: docKey(uid, owner), UID: uid, Service: n.Service, Node: n.Node, JID: owner, Affiliation: sdk.PubSubOwner}
	if _, err := s.psAffs.InsertOne(ctx, aff); err != nil {
		return s.fail(op, err)
	}
	doc := pubsubNodeDoc{ID: docKey(n.Service, n.Node), UID: uid, Service: n.Service, Node: n.Node,
		Config: formToDoc(n.Config), Created: n.Created.UnixMicro()}
	if _, err := s.psNodes.InsertOne(ctx, doc); err != nil {
		if _, derr := s.psAffs.DeleteOne(ctx, byID(aff.ID)); derr != nil {
			s.log.Debug("removing the affiliation of a node not created", "error", derr)
		}
		return s.fail(op, err)
	}
	return nil
}

// ConfigurePubSubNode replaces the node's config.
func (s *Store) ConfigurePubSubNode(ctx context.Context, n sdk.PubSubNode) error {
	const op = "pubsub.ConfigureNode"
	if err := checkAll(checkServiceNode(n.Service, n.Node), checkForm("config", n.Config)); err != nil {
		return s.fail(op, err)
	}
	defer s.psLocks.lock(n.Service, n.Node)()
	set := bson.D{{Key: "$set", Value: bson.D{{Key: "config", Value: formToDoc(n.Config)}}}}
	if len(n.Config) == 0 {
		set = bson.D{{Key: "$unset", Value: bson.D{{Key: "config", Value: ""}}}}
	}
	res, err := s.psNodes.UpdateOne(ctx, byID(docKey(n.Service, n.Node)), set)
	if err != nil {
		return s.fail(op, err)
	}
	if res.MatchedCount == 0 {
		return s.fail(op, fmt.Errorf("%w: no pubsub node %q at %s", sdk.ErrNotFound, n.Node, n.Service))
	}
	return nil
}

// DeletePubSubNode removes the node document, then what was filed under
// its uid.
func (s *Store) DeletePubSubNode(ctx context.Context, service, node string) error {
	const op = "pubsub.DeleteNode"
	if err := checkServiceNode(service, node); err != nil {
		return s.fail(op, err)
	}
	defer s.psLocks.lock(service, node)()
	n, err := s.pubsubNode(ctx, service, node)
	if err != nil {
		return s.fail(op, err)
	}
	if _, err := s.psNodes.DeleteOne(ctx, bson.D{{Key: "_id", Value: n.ID}, {Key: "uid", Value: n.UID}}); err != nil {
		return s.fail(op, err)
	}
	for _, c := range []*mongo.Collection{s.psItems, s.psAffs, s.psSubs} {
		if _, err := c.DeleteMany(ctx, byUID(n.UID)); err != nil {
			// The node is gone; the rest is never read again.
			s.log.Warn("deleting what a deleted pubsub node left", "collection", c.Name(), "error", err)
		}
	}
	return nil
}

// PublishPubSubItem stores it, replacing the item with its id, and trims
// the node to maxItems.
func (s *Store) PublishPubSubItem(ctx context.Context, service, node string, it sdk.PubSubItem, maxItems int) error {
	const op = "pubsub.Publish"
	if err := checkAll(checkServiceNode(service, node), checkKey("item id", it.ID), checkText("publisher", it.Publisher),
		checkText("payload", it.Payload), checkStamp("published", it.Published)); err != nil {
		return s.fail(op, err)
	}
	switch {
	case maxItems < 0:
		return s.fail(op, fmt.Errorf("%w: max items %d", sdk.ErrInvalid, maxItems))
	case len(it.Payload) > sdk.MaxPubSubPayload:
		return s.fail(op, fmt.Errorf("%w: payload of %d bytes, the limit is %d", sdk.ErrInvalid, len(it.Payload), sdk.MaxPubSubPayload))
	}
	defer s.psLocks.lock(service, node)()
	var n pubsubNodeDoc
	err := s.psNodes.FindOneAndUpdate(ctx, byID(docKey(service, node)),
		bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(1)}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&n)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return s.fail(op, fmt.Errorf("%w: no pubsub node %q at %s", sdk.ErrNotFound, node, service))
	}
	if err != nil {
		return s.fail(op, err)
	}
	doc := pubsubItemDoc{ID: docKey(n.UID, it.ID), UID: n.UID, ItemID: it.ID, Publisher: it.Publisher, Payload: it.Payload,
		Published: it.Published.UnixMicro(), Seq: n.Seq}
	if err := put(ctx, s.psItems, doc.ID, doc); err != nil {
		return s.fail(op, err)
	}
	if maxItems == 0 {
		return nil
	}
	return s.fail(op, s.trimPubSubNode(ctx, n.UID, maxItems))
}

// trimPubSubNode deletes the node's items beyond the newest max.
func (s *Store) trimPubSubNode(ctx context.Context, uid string, max int) error {
	var docs []struct {
		ID string `bson:"_id"`
	}
	o := options.Find().SetSort(bson.D{{Key: "published", Value: -1}, {Key: "seq", Value: -1}}).
		SetSkip(int64(max)).SetProjection(bson.D{{Key: "_id", Value: 1}})
	if err := findAll(ctx, s.psItems, byUID(uid), o, &docs); err != nil {
		return err
	}
	if len(docs) == 0 {
		return nil
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	_, err := s.psItems.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	return err
}

// RetractPubSubItem deletes one item.
func (s *Store) RetractPubSubItem(ctx context.Context, service, node, id string) error {
	const op = "pubsub.Retract"
	if err := checkAll(checkServiceNode(service, node), checkKey("item id", id)); err != nil {
		return s.fail(op, err)
	}
	defer s.psLocks.lock(service, node)()
	n, err := s.pubsubNode(ctx, service, node)
	if err != nil {
		return s.fail(op, err)
	}
	res, err := s.psItems.DeleteOne(ctx, byID(docKey(n.UID, id)))
	if err != nil {
		return s.fail(op, err)
	}
	if res.DeletedCount == 0 {
		return s.fail(op, fmt.Errorf("%w: no item %q in node %q", sdk.ErrNotFound, id, node))
	}
	return nil
}

// PurgePubSubNode deletes every item of the node.
func (s *Store) PurgePubSubNode(ctx context.Context, service, node string) error {
	const op = "pubsub.Purge"
	if err := checkServiceNode(service, node); err != nil {
		return s.fail(op, err)
	}
	defer s.psLocks.lock(service, node)()
	n, err := s.pubsubNode(ctx, service, node)
	if err != nil {
		return s.fail(op, err)
	}
	_, err = s.psItems.DeleteMany(ctx, byUID(n.UID))
	return s.fail(op, err)
}

// SetPubSubAffiliation stores or ("none") removes an affiliation.
func (s *Store) SetPubSubAffiliation(ctx context.Context, a sdk.PubSubAffiliation) error {
	const op = "pubsub.SetAffiliation"
	if err := checkAll(checkServiceNode(a.Service, a.Node), checkKey("jid", a.JID)); err != nil {
		return s.fail(op, err)
	}
	if !sdk.ValidPubSubAffiliation(a.Affiliation) {
		return s.fail(op, fmt.Errorf("%w: affiliation %q", sdk.ErrInvalid, a.Affiliation))
	}
	defer s.psLocks.lock(a.Service, a.Node)()
	n, err := s.pubsubNode(ctx, a.Service, a.Node)
	if err != nil {
		return s.fail(op, err)
	}
	id := docKey(n.UID, a.JID)
	if a.Affiliation == sdk.PubSubNone {
		_, err := s.psAffs.DeleteOne(ctx, byID(id))
		return s.fail(op, err)
	}
	doc := pubsubAffDoc{ID: id, UID: n.UID, Service: a.Service, Node: a.Node, JID: a.JID, Affiliation: a.Affiliation}
	return s.fail(op, put(ctx, s.psAffs, id, doc))
}

// SetPubSubSubscription stores or ("none") removes a subscription.
func (s *Store) SetPubSubSubscription(ctx context.Context, sub sdk.PubSubSubscription) error {
	const op = "pubsub.SetSubscription"
	errs := []error{checkServiceNode(sub.Service, sub.Node), checkKey("jid", sub.JID), checkForm("options", sub.Options)}
	if sub.SubID != "" {
		errs = append(errs, checkText("subid", sub.SubID))
	}
	if err := checkAll(errs...); err != nil {
		return s.fail(op, err)
	}
	if !sdk.ValidPubSubSubscriptionState(sub.State) {
		return s.fail(op, fmt.Errorf("%w: subscription state %q", sdk.ErrInvalid, sub.State))
	}
	defer s.psLocks.lock(sub.Service, sub.Node)()
	n, err := s.pubsubNode(ctx, sub.Service, sub.Node)
	if err != nil {
		return s.fail(op, err)
	}
	id := docKey(n.UID, sub.JID, sub.SubID)
	if sub.State == sdk.PubSubNone {
		_, err := s.psSubs.DeleteOne(ctx, byID(id))
		return s.fail(op, err)
	}
	doc := pubsubSubDoc{ID: id, UID: n.UID, Service: sub.Service, Node: sub.Node, JID: sub.JID, SubID: sub.SubID,
		Bare: bareJID(sub.JID), State: sub.State, Options: formToDoc(sub.Options)}
	return s.fail(op, put(ctx, s.psSubs, id, doc))
}
