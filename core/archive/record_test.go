package archive

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

func TestRecordRoundTrip(t *testing.T) {
	msgs := []sdk.ArchivedMessage{
		{Owner: "alice@example.com", StanzaID: "id1", Peer: "bob@example.com", PeerResource: "phone",
			Stamp: time.UnixMilli(1764806400123).UTC(), Outgoing: true, Stanza: "<message>é</message>", Body: "é"},
		{Owner: "bob@example.com", StanzaID: "id2", Stamp: time.UnixMilli(0).UTC()},
	}
	got, err := decodeRecord(encodeRecord(msgs))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, msgs) {
		t.Fatalf("got %+v\nwant %+v", got, msgs)
	}
}

func TestMalformedRecordsAreErrors(t *testing.T) {
	good := encodeRecord([]sdk.ArchivedMessage{{Owner: "a@example.com", StanzaID: "x", Body: "hello"}})
	for name, b := range map[string][]byte{
		"empty":            nil,
		"unknown version":  append([]byte{9}, good[1:]...),
		"no messages":      {recordVersion, 0},
		"count too large":  {recordVersion, 0xff, 0xff, 0x03},
		"cut short":        good[:len(good)-3],
		"trailing bytes":   append(append([]byte{}, good...), 0),
		"bad direction":    append(append([]byte{}, good[:len(good)-1]...), 7),
		"no owner":         encodeRecord([]sdk.ArchivedMessage{{StanzaID: "x"}}),
		"huge string size": {recordVersion, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0, 0, 0},
	} {
		if _, err := decodeRecord(b); !errors.Is(err, errRecord) {
			t.Errorf("%s: %v, want errRecord", name, err)
		}
	}
}

// FuzzDecodeRecord: whatever the bytes, decoding returns an error or
// messages that encode and decode to themselves; it never panics.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord([]sdk.ArchivedMessage{{Owner: "a@example.com", StanzaID: "x", Body: "hi", Outgoing: true}}))
	f.Add([]byte{recordVersion, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := decodeRecord(b)
		if err != nil {
			return
		}
		again, err := decodeRecord(encodeRecord(msgs))
		if err != nil || !reflect.DeepEqual(again, msgs) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, msgs, again)
		}
	})
}
