package mongobackend

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/koi-im/koi/sdk"
)

type vcardDoc struct {
	Owner string `bson:"_id"`
	XML   string `bson:"xml"`
}

// GetVCard returns the owner's vCard, or sdk.ErrNotFound.
func (s *Store) GetVCard(ctx context.Context, owner string) (string, error) {
	const op = "vcard.Get"
	if err := checkKey("owner", owner); err != nil {
		return "", s.fail(op, err)
	}
	var d vcardDoc
	if err := s.vcards.FindOne(ctx, bson.D{{Key: "_id", Value: owner}}).Decode(&d); err != nil {
		return "", s.fail(op, err)
	}
	return d.XML, nil
}

// SetVCard stores or replaces the owner's vCard.
func (s *Store) SetVCard(ctx context.Context, owner, vcard string) error {
	const op = "vcard.Set"
	if err := checkAll(checkKey("owner", owner), checkText("vcard", vcard)); err != nil {
		return s.fail(op, err)
	}
	return s.fail(op, put(ctx, s.vcards, owner, vcardDoc{Owner: owner, XML: vcard}))
}

// DeleteVCard removes the owner's vCard, or returns sdk.ErrNotFound.
func (s *Store) DeleteVCard(ctx context.Context, owner string) error {
	const op = "vcard.Delete"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	res, err := s.vcards.DeleteOne(ctx, bson.D{{Key: "_id", Value: owner}})
	if err != nil {
		return s.fail(op, err)
	}
	if res.DeletedCount == 0 {
		return s.fail(op, fmt.Errorf("vcard of %s: %w", owner, sdk.ErrNotFound))
	}
	return nil
}
