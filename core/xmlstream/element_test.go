package xmlstream

import (
	"slices"
	"testing"
)

const nsChatStates = "http://jabber.org/protocol/chatstates"

func TestAttrs(t *testing.T) {
	e := NewElement(NSClient, "message").
		SetAttr("to", "juliet@example.com").
		SetAttr("type", "chat").
		SetAttrNS(NSXML, "lang", "en")
	if got := e.Attr("to"); got != "juliet@example.com" {
		t.Errorf("Attr(to) = %q", got)
	}
	if got := e.Attr("lang"); got != "" {
		t.Errorf("Attr(lang) = %q; xml:lang is not a plain attribute", got)
	}
	if got := e.AttrNS(NSXML, "lang"); got != "en" {
		t.Errorf("AttrNS(xml, lang) = %q", got)
	}
	e.SetAttr("type", "normal")
	if got := e.Attr("type"); got != "normal" || len(e.Attrs) != 3 {
		t.Errorf("SetAttr replace: type=%q, %d attrs", got, len(e.Attrs))
	}
	e.RemoveAttr("to").RemoveAttr("absent")
	if e.Attr("to") != "" || len(e.Attrs) != 2 {
		t.Errorf("RemoveAttr: %v", e.Attrs)
	}
	e.RemoveAttr("lang") // plain only: xml:lang stays
	if e.AttrNS(NSXML, "lang") != "en" {
		t.Error("RemoveAttr removed a namespaced attribute")
	}
}

func TestChildren(t *testing.T) {
	body := NewElement(NSClient, "body").AppendText("hello ").AppendText("world")
	active := NewElement(nsChatStates, "active")
	thread := NewElement(NSClient, "thread").AppendText("t1")
	m := NewElement(NSClient, "message").
		AppendText("\n").
		AppendChild(body).
		AppendChild(active).
		AppendText(" x ").
		AppendChild(thread).
		AppendChild(NewElement(nsChatStates, "active"))

	if len(body.Children) != 1 || body.Text() != "hello world" {
		t.Errorf("adjacent text not merged: %#v", body.Children)
	}
	if m.Child(NSClient, "body") != body || m.Child(nsChatStates, "active") != active {
		t.Error("Child lookup failed")
	}
	if m.Child("", "body") != nil || m.Child(NSClient, "subject") != nil {
		t.Error("Child matched the wrong name")
	}
	if m.FirstChild() != body {
		t.Error("FirstChild skipped to the wrong node")
	}
	if NewElement("", "x").AppendText("only text").FirstChild() != nil {
		t.Error("FirstChild returned a text node")
	}
	if got := m.Elements(); len(got) != 4 || got[0] != body || got[2] != thread {
		t.Errorf("Elements() = %v", got)
	}
	if got := m.Text(); got != "\n x " {
		t.Errorf("Text() = %q", got)
	}
	m.RemoveChildren(nsChatStates, "active")
	if got := m.Elements(); len(got) != 2 || m.Child(nsChatStates, "active") != nil {
		t.Errorf("RemoveChildren left %v", got)
	}
	if m.Text() != "\n x " {
		t.Error("RemoveChildren dropped text")
	}
}

func TestCopy(t *testing.T) {
	orig := NewElement(NSClient, "message").SetAttr("to", "a").
		AppendChild(NewElement(NSClient, "body").AppendText("hi"))
	c := orig.Copy()
	if c.String() != orig.String() {
		t.Fatalf("copy differs: %s vs %s", c, orig)
	}
	c.SetAttr("to", "b")
	c.FirstChild().AppendText("!")
	c.AppendChild(NewElement("urn:x", "x"))
	if orig.String() != `<message xmlns='jabber:client' to='a'><body>hi</body></message>` {
		t.Errorf("changing the copy changed the original: %s", orig)
	}
	var nilEl *Element
	if nilEl.Copy() != nil {
		t.Error("Copy of nil element is not nil")
	}
}

