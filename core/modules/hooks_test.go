package modules

import (
	"context"
	"testing"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// The seams package pubsub uses: IQs to another account, presence
// observers and shapers, account disco, private storage by namespace.

type testDisco struct{ asked []string }

func (d *testDisco) ExtendInfo(_ context.Context, owner, from jid.JID, q *xmlstream.Element) {
	d.asked = append(d.asked, "info "+owner.String()+" "+from.String())
	q.AppendChild(xmlstream.NewElement(NSDiscoInfo, "identity").SetAttr("category", "pubsub").SetAttr("type", "pep"))
}

func (d *testDisco) NodeInfo(_ context.Context, owner, from jid.JID, node string) (*xmlstream.Element, *stanza.Error) {
	if node != "n1" {
		return nil, stanza.ErrItemNotFound
	}
	return xmlstream.NewElement(NSDiscoInfo, "query").SetAttr("node", node), nil
}

func (d *testDisco) Items(_ context.Context, owner, from jid.JID, node string) (*xmlstream.Element, *stanza.Error) {
	q := xmlstream.NewElement(NSDiscoItems, "query")
	q.AppendChild(xmlstream.NewElement(NSDiscoItems, "item").SetAttr("jid", owner.String()).SetAttr("node", "n1"))
	return q, nil
}

type testPrivate struct{ stored *xmlstream.Element }

func (p *testPrivate) GetPrivate(_ context.Context, owner jid.JID, local, ns string) (*xmlstream.Element, *stanza.Error) {
	if p.stored == nil {
		return xmlstream.NewElement(ns, local), nil
	}
	return p.stored.Copy(), nil
}

func (p *testPrivate) SetPrivate(_ context.Context, owner jid.JID, el *xmlstream.Element) *stanza.Error {
	if el.Attr("bad") != "" {
		return stanza.ErrNotAcceptable
	}
	p.stored = el.Copy()
	return nil
}

func TestAccountHooks(t *testing.T) {
	e := newEnv(t)
	var calls []string
	e.m.HandleAccountIQ("get", "urn:test:acct", func(_ context.Context, s *router.Session, to jid.JID, iq, q *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
		calls = append(calls, s.JID().String()+">"+to.String())
		return xmlstream.NewElement("urn:test:acct", "r"), nil
	})
	var seen []string
	e.m.ObservePresence(func(_ context.Context, s *router.Session, p *xmlstream.Element) {
		v := ""
		if x := p.Child("urn:test", "x"); x != nil {
			v = x.Attr("v")
		}
		seen = append(seen, s.JID().String()+":"+p.Attr("type")+":"+v)
	})
	e.m.ShapePresence(func(_ context.Context, s *router.Session, p *xmlstream.Element) {
		p.RemoveChildren("urn:test", "x")
		p.AppendChild(xmlstream.NewElement("urn:test", "x").SetAttr("v", "shaped"))
	})
	d := &testDisco{}
	e.m.SetAccountDisco(d)
	pv := &testPrivate{}
	e.m.HandlePrivate("storage:test", pv)

	a := e.login("alice@example.com/pc")
	a.send(`<presence><x xmlns='urn:test' v='raw'/></presence>`)
	if len(seen) != 1 || seen[0] != "alice@example.com/pc::shaped" {
		t.Fatalf("observer saw %q", seen)
	}
	if p := a.s.State().Presence; p == nil || p.Child("urn:test", "x").Attr("v") != "shaped" {
		t.Fatalf("stored presence not shaped: %v", p)
	}
	a.rec.Take()

	// To another existing account, to oneself, to nobody, to a stranger.
	a.send(`<iq type='get' id='1' to='bob@example.com'><q xmlns='urn:test:acct'/></iq>`)
	a.send(`<iq type='get' id='2'><q xmlns='urn:test:acct'/></iq>`)
	a.send(`<iq type='get' id='3' to='nobody@example.com'><q xmlns='urn:test:acct'/></iq>`)
	got := a.rec.Take()
	if len(calls) != 2 || calls[0] != "alice@example.com/pc>bob@example.com" || calls[1] != "alice@example.com/pc>alice@example.com" {
		t.Fatalf("handler calls %q", calls)
	}
	if len(got) != 3 || got[0].Attr("type") != "result" || got[1].Attr("type") != "result" || stanza.ErrorFrom(got[2]).Condition != "service-unavailable" {
		t.Fatalf("answers %v", got)
	}

	// Account disco: extended info, node info, items.
	a.send(`<iq type='get' id='d1' to='bob@example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	a.send(`<iq type='get' id='d2' to='bob@example.com'><query xmlns='http://jabber.org/protocol/disco#info' node='n1'/></iq>`)
	a.send(`<iq type='get' id='d3' to='bob@example.com'><query xmlns='http://jabber.org/protocol/disco#info' node='zz'/></iq>`)
	a.send(`<iq type='get' id='d4' to='bob@example.com'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	got = a.rec.Take()
	if len(got) != 4 {
		t.Fatalf("disco answers %v", got)
	}
	if q := got[0].FirstChild(); q == nil || len(d.asked) != 1 || d.asked[0] != "info bob@example.com alice@example.com/pc" {
		t.Fatalf("info %v asked %q", got[0], d.asked)
	}
	var pep bool
	for _, c := range got[0].FirstChild().Elements() {
		pep = pep || (c.Local == "identity" && c.Attr("type") == "pep")
	}
	if !pep {
		t.Errorf("extended identity missing: %v", got[0])
	}
	if got[1].Attr("type") != "result" || got[1].FirstChild().Attr("node") != "n1" {
		t.Errorf("node info %v", got[1])
	}
	if stanza.ErrorFrom(got[2]).Condition != "item-not-found" {
		t.Errorf("unknown node %v", got[2])
	}
	if it := got[3].FirstChild().FirstChild(); it == nil || it.Attr("node") != "n1" {
		t.Errorf("items %v", got[3])
	}

	// Private storage in the hooked namespace goes to the hook, others to
	// the backend.
	a.send(`<iq type='set' id='p1'><query xmlns='jabber:iq:private'><s xmlns='storage:test' v='1'/></query></iq>`)
	a.send(`<iq type='set' id='p2'><query xmlns='jabber:iq:private'><s xmlns='storage:test' bad='1'/></query></iq>`)
	a.send(`<iq type='get' id='p3'><query xmlns='jabber:iq:private'><s xmlns='storage:test'/></query></iq>`)
	got = a.rec.Take()
	if len(got) != 3 || got[0].Attr("type") != "result" || stanza.ErrorFrom(got[1]).Condition != "not-acceptable" {
		t.Fatalf("private answers %v", got)
	}
	if s := got[2].FirstChild().FirstChild(); s == nil || s.Attr("v") != "1" {
		t.Fatalf("private get %v", got[2])
	}
	if _, err := e.store.GetPrivate(context.Background(), "alice@example.com", "s", "storage:test"); err == nil {
		t.Error("hooked private XML reached the backend")
	}

	// Rebroadcast sends the stored presence again, through the shapers;
	// an unavailable session is left alone.
	seen = nil
	e.m.Rebroadcast(context.Background(), a.s)
	idle := e.login("bob@example.com/idle")
	e.m.Rebroadcast(context.Background(), idle.s)
	if len(seen) != 1 || seen[0] != "alice@example.com/pc::shaped" {
		t.Fatalf("observer saw %q after rebroadcasts", seen)
	}

	// Ending the session: the observer hears the unavailable presence.
	a.logout()
	if len(seen) != 2 || seen[1] != "alice@example.com/pc:unavailable:" {
		t.Fatalf("observer saw %q", seen)
	}
}
