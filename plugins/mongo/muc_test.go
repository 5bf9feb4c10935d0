package mongobackend

import (
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/koi-im/koi/sdk"
)

// A delete interrupted between the room and its affiliations (the plugin
// killed, the server gone) leaves affiliation documents behind. They
// belong to the deleted incarnation: a room made again under the same JID
// does not see them, and its creation clears them away.
func TestMUCAffiliationsOfADeletedRoomStayDeleted(t *testing.T) {
	s, _ := open(t, Settings{})
	ctx := t.Context()
	const room = "lobby@conference.example.org"
	created := time.Now().UTC().Truncate(time.Millisecond)
	if err := s.PutMUCRoom(ctx, sdk.MUCRoom{Room: room, Created: created}); err != nil {
		t.Fatal(err)
	}
	ban := sdk.MUCAffiliation{Room: room, JID: "troll@example.net", Affiliation: "outcast", Reason: "spam"}
	if err := s.SetMUCAffiliation(ctx, ban); err != nil {
		t.Fatal(err)
	}
	// The first half of DeleteMUCRoom only.
	if _, err := s.mucRooms.DeleteOne(ctx, bson.D{{Key: "_id", Value: room}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.mucAffs.CountDocuments(ctx, bson.D{{Key: "room", Value: room}}); err != nil || n != 1 {
		t.Fatalf("left-over affiliation documents: %d, %v; want 1", n, err)
	}
	if got, err := s.GetMUCAffiliations(ctx, room); err != nil || len(got) != 0 {
		t.Errorf("GetMUCAffiliations of the deleted room = %+v, %v; want none", got, err)
	}
	err := s.SetMUCAffiliation(ctx, sdk.MUCAffiliation{Room: room, JID: "x@example.net", Affiliation: "member"})
	if !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("SetMUCAffiliation on the deleted room: %v, want sdk.ErrNotFound", err)
	}

	if err := s.PutMUCRoom(ctx, sdk.MUCRoom{Room: room, Created: created.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetMUCAffiliations(ctx, room); err != nil || len(got) != 0 {
		t.Errorf("GetMUCAffiliations of the room made again = %+v, %v; want none (the ban was the old room's)", got, err)
	}
	if n, err := s.mucAffs.CountDocuments(ctx, bson.D{{Key: "room", Value: room}}); err != nil || n != 0 {
		t.Errorf("affiliation documents after the room was made again: %d, %v; want 0", n, err)
	}
	if err := s.SetMUCAffiliation(ctx, ban); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetMUCAffiliations(ctx, room); err != nil || len(got) != 1 || got[0] != ban {
		t.Errorf("GetMUCAffiliations = %+v, %v; want the new ban", got, err)
	}
}

// A change that read the room before it was deleted and made again lands
// in the old incarnation: the new room does not get it, and it does not
// overwrite the new room's entry for the same JID.
func TestMUCStaleAffiliationChangeStaysInItsRoom(t *testing.T) {
	s, _ := open(t, Settings{})
	ctx := t.Context()
	const room = "team@conference.example.org"
	if err := s.PutMUCRoom(ctx, sdk.MUCRoom{Room: room}); err != nil {
		t.Fatal(err)
	}
	oldGen, err := s.roomGen(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMUCRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMUCRoom(ctx, sdk.MUCRoom{Room: room}); err != nil {
		t.Fatal(err)
	}
	owner := sdk.MUCAffiliation{Room: room, JID: "ann@example.org", Affiliation: "owner"}
	if err := s.SetMUCAffiliation(ctx, owner); err != nil {
		t.Fatal(err)
	}
	// What the stale SetMUCAffiliation writes after its read.
	stale := mucAffDoc{ID: docKey(room, oldGen, owner.JID), Room: room, Gen: oldGen, JID: owner.JID, Affiliation: "outcast"}
	if err := put(ctx, s.mucAffs, stale.ID, stale); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetMUCAffiliations(ctx, room); err != nil || len(got) != 1 || got[0] != owner {
		t.Errorf("GetMUCAffiliations = %+v, %v; want only %+v", got, err, owner)
	}
}
