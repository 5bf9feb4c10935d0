package mongobackend

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
)

type privateDoc struct {
	ID    string `bson:"_id"`
	Owner string `bson:"owner"`
	NS    string `bson:"ns"`
	Name  string `bson:"name"`
	XML   string `bson:"xml"`
}

func privateKey(owner, name, namespace string) bson.D {
	return bson.D{{Key: "_id", Value: docKey(owner, namespace, name)}}
}

// GetPrivate returns the element stored under (name, namespace), or
// sdk.ErrNotFound.
func (s *Store) GetPrivate(ctx context.Context, owner, name, namespace string) (string, error) {
	const op = "private.Get"
	if err := checkAll(checkKey("owner", owner), checkKey("name", name), checkKey("namespace", namespace)); err != nil {
		return "", s.fail(op, err)
	}
	var d privateDoc
	if err := s.private.FindOne(ctx, privateKey(owner, name, namespace)).Decode(&d); err != nil {
		return "", s.fail(op, err)
	}
	return d.XML, nil
}

// SetPrivate stores or replaces the element under (name, namespace).
func (s *Store) SetPrivate(ctx context.Context, owner, name, namespace, xml string) error {
	const op = "private.Set"
	if err := checkAll(checkKey("owner", owner), checkKey("name", name), checkKey("namespace", namespace), checkText("xml", xml)); err != nil {
		return s.fail(op, err)
	}
	doc := privateDoc{ID: docKey(owner, namespace, name), Owner: owner, NS: namespace, Name: name, XML: xml}
	return s.fail(op, put(ctx, s.private, doc.ID, doc))
}

// DeletePrivate removes every element the owner stored; absent is fine.
func (s *Store) DeletePrivate(ctx context.Context, owner string) error {
	const op = "private.Delete"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	_, err := s.private.DeleteMany(ctx, bson.D{{Key: "owner", Value: owner}})
	return s.fail(op, err)
}
