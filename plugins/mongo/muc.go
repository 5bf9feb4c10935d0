package mongobackend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/koi-im/koi/sdk"
)

// Persistent MUC rooms (XEP-0045) without transactions, which FerretDB
// lacks. A room is one document, so a put is atomic. Its affiliations are
// documents of their own (a room with a long ban list would make one
// document huge, and rewriting it for each change slow), tied to the
// room's incarnation: a room gets a fresh gen when it is created, and only
// affiliations written with the current gen count. So deleting a room is
// atomic too (its document goes, and with it every affiliation of that
// gen, whatever a crash leaves behind), a change racing with a delete
// lands in the deleted incarnation, never in a room made again under the
// same JID, and a room made again starts without affiliations.

// mucRoomDoc is one room; _id is its bare JID.
type mucRoomDoc struct {
	ID        string        `bson:"_id"`
	Service   string        `bson:"service"`
	Gen       string        `bson:"gen"`
	Config    []mucFieldDoc `bson:"config"`
	Subject   string        `bson:"subject"`
	SubjectBy string        `bson:"subject_by"`
	// Created is a BSON date: milliseconds, as the contract asks.
	Created time.Time `bson:"created"`
}

// mucFieldDoc is one config field. Field vars are not document keys: a
// var may hold dots or start with $, which MongoDB keys cannot.
type mucFieldDoc struct {
	Var    string   `bson:"var"`
	Values []string `bson:"values"`
}

// mucAffDoc is one affiliation; _id is (room, gen, jid).
type mucAffDoc struct {
	ID          string `bson:"_id"`
	Room        string `bson:"room"`
	Gen         string `bson:"gen"`
	JID         string `bson:"jid"`
	Affiliation string `bson:"affiliation"`
	Nick        string `bson:"nick"`
	Reason      string `bson:"reason"`
}

func (d mucRoomDoc) room() sdk.MUCRoom {
	r := sdk.MUCRoom{Room: d.ID, Subject: d.Subject, SubjectBy: d.SubjectBy, Created: d.Created.UTC(),
		Config: make(map[string][]string, len(d.Config))}
	for _, f := range d.Config {
		r.Config[f.Var] = f.Values
	}
	return r
}

// mucFields turns a config into its documents, sorted by var.
func mucFields(cfg map[string][]string) []mucFieldDoc {
	out := make([]mucFieldDoc, 0, len(cfg))
	for k, v := range cfg {
		if v == nil {
			v = []string{}
		}
		out = append(out, mucFieldDoc{Var: k, Values: v})
	}
	slices.SortFunc(out, func(a, b mucFieldDoc) int { return strings.Compare(a.Var, b.Var) })
	return out
}

// GetMUCRoom returns one stored room or sdk.ErrNotFound.
func (s *Store) GetMUCRoom(ctx context.Context, room string) (sdk.MUCRoom, error) {
	const op = "muc.GetRoom"
	if err := checkMUCRoomJID(room); err != nil {
		return sdk.MUCRoom{}, s.fail(op, err)
	}
	var d mucRoomDoc
	if err := s.mucRooms.FindOne(ctx, bson.D{{Key: "_id", Value: room}}).Decode(&d); err != nil {
		return sdk.MUCRoom{}, s.fail(op, err)
	}
	return d.room(), nil
}

// ListMUCRooms returns the rooms of service in byte order of their JIDs.
func (s *Store) ListMUCRooms(ctx context.Context, service string) ([]sdk.MUCRoom, error) {
	const op = "muc.ListRooms"
	if err := checkKey("service", service); err != nil {
		return nil, s.fail(op, err)
	}
	cur, err := s.mucRooms.Find(ctx, bson.D{{Key: "service", Value: service}})
	if err != nil {
		return nil, s.fail(op, err)
	}
	var docs []mucRoomDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, s.fail(op, err)
	}
	out := make([]sdk.MUCRoom, len(docs))
	for i, d := range docs {
		out[i] = d.room()
	}
	// Sorted here: the server's order is its collation's, the contract's
	// is Go's.
	slices.SortFunc(out, func(a, b sdk.MUCRoom) int { return strings.Compare(a.Room, b.Room) })
	return out, nil
}

// roomGen returns the current incarnation of a stored room, or
// sdk.ErrNotFound.
func (s *Store) roomGen(ctx context.Context, room string) (string, error) {
	var d struct {
		Gen string `bson:"gen"`
	}
	err := s.mucRooms.FindOne(ctx, bson.D{{Key: "_id", Value: room}},
		options.FindOne().SetProjection(bson.D{{Key: "gen", Value: 1}})).Decode(&d)
	if err != nil {
		return "", err
	}
	return d.Gen, nil
}

