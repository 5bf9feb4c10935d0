package mongobackend

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/koi-im/koi/sdk"
)

// A roster is three kinds of documents: one per item (roster_items), one
// per pending inbound request (roster_pending), and a version counter
// (roster_versions) that counts changes of items (XEP-0237); pending
// requests do not change it. Items are separate documents so that a change
// writes one item, not the whole roster: rosters of thousands of contacts
// exist.
//
// Without transactions, a roster's documents cannot change together
// atomically. Changes and reads of one roster are therefore serialised
// within the plugin, which serves the whole server (a batch that changes
// two rosters, journaled so that a crash cannot leave half of it, is in
// rosterbatch.go); between processes
// (two koi servers on one database) a reader could see an item a moment
// before its version, or the version a moment before its item.

type rosterItem struct {
	ID           string   `bson:"_id"`
	Owner        string   `bson:"owner"`
	JID          string   `bson:"jid"`
	Name         string   `bson:"name,omitempty"`
	Subscription string   `bson:"sub"`
	Ask          bool     `bson:"ask,omitempty"`
	Approved     bool     `bson:"approved,omitempty"`
	Groups       []string `bson:"groups,omitempty"`
	// Txn is the journal entry of the batch that wrote the document, until
	// another write replaces it (rosterbatch.go).
	Txn string `bson:"txn,omitempty"`
}

type pendingDoc struct {
	ID     string `bson:"_id"`
	Owner  string `bson:"owner"`
	JID    string `bson:"jid"`
	Stanza string `bson:"stanza"`
	Txn    string `bson:"txn,omitempty"`
}

type versionDoc struct {
	Owner   string `bson:"_id"`
	Version int64  `bson:"version"`
}

// rosterLocks serialises the work on one roster within the process.
type rosterLocks struct {
	seed  maphash.Seed
	locks [64]sync.Mutex
}

func (l *rosterLocks) lock(owner string) func() {
	m := &l.locks[l.stripe(owner)]
	m.Lock()
	return m.Unlock
}

func (l *rosterLocks) stripe(owner string) int {
	return int(maphash.String(l.seed, owner) % uint64(len(l.locks)))
}

// lockAll locks the rosters of owners, stripes in index order so that two
// batches over the same rosters cannot wait for each other.
func (l *rosterLocks) lockAll(owners []string) func() {
	var stripes []int
	for _, o := range owners {
		stripes = append(stripes, l.stripe(o))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		l.locks[i].Lock()
	}
	return func() {
		for _, i := range stripes {
			l.locks[i].Unlock()
		}
	}
}

// docKey is the _id of a document keyed by several strings. Lookups by
// _id are the ones every server answers from an index; FerretDB on SQLite
// scans the collection for any other filter.
func docKey(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "%d:%s;", len(p), p)
	}
	return b.String()
}

func ownerJID(owner, jid string) bson.D {
	return bson.D{{Key: "_id", Value: docKey(owner, jid)}}
}

// GetRoster returns the owner's roster; an unknown owner has an empty one
// at version "0".
func (s *Store) GetRoster(ctx context.Context, owner string) (sdk.RosterState, error) {
	const op = "roster.Get"
	if err := checkKey("owner", owner); err != nil {
		return sdk.RosterState{}, s.fail(op, err)
	}
	defer s.rosterLocks.lock(owner)()
	var v versionDoc
	err := s.rosterVersions.FindOne(ctx, bson.D{{Key: "_id", Value: owner}}).Decode(&v)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return sdk.RosterState{}, s.fail(op, err)
	}
	st := sdk.RosterState{Version: strconv.FormatInt(v.Version, 10)}
	byOwner := bson.D{{Key: "owner", Value: owner}}
	sorted := options.Find().SetSort(bson.D{{Key: "jid", Value: 1}})
	var items []rosterItem
	if err := findAll(ctx, s.rosterItems, byOwner, sorted, &items); err != nil {
		return sdk.RosterState{}, s.fail(op, err)
	}
	for _, it := range items {
		st.Items = append(st.Items, sdk.RosterItem{
			JID: it.JID, Name: it.Name, Subscription: it.Subscription, Ask: it.Ask, Approved: it.Approved,
			Groups: it.Groups,
		})
	}
	var pend []pendingDoc
	if err := findAll(ctx, s.rosterPending, byOwner, sorted, &pend); err != nil {
		return sdk.RosterState{}, s.fail(op, err)
	}
	for _, p := range pend {
		st.Pending = append(st.Pending, sdk.PendingSubscription{JID: p.JID, Stanza: p.Stanza})
	}
	return st, nil
}

