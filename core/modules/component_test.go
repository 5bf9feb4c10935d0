package modules

import (
	"context"
	"sync"
	"testing"

	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// echoComponent records what it is given.
type echoComponent struct {
	mu  sync.Mutex
	got []*xmlstream.Element
}

func (c *echoComponent) Deliver(_ context.Context, el *xmlstream.Element) {
	c.mu.Lock()
	c.got = append(c.got, el.Copy())
	c.mu.Unlock()
}

func (c *echoComponent) take() []*xmlstream.Element {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.got
	c.got = nil
	return g
}

func TestComponentRouting(t *testing.T) {
	e := newEnv(t)
	comp := &echoComponent{}
	if err := e.m.AddComponent("conference.example.com", comp); err != nil {
		t.Fatal(err)
	}
	if err := e.m.AddComponent("conference.example.com", &echoComponent{}); err == nil {
		t.Fatal("a second component for one domain must be refused")
	}
	if err := e.m.AddComponent("example.com", &echoComponent{}); err == nil {
		t.Fatal("a host's domain must not become a component")
	}
	a := e.login("alice@example.com/pc")
	a.online("0")

	// A user's stanzas reach the component with from stamped.
	a.send(`<message to='room@conference.example.com' type='groupchat' id='g1'><body>hi</body></message>`)
	got := comp.take()
	if len(got) != 1 || got[0].Attr("from") != "alice@example.com/pc" || got[0].Attr("id") != "g1" {
		t.Fatalf("component got %v", got)
	}

	// The component's groupchat to the user keeps the room's stanza-id and
	// is not archived by the user's server.
	e.m.Route(context.Background(), mustParse(t, `<message from='room@conference.example.com/bob' to='alice@example.com/pc' type='groupchat' id='g2'><body>yo</body><stanza-id xmlns='urn:xmpp:sid:0' by='room@conference.example.com' id='s1'/><stanza-id xmlns='urn:xmpp:sid:0' by='other@conference.example.com' id='forged'/></message>`))
	msgs := a.rec.Take()
	if len(msgs) != 1 || msgs[0].Attr("id") != "g2" {
		t.Fatalf("user got %v", msgs)
	}
	var ids []string
	for _, c := range msgs[0].Elements() {
		if c.Local == "stanza-id" {
			ids = append(ids, c.Attr("id"))
		}
	}
	if len(ids) != 1 || ids[0] != "s1" {
		t.Fatalf("stanza-ids kept %v, want only the room's own", ids)
	}

	// Groupchat to a resource that is gone bounces back to the room, which
	// learns its occupant left.
	e.m.Route(context.Background(), mustParse(t, `<message from='room@conference.example.com/bob' to='alice@example.com/gone' type='groupchat' id='g3'><body>yo</body></message>`))
	got = comp.take()
	if len(got) != 1 || got[0].Attr("type") != "error" || got[0].Attr("to") != "room@conference.example.com/bob" {
		t.Fatalf("bounce to the room: %v", got)
	}

	// Server disco#items lists the component.
	a.send(`<iq type='get' id='d1' to='example.com'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	r := a.rec.Take()
	if len(r) != 1 || r[0].FirstChild() == nil || r[0].FirstChild().FirstChild() == nil || r[0].FirstChild().FirstChild().Attr("jid") != "conference.example.com" {
		t.Fatalf("disco#items: %v", r)
	}

	// A session that joined by directed presence while unavailable still
	// leaves the room when it ends.
	b := e.login("bob@example.com/phone")
	b.send(`<presence to='room@conference.example.com/bob'/>`)
	comp.take()
	b.logout()
	got = comp.take()
	if len(got) != 1 || got[0].Attr("type") != "unavailable" || got[0].Attr("from") != "bob@example.com/phone" {
		t.Fatalf("leave on close: %v", got)
	}

	// Removed, the domain is unknown again.
	e.m.RemoveComponent("conference.example.com", comp)
	a.send(`<message to='room@conference.example.com' id='g4'><body>x</body></message>`)
	if got := comp.take(); len(got) != 0 {
		t.Fatalf("removed component still gets stanzas: %v", got)
	}
	if r := a.rec.Take(); len(r) != 1 || r[0].Attr("type") != "error" {
		t.Fatalf("want an error for a gone component, got %v", r)
	}
}

func mustParse(t *testing.T, x string) *xmlstream.Element {
	t.Helper()
	el, err := stanza.Parse(x)
	if err != nil {
		t.Fatal(err)
	}
	return el
}
