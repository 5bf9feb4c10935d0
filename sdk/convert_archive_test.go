package sdk

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// A batch converted at once is what converting its messages one by one
// gives, stamps (present or zero) included.
func TestArchivedListToPBIsPerMessageConversion(t *testing.T) {
	msgs := []ArchivedMessage{
		{Owner: "alice@example.com", StanzaID: "id1", Peer: "bob@example.com", PeerResource: "phone",
			Stamp: time.UnixMilli(1764806400123).UTC(), Outgoing: true, Stanza: "<message/>", Body: "hi"},
		{Owner: "bob@example.com", StanzaID: "id2", Peer: "alice@example.com"},
		{Owner: "bob@example.com", StanzaID: "id3", Stamp: time.Unix(-5, 999_000_000)},
	}
	got := archivedListToPB(msgs)
	if len(got) != len(msgs) {
		t.Fatalf("%d messages, want %d", len(got), len(msgs))
	}
	for i, m := range msgs {
		if want := archivedToPB(m); !proto.Equal(got[i], want) {
			t.Errorf("message %d: %v, want %v", i, got[i], want)
		}
		if back := archivedFromPB(got[i]); !back.Stamp.Equal(m.Stamp) {
			t.Errorf("message %d: stamp %v back, want %v", i, back.Stamp, m.Stamp)
		}
	}
}
