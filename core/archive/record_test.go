package archive

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
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

// encodeV1 writes a record in version 1's layout, as koi did before
// version 2.
func encodeV1(msgs []sdk.ArchivedMessage) []byte {
	b := binary.AppendUvarint([]byte{recordV1}, uint64(len(msgs)))
	for _, m := range msgs {
		for _, s := range [...]string{m.Owner, m.StanzaID, m.Peer, m.PeerResource, m.Stanza, m.Body} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
		b = binary.AppendVarint(b, m.Stamp.UnixMilli())
		if m.Outgoing {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	return b
}

// A journal written by an earlier koi is still replayed.
func TestVersion1RecordsAreRead(t *testing.T) {
	msgs := []sdk.ArchivedMessage{
		{Owner: "alice@example.com", StanzaID: "id1", Peer: "bob@example.com", PeerResource: "phone",
			Stamp: time.UnixMilli(1764806400123).UTC(), Outgoing: true, Stanza: "<message/>", Body: "hi"},
		{Owner: "bob@example.com", StanzaID: "id2", Peer: "alice@example.com", Stamp: time.UnixMilli(1764806400123).UTC(),
			Stanza: "<message/>", Body: "hi"},
	}
	got, err := decodeRecord(encodeV1(msgs))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, msgs) {
		t.Fatalf("got %+v\nwant %+v", got, msgs)
	}
}

// The two copies of a message share their stanza and body in the record.
func TestACopysStanzaIsWrittenOnce(t *testing.T) {
	st := strings.Repeat("<message><body>hello</body></message>", 20)
	pair := []sdk.ArchivedMessage{
		{Owner: "bob@example.com", StanzaID: "id1", Peer: "alice@example.com", Stanza: st, Body: "hello"},
		{Owner: "alice@example.com", StanzaID: "id2", Peer: "bob@example.com", Outgoing: true, Stanza: st, Body: "hello"},
	}
	rec := encodeRecord(pair)
	if len(rec) >= 2*len(st) {
		t.Fatalf("record of %d bytes for a stanza of %d: written twice", len(rec), len(st))
	}
	got, err := decodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, pair) {
		t.Fatalf("got %+v\nwant %+v", got, pair)
	}
}

func TestMalformedRecordsAreErrors(t *testing.T) {
	good := encodeRecord([]sdk.ArchivedMessage{{Owner: "a@example.com", StanzaID: "x", Body: "hello"}})
	for name, b := range map[string][]byte{
		"empty":             nil,
		"unknown version":   append([]byte{9}, good[1:]...),
		"no messages":       {recordVersion, 0},
		"count too large":   {recordVersion, 0xff, 0xff, 0x03},
		"cut short":         good[:len(good)-3],
		"trailing bytes":    append(append([]byte{}, good...), 0),
		"bad direction":     append(append([]byte{}, good[:len(good)-1]...), 7),
		"no owner":          encodeRecord([]sdk.ArchivedMessage{{StanzaID: "x"}}),
		"huge string size":  {recordVersion, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0, 0, 0},
		"v1 huge string":    {recordV1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0, 0, 0},
		"first refers back": {recordVersion, 1, 0, 0, 0, 0, 0, 0, 0, 0},
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
	f.Add(encodeV1([]sdk.ArchivedMessage{{Owner: "a@example.com", StanzaID: "x", Body: "hi"}, {Owner: "b@example.com", StanzaID: "y"}}))
	f.Add(encodeRecord([]sdk.ArchivedMessage{{Owner: "a@example.com", StanzaID: "x", Body: "hi"}, {Owner: "a@example.com", StanzaID: "y", Body: "hi"}}))
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
