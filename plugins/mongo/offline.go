package mongobackend

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/koi-im/koi/sdk"
)

// offlineDoc is one waiting message. Its ObjectID _id orders the queue:
// the plugin generates ids, whose counter increases within the process.
type offlineDoc struct {
	ID     bson.ObjectID `bson:"_id"`
	Owner  string        `bson:"owner"`
	Stanza string        `bson:"stanza"`
	// Stamp is Unix microseconds: BSON dates stop at milliseconds, and
	// XEP-0203 stamps may carry more.
	Stamp int64 `bson:"stamp"`
}

// Store appends a message to owner's queue.
func (s *Store) Store(ctx context.Context, owner string, msg sdk.OfflineMessage) error {
	const op = "offline.Store"
	if err := checkAll(checkKey("owner", owner), checkText("stanza", msg.Stanza)); err != nil {
		return s.fail(op, err)
	}
	_, err := s.offline.InsertOne(ctx, offlineDoc{ID: bson.NewObjectID(), Owner: owner, Stanza: msg.Stanza, Stamp: msg.Stamp.UnixMicro()})
	return s.fail(op, err)
}

// Count returns how many messages wait for owner.
func (s *Store) Count(ctx context.Context, owner string) (int, error) {
	const op = "offline.Count"
	if err := checkKey("owner", owner); err != nil {
		return 0, s.fail(op, err)
	}
	n, err := s.offline.CountDocuments(ctx, bson.D{{Key: "owner", Value: owner}})
	return int(n), s.fail(op, err)
}

// Pop returns owner's messages in arrival order and deletes them. Without
// transactions, and on servers whose multi-document updates are not atomic
// with their filter (FerretDB), the one reliable arbiter is a delete by _id:
// of two Pops that read the same message, only one deletes it, and only
// that one returns it. A message stored meanwhile waits for the next Pop.
func (s *Store) Pop(ctx context.Context, owner string) ([]sdk.OfflineMessage, error) {
	const op = "offline.Pop"
	if err := checkKey("owner", owner); err != nil {
		return nil, s.fail(op, err)
	}
	cur, err := s.offline.Find(ctx, bson.D{{Key: "owner", Value: owner}}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, s.fail(op, err)
	}
	var docs []offlineDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, s.fail(op, err)
	}
	out := make([]sdk.OfflineMessage, 0, len(docs))
	for _, d := range docs {
		res, err := s.offline.DeleteOne(ctx, bson.D{{Key: "_id", Value: d.ID}})
		if err != nil {
			// The messages taken so far are deleted: they must be
			// returned, or they are lost. The rest waits.
			if len(out) > 0 {
				s.log.Warn("offline Pop stopped early", "owner", owner, "error", err)
				return out, nil
			}
			return nil, s.fail(op, err)
		}
		if res.DeletedCount == 1 {
			out = append(out, sdk.OfflineMessage{Stanza: d.Stanza, Stamp: time.UnixMicro(d.Stamp).UTC()})
		}
	}
	return out, nil
}

// DeleteAll removes every message of owner.
func (s *Store) DeleteAll(ctx context.Context, owner string) error {
	const op = "offline.DeleteAll"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	_, err := s.offline.DeleteMany(ctx, bson.D{{Key: "owner", Value: owner}})
	return s.fail(op, err)
}
