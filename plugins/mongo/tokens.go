package mongobackend

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/koi-im/koi/sdk"
)

// tokenDoc is one FAST token (XEP-0484); its _id makes (owner, agent,
// hash) unique. Expires is kept as a date, to the millisecond.
type tokenDoc struct {
	ID        string    `bson:"_id"`
	Owner     string    `bson:"owner"`
	Agent     string    `bson:"agent"`
	Hash      []byte    `bson:"hash"`
	Salt      []byte    `bson:"salt"`
	Mechanism string    `bson:"mechanism"`
	Expires   time.Time `bson:"expires"`
}

func tokenKey(owner, agent string, hash []byte) string {
	return docKey(owner, agent, hex.EncodeToString(hash))
}

// GetTokens returns the owner's tokens for agent, newest expiry first.
func (s *Store) GetTokens(ctx context.Context, owner, agent string) ([]sdk.Token, error) {
	const op = "tokens.Get"
	if err := checkAll(checkKey("owner", owner), checkKey("agent", agent)); err != nil {
		return nil, s.fail(op, err)
	}
	cur, err := s.tokens.Find(ctx, bson.D{{Key: "owner", Value: owner}, {Key: "agent", Value: agent}})
	if err != nil {
		return nil, s.fail(op, err)
	}
	var docs []tokenDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, s.fail(op, err)
	}
	out := make([]sdk.Token, len(docs))
	for i, d := range docs {
		out[i] = sdk.Token{Owner: d.Owner, Agent: d.Agent, Hash: d.Hash, Salt: d.Salt, Mechanism: d.Mechanism, Expires: d.Expires.UTC()}
	}
	slices.SortStableFunc(out, func(a, b sdk.Token) int { return b.Expires.Compare(a.Expires) })
	return out, nil
}

// PutToken stores t, replacing a token with the same hash.
func (s *Store) PutToken(ctx context.Context, t sdk.Token) error {
	const op = "tokens.Put"
	if err := checkAll(checkKey("owner", t.Owner), checkKey("agent", t.Agent)); err != nil {
		return s.fail(op, err)
	}
	if len(t.Hash) != 32 {
		return s.fail(op, fmt.Errorf("%w: a token hash is 32 bytes, not %d", sdk.ErrInvalid, len(t.Hash)))
	}
	id := tokenKey(t.Owner, t.Agent, t.Hash)
	doc := tokenDoc{ID: id, Owner: t.Owner, Agent: t.Agent, Hash: t.Hash, Salt: t.Salt, Mechanism: t.Mechanism, Expires: t.Expires}
	return s.fail(op, put(ctx, s.tokens, id, doc))
}

// DeleteToken removes one token; an absent one is fine.
func (s *Store) DeleteToken(ctx context.Context, owner, agent string, hash []byte) error {
	const op = "tokens.Delete"
	if err := checkAll(checkKey("owner", owner), checkKey("agent", agent)); err != nil {
		return s.fail(op, err)
	}
	_, err := s.tokens.DeleteOne(ctx, bson.D{{Key: "_id", Value: tokenKey(owner, agent, hash)}})
	return s.fail(op, err)
}

// DeleteTokens removes every token of owner.
func (s *Store) DeleteTokens(ctx context.Context, owner string) error {
	const op = "tokens.DeleteAll"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	_, err := s.tokens.DeleteMany(ctx, bson.D{{Key: "owner", Value: owner}})
	return s.fail(op, err)
}