func findAll(ctx context.Context, c *mongo.Collection, filter bson.D, o *options.FindOptionsBuilder, out any) error {
	cur, err := c.Find(ctx, filter, o)
	if err != nil {
		return err
	}
	return cur.All(ctx, out)
}

// bumpVersion adds one to the owner's roster version and returns it.
func (s *Store) bumpVersion(ctx context.Context, owner string) (string, error) {
	var v versionDoc
	err := s.rosterVersions.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: owner}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: int64(1)}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&v)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(v.Version, 10), nil
}

func checkItem(owner string, it sdk.RosterItem) error {
	switch it.Subscription {
	case sdk.SubNone, sdk.SubTo, sdk.SubFrom, sdk.SubBoth:
	default:
		return fmt.Errorf("%w: subscription %q", sdk.ErrInvalid, it.Subscription)
	}
	errs := []error{checkKey("owner", owner), checkKey("contact", it.JID), checkText("name", it.Name)}
	for _, g := range it.Groups {
		errs = append(errs, checkText("group", g))
	}
	return checkAll(errs...)
}

// SetItem creates or replaces the item for item.JID.
func (s *Store) SetItem(ctx context.Context, owner string, item sdk.RosterItem) (string, error) {
	const op = "roster.SetItem"
	if err := checkItem(owner, item); err != nil {
		return "", s.fail(op, err)
	}
	defer s.rosterLocks.lock(owner)()
	doc := rosterItem{ID: docKey(owner, item.JID), Owner: owner, JID: item.JID, Name: item.Name, Subscription: item.Subscription, Ask: item.Ask,
		Approved: item.Approved, Groups: slices.Clone(item.Groups)}
	if err := put(ctx, s.rosterItems, doc.ID, doc); err != nil {
		return "", s.fail(op, err)
	}
	v, err := s.bumpVersion(ctx, owner)
	return v, s.fail(op, err)
}

// DeleteItem removes the item for contact, or returns sdk.ErrNotFound.
func (s *Store) DeleteItem(ctx context.Context, owner, contact string) (string, error) {
	const op = "roster.DeleteItem"
	if err := checkAll(checkKey("owner", owner), checkKey("contact", contact)); err != nil {
		return "", s.fail(op, err)
	}
	defer s.rosterLocks.lock(owner)()
	res, err := s.rosterItems.DeleteOne(ctx, ownerJID(owner, contact))
	if err != nil {
		return "", s.fail(op, err)
	}
	if res.DeletedCount == 0 {
		return "", s.fail(op, fmt.Errorf("roster item %s: %w", contact, sdk.ErrNotFound))
	}
	v, err := s.bumpVersion(ctx, owner)
	return v, s.fail(op, err)
}

// SetPending records or replaces a pending inbound subscription; it does
// not change the roster version.
func (s *Store) SetPending(ctx context.Context, owner string, p sdk.PendingSubscription) error {
	const op = "roster.SetPending"
	if err := checkAll(checkKey("owner", owner), checkKey("contact", p.JID), checkText("stanza", p.Stanza)); err != nil {
		return s.fail(op, err)
	}
	defer s.rosterLocks.lock(owner)()
	doc := pendingDoc{ID: docKey(owner, p.JID), Owner: owner, JID: p.JID, Stanza: p.Stanza}
	return s.fail(op, put(ctx, s.rosterPending, doc.ID, doc))
}

// DeletePending forgets a pending inbound subscription; absent is fine.
func (s *Store) DeletePending(ctx context.Context, owner, contact string) error {
	const op = "roster.DeletePending"
	if err := checkAll(checkKey("owner", owner), checkKey("contact", contact)); err != nil {
		return s.fail(op, err)
	}
	defer s.rosterLocks.lock(owner)()
	_, err := s.rosterPending.DeleteOne(ctx, ownerJID(owner, contact))
	return s.fail(op, err)
}

// DeleteRoster removes the owner's roster; absent is fine.
func (s *Store) DeleteRoster(ctx context.Context, owner string) error {
	const op = "roster.Delete"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	defer s.rosterLocks.lock(owner)()
	byOwner := bson.D{{Key: "owner", Value: owner}}
	if _, err := s.rosterItems.DeleteMany(ctx, byOwner); err != nil {
		return s.fail(op, err)
	}
	if _, err := s.rosterPending.DeleteMany(ctx, byOwner); err != nil {
		return s.fail(op, err)
	}
	_, err := s.rosterVersions.DeleteOne(ctx, bson.D{{Key: "_id", Value: owner}})
	return s.fail(op, err)
}