func TestAppendXML(t *testing.T) {
	tests := []struct {
		name     string
		el       *Element
		parentNS string
		want     string
	}{
		{
			name:     "stanza inherits content namespace",
			el:       NewElement(NSClient, "message").SetAttr("to", "juliet@example.com").AppendChild(NewElement(NSClient, "body").AppendText("hi")).AppendChild(NewElement(nsChatStates, "active")),
			parentNS: NSClient,
			want:     `<message to='juliet@example.com'><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		},
		{
			name: "standalone declares namespace",
			el:   NewElement(NSClient, "presence"),
			want: `<presence xmlns='jabber:client'/>`,
		},
		{
			name:     "child back to parent namespace",
			el:       NewElement("urn:a", "a").AppendChild(NewElement("urn:b", "b").AppendChild(NewElement("urn:a", "c"))),
			parentNS: NSClient,
			want:     `<a xmlns='urn:a'><b xmlns='urn:b'><c xmlns='urn:a'/></b></a>`,
		},
		{
			name:     "no namespace under a default",
			el:       NewElement(NSClient, "iq").AppendChild(NewElement("", "x")),
			parentNS: NSClient,
			want:     `<iq><x xmlns=''/></iq>`,
		},
		{
			name: "stream namespace uses stream prefix",
			el: NewElement(NSStream, "features").AppendChild(
				NewElement("urn:ietf:params:xml:ns:xmpp-tls", "starttls").AppendChild(NewElement("urn:ietf:params:xml:ns:xmpp-tls", "required"))),
			parentNS: NSClient,
			want:     `<stream:features xmlns:stream='http://etherx.jabber.org/streams'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`,
		},
		{
			name:     "stream element keeps default namespace for children",
			el:       NewElement(NSStream, "error").AppendChild(NewElement(NSClient, "x")),
			parentNS: NSClient,
			want:     `<stream:error xmlns:stream='http://etherx.jabber.org/streams'><x/></stream:error>`,
		},
		{
			name:     "xml:lang uses predeclared prefix",
			el:       NewElement(NSClient, "message").SetAttrNS(NSXML, "lang", "de"),
			parentNS: NSClient,
			want:     `<message xml:lang='de'/>`,
		},
		{
			name:     "foreign attribute namespaces get declared prefixes",
			el:       NewElement(NSClient, "x").SetAttrNS("urn:p", "a", "1").SetAttr("b", "2").SetAttrNS("urn:q", "c", "3").SetAttrNS("urn:p", "d", "4"),
			parentNS: NSClient,
			want:     `<x xmlns:ns1='urn:p' ns1:a='1' b='2' xmlns:ns3='urn:q' ns3:c='3' ns1:d='4'/>`,
		},
		{
			name:     "escaping",
			el:       NewElement(NSClient, "body").SetAttr("a", "<&>'\"\t\n\r").AppendText("<&>'\"\t\n\r]]>"),
			parentNS: NSClient,
			want:     "<body a='&lt;&amp;&gt;&apos;&quot;&#x9;&#xA;&#xD;'>&lt;&amp;&gt;'\"\t\n&#xD;]]&gt;</body>",
		},
		{
			name:     "characters XML cannot carry become U+FFFD",
			el:       NewElement(NSClient, "body").SetAttr("a", "x\x00y").AppendText("a\x01b\xffc\uffffd\u00e9"),
			parentNS: NSClient,
			want:     "<body a='x\ufffdy'>a\ufffdb\ufffdc\ufffdd\u00e9</body>",
		},
		{
			name:     "mixed content in order",
			el:       NewElement("http://www.w3.org/1999/xhtml", "p").AppendText("Hi ").AppendChild(NewElement("http://www.w3.org/1999/xhtml", "em").AppendText("there")).AppendText("!"),
			parentNS: "http://www.w3.org/1999/xhtml",
			want:     `<p>Hi <em>there</em>!</p>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix:")
			got := tt.el.AppendXML(slices.Clone(prefix), tt.parentNS)
			if string(got) != "prefix:"+tt.want {
				t.Errorf("AppendXML =\n%s\nwant\nprefix:%s", got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	e := NewElement(NSClient, "message").AppendChild(NewElement(NSClient, "body").AppendText("x"))
	if got, want := e.String(), `<message xmlns='jabber:client'><body>x</body></message>`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

// benchMessage is a typical ~400-byte chat message.
func benchMessage() *Element {
	return NewElement(NSClient, "message").
		SetAttr("from", "romeo@montague.example/orchard-5fa2c1").
		SetAttr("to", "juliet@capulet.example/balcony-9d3e").
		SetAttr("type", "chat").
		SetAttr("id", "ktx72v49").
		SetAttrNS(NSXML, "lang", "en").
		AppendChild(NewElement(NSClient, "body").AppendText("Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike. <3 & more")).
		AppendChild(NewElement(NSClient, "thread").AppendText("e0ffe42b28561960c6b12b944a092794b9683a38")).
		AppendChild(NewElement(nsChatStates, "active")).
		AppendChild(NewElement("urn:xmpp:receipts", "request")).
		AppendChild(NewElement("urn:xmpp:sid:0", "origin-id").SetAttr("id", "de305d54-75b4-431b-adb2-eb6b9e546013"))
}

func BenchmarkAppendXML(b *testing.B) {
	m := benchMessage()
	buf := m.AppendXML(nil, NSClient)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendXML(buf[:0], NSClient)
	}
}
