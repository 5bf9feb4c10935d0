package muc

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// countingVCards counts the reads of the vCards it keeps.
type countingVCards struct {
	VCards
	gets atomic.Int32
}

func (c *countingVCards) GetVCard(ctx context.Context, owner string) (string, error) {
	c.gets.Add(1)
	return c.VCards.GetVCard(ctx, owner)
}

// photo is a vCard with one photo of data, and the photo's hash.
func photo(data string) (vcard, hash string) {
	sum := sha1.Sum([]byte(data))
	b64 := base64.StdEncoding.EncodeToString([]byte(data))
	// Clients wrap BINVAL; the hash is of the decoded data.
	wrapped := b64[:len(b64)/2] + "\n  " + b64[len(b64)/2:]
	return `<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>` + wrapped + `</BINVAL></PHOTO></vCard>`, hex.EncodeToString(sum[:])
}

// roomInfo returns the room's disco#info features and its avatar hashes,
// as j sees them.
func roomInfo(t *testing.T, n *testNet, j, room string) (features, hashes []string) {
	t.Helper()
	n.send(j, `<iq type='get' id='di' to='`+room+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	r := n.one(j)
	q := r.Child(NSDiscoInfo, "query")
	if r.Attr("type") != "result" || q == nil {
		t.Fatalf("disco#info: %s", r)
	}
	for _, c := range q.Elements() {
		if c.Local == "feature" {
			features = append(features, c.Attr("var"))
		}
		if c.Local == "x" {
			for _, f := range c.Elements() {
				if f.Attr("var") == "muc#roominfo_avatarhash" {
					if f.Attr("type") != "text-multi" {
						t.Fatalf("avatar hash field: %s", f)
					}
					for _, v := range f.Elements() {
						hashes = append(hashes, v.Text())
					}
				}
			}
		}
	}
	return features, hashes
}

// setVCardIQ sends a vCard set to room from j and returns the answer.
func setVCardIQ(n *testNet, j, room, vcard string) *xmlstream.Element {
	n.send(j, `<iq type='set' id='vs' to='`+room+`'>`+vcard+`</iq>`)
	for _, el := range n.take(j) {
		if el.Local == "iq" {
			return el
		}
	}
	n.t.Fatalf("no answer to a vCard set from %s", j)
	return nil
}

func getVCard(t *testing.T, n *testNet, j, room string) *xmlstream.Element {
	t.Helper()
	n.send(j, `<iq type='get' id='vg' to='`+room+`'><vCard xmlns='vcard-temp'/></iq>`)
	r := n.one(j)
	v := r.Child(NSVCard, "vCard")
	if r.Attr("type") != "result" || v == nil {
		t.Fatalf("vCard get: %s", r)
	}
	return v
}

// TestRoomVCard: an owner sets the room's vCard with its avatar; those
// inside are told (104); anyone reads the vCard and sees the avatar's
// hash in disco#info; an empty vCard takes the avatar away.
func TestRoomVCard(t *testing.T) {
	h := newRestartable(t)
	h.vcards = h.st
	const room = "lounge@conference.example.com"
	n := h.start(nil)
	alice, bob, eve := n.user("alice@example.com/pc"), n.user("bob@example.com/phone"), n.user("eve@example.net/x")
	n.create(alice, room+"/Alice")
	n.join(bob, room+"/Bob")
	n.take(alice)

	if f, hs := roomInfo(t, n, eve, room); !slices.Contains(f, NSVCard) || len(hs) != 0 {
		t.Fatalf("before any vCard: features %v, hashes %v", f, hs)
	}
	if v := getVCard(t, n, eve, room); len(v.Children) != 0 {
		t.Fatalf("a room without a vCard: %s", v)
	}
	vc, hash := photo("\x89PNG a red square")
	if r := setVCardIQ(n, bob, room, vc); condition(r) != "forbidden" {
		t.Fatalf("a participant sets the vCard: %s", r)
	}
	if r := setVCardIQ(n, alice, room, `<vCard xmlns='vcard-temp'><PHOTO><BINVAL>not base64!</BINVAL></PHOTO></vCard>`); condition(r) != "bad-request" {
		t.Fatalf("a photo that is not base64: %s", r)
	}
	if r := setVCardIQ(n, alice, room, vc); r.Attr("type") != "result" {
		t.Fatalf("the owner sets the vCard: %s", r)
	}
	if m := n.one(bob); m.Local != "message" || !slices.Equal(codes(m), []string{"104"}) || m.Attr("from") != room {
		t.Fatalf("bob was told of the change with %s", m)
	}
	if _, hs := roomInfo(t, n, eve, room); !slices.Equal(hs, []string{hash}) {
		t.Fatalf("avatar hashes %v, want %s", hs, hash)
	}
	if v := getVCard(t, n, eve, room); v.Child(NSVCard, "PHOTO") == nil || v.Child(NSVCard, "PHOTO").Child(NSVCard, "TYPE").Text() != "image/png" {
		t.Fatalf("the room's vCard: %s", v)
	}

	if r := setVCardIQ(n, alice, room, `<vCard xmlns='vcard-temp'/>`); r.Attr("type") != "result" {
		t.Fatalf("the owner removes the vCard: %s", r)
	}
	n.take(bob)
	if _, hs := roomInfo(t, n, eve, room); len(hs) != 0 {
		t.Fatalf("hashes after removing the vCard: %v", hs)
	}
	if v := getVCard(t, n, eve, room); len(v.Children) != 0 {
		t.Fatalf("the vCard after removing it: %s", v)
	}
}

// TestRoomVCardRestart: a persistent room's avatar hash comes back with the
// room after a restart, from its record, without a read of the vCard; the
// vCard is still there.
func TestRoomVCardRestart(t *testing.T) {
	h := newRestartable(t)
	cv := &countingVCards{VCards: h.st}
	h.vcards = cv
	const room = "kept@conference.example.com"
	n := h.start(nil)
	alice := n.user("alice@example.com/pc")
	n.create(alice, room+"/Alice")
	vc, hash := photo("GIF89a an avatar")
	if r := setVCardIQ(n, alice, room, vc); r.Attr("type") != "result" {
		t.Fatalf("set: %s", r)
	}

	n = h.start(nil)
	cv.gets.Store(0)
	eve := n.user("eve@example.net/x")
	if _, hs := roomInfo(t, n, eve, room); !slices.Equal(hs, []string{hash}) || cv.gets.Load() != 0 {
		t.Fatalf("after a restart: hashes %v, %d vCard reads", hs, cv.gets.Load())
	}
	if v := getVCard(t, n, eve, room); v.Child(NSVCard, "PHOTO") == nil {
		t.Fatalf("the vCard after a restart: %s", v)
	}
}

// failingPut is a store that refuses to write room records while fail is
// set.
type failingPut struct {
	Store
	fail atomic.Bool
}

func (f *failingPut) PutMUCRoom(ctx context.Context, r sdk.MUCRoom) error {
	if f.fail.Load() {
		return errors.New("disk full")
	}
	return f.Store.PutMUCRoom(ctx, r)
}

// TestRoomVCardRecordFails: when the room's record cannot take the new
// hash, the old vCard is put back and the owner gets an error: the hash
// the room advertises stays that of its vCard.
func TestRoomVCardRecordFails(t *testing.T) {
	h := newRestartable(t)
	h.vcards = h.st
	fp := &failingPut{Store: h.st}
	h.store = fp
	const room = "kept@conference.example.com"
	n := h.start(nil)
	alice := n.user("alice@example.com/pc")
	n.create(alice, room+"/Alice")
	old, oldHash := photo("the first avatar")
	if r := setVCardIQ(n, alice, room, old); r.Attr("type") != "result" {
		t.Fatalf("set: %s", r)
	}
	fp.fail.Store(true)
	vc, _ := photo("the second avatar")
	if r := setVCardIQ(n, alice, room, vc); r.Attr("type") != "error" {
		t.Fatalf("a set whose record fails: %s", r)
	}
	fp.fail.Store(false)
	if _, hs := roomInfo(t, n, alice, room); !slices.Equal(hs, []string{oldHash}) {
		t.Fatalf("hashes after a failed set: %v, want %s", hs, oldHash)
	}
	got := getVCard(t, n, alice, room).Child(NSVCard, "PHOTO").Child(NSVCard, "BINVAL").Text()
	if want := base64.StdEncoding.EncodeToString([]byte("the first avatar")); strings.Join(strings.Fields(got), "") != want {
		t.Fatalf("the vCard after a failed set has %q, want the first one", got)
	}
}

// TestRoomVCardGoesWithRoom: a temporary room that empties takes its vCard
// along; a room made later under that name has none.
func TestRoomVCardGoesWithRoom(t *testing.T) {
	h := newRestartable(t)
	h.vcards = h.st
	const room = "brief@conference.example.com"
	n := newStoredNet(t, func(c *Config) { c.VCards = func() VCards { return h.st } }, nil)
	alice := n.user("alice@example.com/pc")
	n.create(alice, room+"/Alice")
	vc, _ := photo("short-lived")
	if r := setVCardIQ(n, alice, room, vc); r.Attr("type") != "result" {
		t.Fatalf("set: %s", r)
	}
	n.send(alice, `<presence type='unavailable' to='`+room+`/Alice'/>`)
	n.take(alice)
	if _, err := h.st.GetVCard(context.Background(), room); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("the vCard of a room that is gone: %v", err)
	}
}

// TestRoomVCardNoBackend: without a vcard backend rooms neither advertise
// vcard-temp nor take a vCard.
func TestRoomVCardNoBackend(t *testing.T) {
	n := newTestNet(t, nil)
	const room = "lounge@conference.example.com"
	alice := n.user("alice@example.com/pc")
	n.create(alice, room+"/Alice")
	if f, _ := roomInfo(t, n, alice, room); slices.Contains(f, NSVCard) {
		t.Fatalf("vcard-temp advertised without a backend: %v", f)
	}
	vc, _ := photo("x")
	if r := setVCardIQ(n, alice, room, vc); condition(r) != "service-unavailable" {
		t.Fatalf("a set without a backend: %s", r)
	}
}
