package muc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// testNet stands in for the server's routing: it records what the service
// sends to users who are online and, like modules.Server.Route, bounces
// what is sent to anyone else straight back into the service, on the same
// goroutine.
type testNet struct {
	t   *testing.T
	svc *Service

	mu     sync.Mutex
	online map[string]bool
	got    map[string][]*xmlstream.Element // by recipient full JID
}

func newTestNet(t *testing.T, mod func(*Config)) *testNet {
	t.Helper()
	return newStoredNet(t, mod, nil)
}

// newStoredNet is newTestNet with its rooms kept in st.
func newStoredNet(t *testing.T, mod func(*Config), st Store) *testNet {
	t.Helper()
	cfg := Config{
		Domain: "conference.example.com", Host: "example.com",
		Defaults:   RoomConfig{Public: true, WhoIs: WhoIsModerators, AllowPM: "anyone", HistoryLength: 20},
		MaxHistory: 50,
	}
	if mod != nil {
		mod(&cfg)
	}
	n := &testNet{t: t, online: map[string]bool{}, got: map[string][]*xmlstream.Element{}}
	svc, err := New(nil, cfg, n, st)
	if err != nil {
		t.Fatal(err)
	}
	n.svc = svc
	return n
}

func (n *testNet) Route(ctx context.Context, el *xmlstream.Element) {
	to := el.Attr("to")
	n.mu.Lock()
	on := n.online[to]
	if on {
		n.got[to] = append(n.got[to], el)
	}
	n.mu.Unlock()
	if !on && el.Attr("type") != "error" && !(el.Local == "iq" && el.Attr("type") == "result") {
		n.svc.Deliver(ctx, stanza.ErrorReply(el, stanza.ErrServiceUnavailable))
	}
}

// user brings a full JID online.
func (n *testNet) user(j string) string {
	n.mu.Lock()
	n.online[j] = true
	n.mu.Unlock()
	return j
}

func (n *testNet) offline(j string) {
	n.mu.Lock()
	delete(n.online, j)
	n.mu.Unlock()
}

// send delivers a stanza from from; x is its XML with from left out.
func (n *testNet) send(from, x string) {
	n.t.Helper()
	el, err := stanza.Parse(x)
	if err != nil {
		n.t.Fatalf("bad test stanza %s: %v", x, err)
	}
	el.SetAttr("from", from)
	n.svc.Deliver(context.Background(), el)
}

// take returns and forgets what j received.
func (n *testNet) take(j string) []*xmlstream.Element {
	n.mu.Lock()
	defer n.mu.Unlock()
	g := n.got[j]
	delete(n.got, j)
	return g
}

// one returns the single stanza j received.
func (n *testNet) one(j string) *xmlstream.Element {
	n.t.Helper()
	g := n.take(j)
	if len(g) != 1 {
		n.t.Fatalf("%s got %d stanzas, want 1: %v", j, len(g), g)
	}
	return g[0]
}

// join enters room as nick and returns what j received.
func (n *testNet) join(j, occupant string, extra ...string) []*xmlstream.Element {
	n.t.Helper()
	n.send(j, fmt.Sprintf(`<presence to='%s'><x xmlns='http://jabber.org/protocol/muc'>%s</x></presence>`, occupant, strings.Join(extra, "")))
	return n.take(j)
}

// create makes an instant room owned by j.
func (n *testNet) create(j, occupant string) {
	n.t.Helper()
	got := n.join(j, occupant)
	if len(got) == 0 || !slices.Contains(codes(got[0]), "201") {
		n.t.Fatalf("creating %s: %v", occupant, got)
	}
	room := strings.SplitN(occupant, "/", 2)[0]
	n.send(j, `<iq type='set' id='inst' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`)
	if r := n.take(j); len(r) == 0 || r[0].Attr("type") != "result" {
		n.t.Fatalf("instant room %s: %v", room, r)
	}
}

// codes lists the muc#user status codes of el.
func codes(el *xmlstream.Element) []string {
	var out []string
	x := el.Child(NSUser, "x")
	if x == nil {
		return nil
	}
	for _, c := range x.Elements() {
		if c.Local == "status" {
			out = append(out, c.Attr("code"))
		}
	}
	return out
}

// itemOf returns the muc#user item of el.
func itemOf(el *xmlstream.Element) *xmlstream.Element {
	if x := el.Child(NSUser, "x"); x != nil {
		return x.Child(NSUser, "item")
	}
	return nil
}

// condition is el's error condition, "" for none.
func condition(el *xmlstream.Element) string {
	if e := stanza.ErrorFrom(el); e != nil {
		return e.Condition
	}
	return ""
}

func wantError(t *testing.T, got []*xmlstream.Element, cond string) {
	t.Helper()
	if len(got) != 1 || got[0].Attr("type") != "error" || condition(got[0]) != cond {
		t.Fatalf("want one %s error, got %v", cond, got)
	}
}

func fixedClock(n *testNet, at time.Time) *time.Time {
	now := at
	n.svc.now = func() time.Time { return now }
	return &now
}

// Element and JID shorten the tests.
type (
	Element = xmlstream.Element
	JID     = jid.JID
)

func mustJID(s string) jid.JID { return jid.MustParse(s) }
