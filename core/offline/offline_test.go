package offline

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	sqlbackend "github.com/koi-im/koi/plugins/sql"
	"github.com/koi-im/koi/sdk"
)

// newBox is offline storage on the sql plugin's SQLite backend.
func newBox(t *testing.T, limit int) Box {
	t.Helper()
	st, err := sqlbackend.Open(context.Background(), sqlbackend.Settings{Driver: "sqlite", DSN: t.TempDir() + "/koi.db"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return Box{Backend: st, Limit: limit}
}

func parse(t *testing.T, x string) *xmlstream.Element {
	t.Helper()
	el, err := stanza.Parse(x)
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func TestWorth(t *testing.T) {
	for _, tc := range []struct {
		x    string
		want bool
	}{
		{`<message><body>hi</body></message>`, true},
		{`<message><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, false},
		{`<message><composing xmlns='http://jabber.org/protocol/chatstates'/><thread>t</thread></message>`, false},
		{`<message><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>`, false},
		{`<message><body>hi</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`, false},
		{`<message><store xmlns='urn:xmpp:hints'/></message>`, true},
		{`<message><received xmlns='urn:xmpp:receipts' id='1'/></message>`, true},
		{`<message/>`, false},
	} {
		if got := Worth(parse(t, tc.x)); got != tc.want {
			t.Errorf("Worth(%s) = %v, want %v", tc.x, got, tc.want)
		}
	}
}

// TestPutRoomDeliver: messages are kept up to the limit, stamped when
// stored (or with their first stamp kept), and handed over in order; the
// ones a session refuses are stored again, in order.
func TestPutRoomDeliver(t *testing.T) {
	ctx := context.Background()
	box := newBox(t, 3)
	bob := jid.MustParse("bob@example.com")
	if err := box.Room(ctx, bob); err != nil {
		t.Fatalf("room for the first message: %v", err)
	}
	c, err := box.Put(ctx, bob, parse(t, `<message to='bob@example.com/phone'><body>0</body><delay xmlns='urn:xmpp:delay' stamp='2001-01-01T00:00:00Z'/></message>`), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Attr("to") != "bob@example.com" || delays(c) != 1 || strings.HasPrefix(c.Child(stanza.NSDelay, "delay").Attr("stamp"), "2001") {
		t.Fatalf("stored copy %s: want it to the bare JID with one stamp of its storage", c)
	}
	c, err = box.Put(ctx, bob, parse(t, `<message><body>1</body><delay xmlns='urn:xmpp:delay' stamp='2001-01-01T00:00:00Z'/></message>`), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Child(stanza.NSDelay, "delay").Attr("stamp"); got != "2001-01-01T00:00:00Z" {
		t.Fatalf("a message delivered once keeps its first stamp; got %q", got)
	}
	if _, err := box.Put(ctx, bob, parse(t, `<message><body>2</body></message>`), true); err != nil {
		t.Fatal(err)
	}
	if err := box.Room(ctx, bob); !errors.Is(err, ErrFull) {
		t.Fatalf("room past the limit: %v, want ErrFull", err)
	}
	if err := (Box{Backend: box.Backend}).Room(ctx, bob); err != nil {
		t.Fatalf("room without a limit: %v", err)
	}

	// The session takes one message and goes away.
	var got []string
	box.Deliver(ctx, hclog.NewNullLogger(), bob, func(el *xmlstream.Element) bool {
		if len(got) == 1 {
			return false
		}
		got = append(got, el.Child(xmlstream.NSClient, "body").Text())
		return true
	})
	if strings.Join(got, ",") != "0" {
		t.Fatalf("first delivery: %v, want 0", got)
	}
	got = nil
	box.Deliver(ctx, hclog.NewNullLogger(), bob, func(el *xmlstream.Element) bool {
		got = append(got, el.Child(xmlstream.NSClient, "body").Text())
		return true
	})
	if strings.Join(got, ",") != "1,2" {
		t.Fatalf("second delivery: %v, want the refused ones in order, 1,2", got)
	}
	if n, err := box.Backend.Count(ctx, bob.String()); err != nil || n != 0 {
		t.Fatalf("left stored: %d, %v", n, err)
	}
}

func delays(el *xmlstream.Element) int {
	n := 0
	for _, c := range el.Elements() {
		if c.Space == stanza.NSDelay && c.Local == "delay" {
			n++
		}
	}
	return n
}

// failing is a backend that cannot be reached.
type failing struct{ sdk.Offline }

func (failing) Count(context.Context, string) (int, error) { return 0, sdk.ErrUnavailable }
func (failing) Store(context.Context, string, sdk.OfflineMessage) error {
	return sdk.ErrUnavailable
}

func TestBackendErrorsWrapped(t *testing.T) {
	ctx := context.Background()
	box := Box{Backend: failing{}, Limit: 1}
	bob := jid.MustParse("bob@example.com")
	if err := box.Room(ctx, bob); !errors.Is(err, sdk.ErrUnavailable) {
		t.Fatalf("room: %v, want the backend's error", err)
	}
	if _, err := box.Put(ctx, bob, parse(t, `<message><body>x</body></message>`), false); !errors.Is(err, sdk.ErrUnavailable) {
		t.Fatalf("put: %v, want the backend's error", err)
	}
}

// TestDeliverLeavesRetractedOut: a message its sender retracted while the
// user was away is not handed over, nor its correction; the retraction
// is, and so are another sender's message with the same id and a message
// retracted by someone who did not send it.
func TestDeliverLeavesRetractedOut(t *testing.T) {
	ctx := context.Background()
	box := newBox(t, 0)
	bob := jid.MustParse("bob@example.com")
	for _, m := range []string{
		`<message from='alice@example.com/pc' id='m1'><body>oops</body></message>`,
		`<message from='carol@example.com/pc' id='m1'><body>carol's m1</body></message>`,
		`<message from='alice@example.com/phone' id='m2'><body>oops, fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/></message>`,
		`<message from='alice@example.com/pc' id='o'><body>by origin-id</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`,
		`<message from='alice@example.com/pc' id='keep'><body>kept</body></message>`,
		`<message from='alice@example.com/phone' id='r1'><retract xmlns='urn:xmpp:message-retract:1' id='m1'/><body>retracted</body></message>`,
		`<message from='alice@example.com/pc' id='r0'><apply-to xmlns='urn:xmpp:fasten:0' id='o1'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to></message>`,
		`<message from='eve@example.com/x' id='r2'><retract xmlns='urn:xmpp:message-retract:1' id='keep'/></message>`,
	} {
		if _, err := box.Put(ctx, bob, parse(t, m), false); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	box.Deliver(ctx, hclog.NewNullLogger(), bob, func(el *xmlstream.Element) bool {
		got = append(got, el.Attr("id"))
		return true
	})
	if want := "m1 keep r1 r0 r2"; strings.Join(got, " ") != want {
		t.Fatalf("delivered %q, want %q", strings.Join(got, " "), want)
	}
}
