package pubsub

import (
	"testing"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
)

// XEP-0115 §5.2 and §5.3: the simple and the complex example.
const (
	simpleInfo = `<iq type='result' from='romeo@montague.lit/orchard' id='ID'><query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query></iq>`
	complexInfo = `<iq type='result' from='benvolio@capulet.lit/230193' id='ID'><query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
    <field var='os'><value>Mac</value></field>
    <field var='os_version'><value>10.5.1</value></field>
    <field var='software'><value>Psi</value></field>
    <field var='software_version'><value>0.11</value></field>
  </x>
</query></iq>`
)

func TestVerifyCaps(t *testing.T) {
	for _, c := range []struct {
		xml, ver string
		want     bool
	}{
		{simpleInfo, "QgayPKawpkPSDYmwT/WM94uAlu0=", true},
		{complexInfo, "q07IKJEyjvHSyhy//CH0CxmKi8w=", true},
		{simpleInfo, "q07IKJEyjvHSyhy//CH0CxmKi8w=", false},
	} {
		el, err := stanza.Parse(c.xml)
		if err != nil {
			t.Fatal(err)
		}
		if got := verifyCaps("sha-1", c.ver, el.Child(NSDiscoInfo, "query")); got != c.want {
			t.Errorf("verify %s = %v, want %v", c.ver, got, c.want)
		}
	}
	dup, _ := stanza.Parse(`<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc'/><feature var='a'/><feature var='a'/></query>`)
	if verifyCaps("sha-1", "x", dup) {
		t.Error("duplicate features must fail verification")
	}
}

func TestCapsCache(t *testing.T) {
	c := NewCaps()
	a := jid.MustParse("romeo@montague.lit/orchard")
	b := jid.MustParse("romeo@montague.lit/garden")
	pres, _ := stanza.Parse(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://code.google.com/p/exodus' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>`)
	f, changed, q := c.Presence(a, pres)
	if f != nil || changed || q == nil || q.To != a || q.Node != "http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Fatalf("first presence: %v %v %+v", f, changed, q)
	}
	// A second session with the same ver waits for the same answer.
	if _, _, q2 := c.Presence(b, pres); q2 != nil {
		t.Fatalf("asked twice for one ver: %+v", q2)
	}
	// An answer from someone else is not taken.
	ans, _ := stanza.Parse(simpleInfo)
	ans.SetAttr("id", q.ID)
	ans.SetAttr("from", "juliet@capulet.lit/balcony")
	if ok, _, _ := c.Answer(ans); ok {
		t.Fatal("answer from the wrong JID taken")
	}
	ans.SetAttr("from", a.String())
	ok, sessions, feat := c.Answer(ans)
	if !ok || len(sessions) != 2 || !feat["http://jabber.org/protocol/muc"] {
		t.Fatalf("answer: %v %v %v", ok, sessions, feat)
	}
	if !c.Wants(b, "http://jabber.org/protocol/muc") || c.Wants(b, "urn:nope") {
		t.Fatal("Wants")
	}
	// A third session gets the verified features at once.
	d := jid.MustParse("romeo@montague.lit/car")
	if f, changed, q := c.Presence(d, pres); !changed || q != nil || !f["http://jabber.org/protocol/caps"] {
		t.Fatalf("known ver: %v %v %v", f, changed, q)
	}
	// The same presence again changes nothing.
	if _, changed, q := c.Presence(d, pres); changed || q != nil {
		t.Fatal("repeated presence counted as a change")
	}
	c.Forget(d)
	if c.Wants(d, "http://jabber.org/protocol/caps") {
		t.Fatal("forgotten session still wants")
	}

	// A lying answer is kept for its session only.
	liar := jid.MustParse("mallory@montague.lit/x")
	lp, _ := stanza.Parse(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='AAAA'/></presence>`)
	_, _, q = c.Presence(liar, lp)
	bad, _ := stanza.Parse(`<iq type='result'><query xmlns='http://jabber.org/protocol/disco#info'><feature var='urn:x+notify'/></query></iq>`)
	bad.SetAttr("id", q.ID)
	bad.SetAttr("from", liar.String())
	if ok, s, _ := c.Answer(bad); !ok || len(s) != 1 || s[0] != liar {
		t.Fatalf("unverified answer: %v %v", ok, s)
	}
	other := jid.MustParse("eve@montague.lit/y")
	if _, changed, q := c.Presence(other, lp); changed || q == nil {
		t.Fatal("an unverified ver was shared")
	}
}