// GetMUCAffiliations returns the room's affiliations in byte order of JID;
// a room that is not stored has none.
func (s *Store) GetMUCAffiliations(ctx context.Context, room string) ([]sdk.MUCAffiliation, error) {
	const op = "muc.GetAffiliations"
	if err := checkMUCRoomJID(room); err != nil {
		return nil, s.fail(op, err)
	}
	gen, err := s.roomGen(ctx, room)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return []sdk.MUCAffiliation{}, nil
	}
	if err != nil {
		return nil, s.fail(op, err)
	}
	cur, err := s.mucAffs.Find(ctx, bson.D{{Key: "room", Value: room}, {Key: "gen", Value: gen}})
	if err != nil {
		return nil, s.fail(op, err)
	}
	var docs []mucAffDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, s.fail(op, err)
	}
	out := make([]sdk.MUCAffiliation, len(docs))
	for i, d := range docs {
		out[i] = sdk.MUCAffiliation{Room: d.Room, JID: d.JID, Affiliation: d.Affiliation, Nick: d.Nick, Reason: d.Reason}
	}
	slices.SortFunc(out, func(a, b sdk.MUCAffiliation) int { return strings.Compare(a.JID, b.JID) })
	return out, nil
}

// PutMUCRoom creates the room (a new incarnation) or replaces its config
// and subject, keeping Created and gen: an insert first, which FerretDB
// does fast and which tells a creation from a change, then an update.
func (s *Store) PutMUCRoom(ctx context.Context, r sdk.MUCRoom) error {
	const op = "muc.PutRoom"
	if err := sdk.CheckMUCRoom(r); err != nil {
		return s.fail(op, err)
	}
	service, _ := sdk.MUCService(r.Room)
	errs := []error{checkKey("room", r.Room), checkText("subject", r.Subject), checkText("subject_by", r.SubjectBy)}
	for k, vs := range r.Config {
		errs = append(errs, checkText("config var", k))
		for _, v := range vs {
			errs = append(errs, checkText("config value of "+k, v))
		}
	}
	if err := checkAll(errs...); err != nil {
		return s.fail(op, err)
	}
	fields := mucFields(r.Config)
	for range 3 {
		gen := bson.NewObjectID().Hex()
		_, err := s.mucRooms.InsertOne(ctx, mucRoomDoc{ID: r.Room, Service: service, Gen: gen, Config: fields,
			Subject: r.Subject, SubjectBy: r.SubjectBy, Created: r.Created})
		if err == nil {
			// Affiliations of an earlier incarnation that a crash left
			// behind are never read; this only tidies up.
			if _, err := s.mucAffs.DeleteMany(ctx, bson.D{{Key: "room", Value: r.Room}, {Key: "gen", Value: bson.D{{Key: "$ne", Value: gen}}}}); err != nil {
				s.log.Debug("removing affiliations of an earlier room", "room", r.Room, "error", err)
			}
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return s.fail(op, err)
		}
		res, err := s.mucRooms.UpdateOne(ctx, bson.D{{Key: "_id", Value: r.Room}}, bson.D{{Key: "$set", Value: bson.D{
			{Key: "config", Value: fields}, {Key: "subject", Value: r.Subject}, {Key: "subject_by", Value: r.SubjectBy},
		}}})
		if err != nil || res.MatchedCount == 1 {
			return s.fail(op, err)
		}
		// Deleted between the two: create it again.
	}
	return s.fail(op, fmt.Errorf("%w: room %s keeps changing", sdk.ErrUnavailable, r.Room))
}

// DeleteMUCRoom removes the room, which ends its affiliations, and then
// their documents; an absent room is fine.
func (s *Store) DeleteMUCRoom(ctx context.Context, room string) error {
	const op = "muc.DeleteRoom"
	if err := checkMUCRoomJID(room); err != nil {
		return s.fail(op, err)
	}
	if _, err := s.mucRooms.DeleteOne(ctx, bson.D{{Key: "_id", Value: room}}); err != nil {
		return s.fail(op, err)
	}
	_, err := s.mucAffs.DeleteMany(ctx, bson.D{{Key: "room", Value: room}})
	return s.fail(op, err)
}

// SetMUCAffiliation stores a in the room's current incarnation, or removes
// the entry for "none"; the room must be stored.
func (s *Store) SetMUCAffiliation(ctx context.Context, a sdk.MUCAffiliation) error {
	const op = "muc.SetAffiliation"
	if err := sdk.CheckMUCAffiliation(a); err != nil {
		return s.fail(op, err)
	}
	if err := checkAll(checkKey("room", a.Room), checkKey("jid", a.JID), checkText("nick", a.Nick), checkText("reason", a.Reason)); err != nil {
		return s.fail(op, err)
	}
	gen, err := s.roomGen(ctx, a.Room)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return s.fail(op, fmt.Errorf("room %s: %w", a.Room, sdk.ErrNotFound))
	}
	if err != nil {
		return s.fail(op, err)
	}
	id := docKey(a.Room, gen, a.JID)
	if a.Affiliation == "none" {
		_, err := s.mucAffs.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
		return s.fail(op, err)
	}
	doc := mucAffDoc{ID: id, Room: a.Room, Gen: gen, JID: a.JID, Affiliation: a.Affiliation, Nick: a.Nick, Reason: a.Reason}
	return s.fail(op, put(ctx, s.mucAffs, id, doc))
}

// checkMUCRoomJID checks a room JID given to a read or a delete.
func checkMUCRoomJID(room string) error {
	if _, err := sdk.MUCService(room); err != nil {
		return err
	}
	return checkKey("room", room)
}
