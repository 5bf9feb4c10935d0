package mongobackend

import (
	"context"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// blockDoc is one blocked JID (XEP-0191); its _id makes (owner, jid)
// unique, so a repeated Block is a duplicate key, not a second document.
type blockDoc struct {
	ID    string `bson:"_id"`
	Owner string `bson:"owner"`
	JID   string `bson:"jid"`
}

// GetBlocklist returns the owner's blocked JIDs in byte order.
func (s *Store) GetBlocklist(ctx context.Context, owner string) ([]string, error) {
	const op = "blocklist.Get"
	if err := checkKey("owner", owner); err != nil {
		return nil, s.fail(op, err)
	}
	cur, err := s.blocklist.Find(ctx, bson.D{{Key: "owner", Value: owner}})
	if err != nil {
		return nil, s.fail(op, err)
	}
	var docs []blockDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, s.fail(op, err)
	}
	list := make([]string, len(docs))
	for i, d := range docs {
		list[i] = d.JID
	}
	// Sorted here: the server's sort order is its collation's, the
	// contract's is Go's.
	slices.Sort(list)
	return list, nil
}

// Block adds jids to the owner's list. There is no transaction: a failure
// may leave some added, which a retry of the idempotent call completes.
func (s *Store) Block(ctx context.Context, owner string, jids []string) error {
	const op = "blocklist.Block"
	if err := checkBlockJIDs(owner, jids); err != nil {
		return s.fail(op, err)
	}
	for _, j := range jids {
		_, err := s.blocklist.InsertOne(ctx, blockDoc{ID: docKey(owner, j), Owner: owner, JID: j})
		if err != nil && !mongo.IsDuplicateKeyError(err) {
			return s.fail(op, err)
		}
	}
	return nil
}

// Unblock removes jids from the owner's list; absent ones are fine.
func (s *Store) Unblock(ctx context.Context, owner string, jids []string) error {
	const op = "blocklist.Unblock"
	if err := checkBlockJIDs(owner, jids); err != nil {
		return s.fail(op, err)
	}
	if len(jids) == 0 {
		return nil
	}
	ids := make([]string, len(jids))
	for i, j := range jids {
		ids[i] = docKey(owner, j)
	}
	_, err := s.blocklist.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	return s.fail(op, err)
}

// UnblockAll empties the owner's list.
func (s *Store) UnblockAll(ctx context.Context, owner string) error {
	const op = "blocklist.UnblockAll"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	_, err := s.blocklist.DeleteMany(ctx, bson.D{{Key: "owner", Value: owner}})
	return s.fail(op, err)
}

func checkBlockJIDs(owner string, jids []string) error {
	errs := []error{checkKey("owner", owner)}
	for _, j := range jids {
		errs = append(errs, checkKey("jid", j))
	}
	return checkAll(errs...)
}
