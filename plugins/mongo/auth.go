package mongobackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/koi-im/koi/sdk"
)

// Accounts, one document each: passwords are never stored, only SCRAM
// credentials for SHA-1 and SHA-256 (CheckPassword verifies against the
// SHA-256 ones). Every change is one document's, so atomic everywhere: a
// second CreateUser of a name hits the _id, SetPassword and DeleteUser
// match by _id.

type userDoc struct {
	ID      string              `bson:"_id"`
	Host    string              `bson:"host"`
	User    string              `bson:"user"`
	Created time.Time           `bson:"created"`
	SCRAM   map[string]scramDoc `bson:"scram"`
}

type scramDoc struct {
	Salt       []byte `bson:"salt"`
	Iterations int    `bson:"iterations"`
	StoredKey  []byte `bson:"stored_key"`
	ServerKey  []byte `bson:"server_key"`
}

// scramKeys maps the sdk's hash names to field names (BSON keys cannot
// hold every character a name might).
var scramKeys = map[string]string{sdk.HashSHA1: "sha1", sdk.HashSHA256: "sha256"}

func userKey(host, user string) string { return docKey(host, user) }

func (s *Store) iterations() int {
	if s.set.SCRAMIterations > 0 {
		return s.set.SCRAMIterations
	}
	return sdk.DefaultSCRAMIterations
}

// credentials derives the stored credentials for password.
func (s *Store) credentials(password string) (map[string]scramDoc, error) {
	out := map[string]scramDoc{}
	for name, key := range scramKeys {
		c, err := sdk.NewSCRAMCredentials(password, name, s.iterations())
		if err != nil {
			return nil, err
		}
		out[key] = scramDoc{Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}
	}
	return out, nil
}

func (s *Store) findUser(ctx context.Context, host, user string) (userDoc, error) {
	var d userDoc
	err := s.users.FindOne(ctx, bson.D{{Key: "_id", Value: userKey(host, user)}}).Decode(&d)
	return d, err
}

// UserExists reports whether the account exists.
func (s *Store) UserExists(ctx context.Context, host, user string) (bool, error) {
	const op = "auth.UserExists"
	if err := checkAll(checkKey("host", host), checkKey("user", user)); err != nil {
		return false, s.fail(op, err)
	}
	_, err := s.findUser(ctx, host, user)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	return err == nil, s.fail(op, err)
}

// CheckPassword verifies password; an unknown user is a wrong password.
func (s *Store) CheckPassword(ctx context.Context, host, user, password string) (bool, error) {
	c, err := s.SCRAMCredentials(ctx, host, user, sdk.HashSHA256)
	if errors.Is(err, sdk.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("auth.CheckPassword: %w", err)
	}
	return sdk.CheckSCRAMPassword(password, sdk.HashSHA256, c), nil
}

// SCRAMCredentials returns the stored credentials for hash, or
// sdk.ErrNotFound for an unknown user.
func (s *Store) SCRAMCredentials(ctx context.Context, host, user, hash string) (sdk.SCRAMCredentials, error) {
	const op = "auth.SCRAMCredentials"
	if err := checkAll(checkKey("host", host), checkKey("user", user)); err != nil {
		return sdk.SCRAMCredentials{}, s.fail(op, err)
	}
	key, ok := scramKeys[hash]
	if !ok {
		return sdk.SCRAMCredentials{}, s.fail(op, fmt.Errorf("%w: unknown SCRAM hash %q", sdk.ErrInvalid, hash))
	}
	d, err := s.findUser(ctx, host, user)
	if err != nil {
		return sdk.SCRAMCredentials{}, s.fail(op, err)
	}
	c, ok := d.SCRAM[key]
	if !ok {
		return sdk.SCRAMCredentials{}, s.fail(op, fmt.Errorf("no %s credentials for %s@%s: %w", hash, user, host, sdk.ErrNotFound))
	}
	return sdk.SCRAMCredentials{Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}, nil
}

// CreateUser creates the account, or returns sdk.ErrExists.
func (s *Store) CreateUser(ctx context.Context, host, user, password string) error {
	const op = "auth.CreateUser"
	if err := checkAll(checkKey("host", host), checkKey("user", user)); err != nil {
		return s.fail(op, err)
	}
	creds, err := s.credentials(password)
	if err != nil {
		return s.fail(op, err)
	}
	_, err = s.users.InsertOne(ctx, userDoc{ID: userKey(host, user), Host: host, User: user, Created: time.Now().UTC(), SCRAM: creds})
	if mongo.IsDuplicateKeyError(err) {
		return s.fail(op, fmt.Errorf("user %s@%s: %w", user, host, sdk.ErrExists))
	}
	return s.fail(op, err)
}

// SetPassword replaces the account's credentials, or returns
// sdk.ErrNotFound.
func (s *Store) SetPassword(ctx context.Context, host, user, password string) error {
	const op = "auth.SetPassword"
	if err := checkAll(checkKey("host", host), checkKey("user", user)); err != nil {
		return s.fail(op, err)
	}
	creds, err := s.credentials(password)
	if err != nil {
		return s.fail(op, err)
	}
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: userKey(host, user)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "scram", Value: creds}}}})
	if err != nil {
		return s.fail(op, err)
	}
	if res.MatchedCount == 0 {
		return s.fail(op, fmt.Errorf("user %s@%s: %w", user, host, sdk.ErrNotFound))
	}
	return nil
}

// DeleteUser removes the account, or returns sdk.ErrNotFound. The other
// features' data go with RemoveAccountData in the core.
func (s *Store) DeleteUser(ctx context.Context, host, user string) error {
	const op = "auth.DeleteUser"
	if err := checkAll(checkKey("host", host), checkKey("user", user)); err != nil {
		return s.fail(op, err)
	}
	res, err := s.users.DeleteOne(ctx, bson.D{{Key: "_id", Value: userKey(host, user)}})
	if err != nil {
		return s.fail(op, err)
	}
	if res.DeletedCount == 0 {
		return s.fail(op, fmt.Errorf("user %s@%s: %w", user, host, sdk.ErrNotFound))
	}
	return nil
}

// ListUsers returns the host's accounts, sorted.
func (s *Store) ListUsers(ctx context.Context, host string) ([]string, error) {
	const op = "auth.ListUsers"
	if err := checkKey("host", host); err != nil {
		return nil, s.fail(op, err)
	}
	var docs []struct {
		User string `bson:"user"`
	}
	err := findAll(ctx, s.users, bson.D{{Key: "host", Value: host}},
		options.Find().SetSort(bson.D{{Key: "user", Value: 1}}).SetProjection(bson.D{{Key: "user", Value: 1}}), &docs)
	if err != nil {
		return nil, s.fail(op, err)
	}
	out := make([]string, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.User)
	}
	return out, nil
}
