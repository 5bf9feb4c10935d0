package xmlstream

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>`

func newTestReader(s string) *Reader {
	return NewReader(strings.NewReader(s), Limits{})
}

// mustStart returns a Reader positioned after the stream header.
func mustStart(t testing.TB, src io.Reader, l Limits) *Reader {
	t.Helper()
	r := NewReader(src, l)
	if _, err := r.ReadHeader(); err != nil {
		t.Fatalf("ReadHeader: %v", err)
	}
	return r
}

func condition(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Condition
	}
	return ""
}

// equalElements compares trees, treating nil and empty slices alike.
func equalElements(a, b *Element) bool {
	if a.Space != b.Space || a.Local != b.Local || len(a.Attrs) != len(b.Attrs) || len(a.Children) != len(b.Children) {
		return false
	}
	for i := range a.Attrs {
		if a.Attrs[i] != b.Attrs[i] {
			return false
		}
	}
	for i := range a.Children {
		x, y := a.Children[i], b.Children[i]
		if (x.Elem == nil) != (y.Elem == nil) {
			return false
		}
		if x.Elem == nil {
			if x.Text != y.Text {
				return false
			}
		} else if !equalElements(x.Elem, y.Elem) {
			return false
		}
	}
	return true
}

func TestReadHeader(t *testing.T) {
	tests := []struct {
		name, in  string
		contentNS string
	}{
		{"with declaration", header, NSClient},
		{"no declaration", `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>`, NSClient},
		{"whitespace first", "\n  " + strings.TrimPrefix(header, "<?xml version='1.0'?>"), NSClient},
		{"other prefix", `<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client' to='example.com' version='1.0' xml:lang='en'>`, NSClient},
		{"default stream namespace", `<stream xmlns='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>`, NSStream},
		{"server namespace", `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>`, "jabber:server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestReader(tt.in)
			h, err := r.ReadHeader()
			if err != nil {
				t.Fatal(err)
			}
			if h.Space != NSStream || h.Local != "stream" || len(h.Children) != 0 {
				t.Errorf("header = %s", h)
			}
			if h.Attr("to") != "example.com" || h.Attr("version") != "1.0" || h.AttrNS(NSXML, "lang") != "en" {
				t.Errorf("header attributes = %v", h.Attrs)
			}
			for _, a := range h.Attrs {
				if a.Local == "xmlns" || a.Space == "xmlns" || a.Space == "" && strings.HasPrefix(a.Local, "xmlns") {
					t.Errorf("namespace declaration kept as attribute: %v", a)
				}
			}
			if len(h.Attrs) != 3 {
				t.Errorf("want 3 attributes, got %v", h.Attrs)
			}
			if got := r.ContentNamespace(); got != tt.contentNS {
				t.Errorf("ContentNamespace() = %q, want %q", got, tt.contentNS)
			}
		})
	}
}

func TestReadHeaderErrors(t *testing.T) {
	tests := []struct {
		name, in, cond string
	}{
		{"wrong stream namespace", `<stream:stream xmlns:stream='urn:wrong' xmlns='jabber:client'>`, "invalid-namespace"},
		{"wrong local name", `<stream:streams xmlns:stream='http://etherx.jabber.org/streams'>`, "invalid-namespace"},
		{"undeclared prefix", `<stream:stream xmlns='jabber:client'>`, "invalid-namespace"},
		{"not a stream", `<message xmlns='jabber:client'/>`, "invalid-namespace"},
		{"duplicate attribute", `<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='a' to='b'>`, "not-well-formed"},
		{"doctype", `<?xml version='1.0'?><!DOCTYPE stream>` + header[21:], "restricted-xml"},
		{"comment", `<!-- hi -->` + header, "restricted-xml"},
		{"processing instruction", `<?php echo 1; ?>` + header, "restricted-xml"},
		{"second declaration", `<?xml version='1.0'?><?xml version='1.0'?>` + header[21:], "restricted-xml"},
		{"text", `hello` + header, "not-well-formed"},
		{"end tag", `</stream:stream>`, "not-well-formed"},
		{"garbage", `<<<`, "not-well-formed"},
		{"encoding", `<?xml version='1.0' encoding='ISO-8859-1'?>` + header[21:], "unsupported-encoding"},
		{"xml version", `<?xml version='1.1'?>` + header[21:], "not-well-formed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestReader(tt.in)
			_, err := r.ReadHeader()
			if got := condition(err); got != tt.cond {
				t.Fatalf("ReadHeader error = %v, want condition %q", err, tt.cond)
			}
			// Errors are final.
			if _, err2 := r.ReadHeader(); err2 != err {
				t.Errorf("second ReadHeader = %v, want the same error", err2)
			}
			if _, err2 := r.Next(); err2 != err {
				t.Errorf("Next after failure = %v, want the same error", err2)
			}
		})
	}
	for _, in := range []string{"", "  \n"} {
		if _, err := newTestReader(in).ReadHeader(); err != io.EOF {
			t.Errorf("ReadHeader(%q) = %v, want io.EOF", in, err)
		}
	}
	if _, err := newTestReader(`<stream:stream xmlns:stream='http://etherx.jabber.org/`).ReadHeader(); err != io.ErrUnexpectedEOF {
		t.Errorf("ReadHeader of truncated header = %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestNotXMPP: bytes that cannot start a stream fail at once, without
// waiting for more input that may never come.
func TestNotXMPP(t *testing.T) {
	for _, in := range []string{
		"GET / HTTP/1.1\r\nHost: example.com\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS ClientHello
		"  \n SSH-2.0-OpenSSH_9.2\r\n",
	} {
		pr, pw := io.Pipe()
		go pw.Write([]byte(in)) // and never more, nor EOF
		r := NewReader(pr, Limits{})
		done := make(chan error, 1)
		go func() { _, err := r.ReadHeader(); done <- err }()
		select {
		case err := <-done:
			if condition(err) != "not-well-formed" {
				t.Errorf("ReadHeader(%q) = %v, want not-well-formed", in, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("ReadHeader(%q) still waiting for more input", in)
		}
		pw.Close()
	}
}

func TestNext(t *testing.T) {
	in := header + "\n" +
		`<message to='juliet@example.com' type='chat' id='1'><body>Hi &amp; &lt;bye&gt; &#x263A;<![CDATA[ <raw> ]]>!</body>` +
		`<active xmlns='http://jabber.org/protocol/chatstates'/></message>` +
		" \n\t " +
		`<iq type='get' id='2'><query xmlns='jabber:iq:roster'/></iq>` +
		`<x:thing xmlns:x='urn:example:x' x:attr='v' attr='w'><x:inner><plain/></x:inner></x:thing>` +
		`<message><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>Hi <em>there</em>, <strong>you</strong>!</p></body></html></message>` +
		`<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>` +
		`<presence xmlns=''/>` +
		"\r\n</stream:stream>"
	r := mustStart(t, strings.NewReader(in), Limits{})

	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if m.Space != NSClient || m.Local != "message" || m.Attr("to") != "juliet@example.com" || m.Attr("id") != "1" {
		t.Errorf("message = %s", m)
	}
	if body := m.Child(NSClient, "body"); body == nil || body.Text() != "Hi & <bye> \u263a <raw> !" || len(body.Children) != 1 {
		t.Errorf("body = %#v", body)
	}
	if m.Child(nsChatStates, "active") == nil {
		t.Errorf("chat state child missing: %s", m)
	}

	iq, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if iq.Local != "iq" || iq.Child("jabber:iq:roster", "query") == nil {
		t.Errorf("iq = %s", iq)
	}

	x, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if x.Space != "urn:example:x" || x.Local != "thing" || x.AttrNS("urn:example:x", "attr") != "v" || x.Attr("attr") != "w" || len(x.Attrs) != 2 {
		t.Errorf("prefixed element = %s (%v)", x, x.Attrs)
	}
	inner := x.Child("urn:example:x", "inner")
	if inner == nil || inner.Child(NSClient, "plain") == nil {
		t.Errorf("prefixed element children = %s", x)
	}

	h, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	p := h.Child("http://jabber.org/protocol/xhtml-im", "html").Child("http://www.w3.org/1999/xhtml", "body").Child("http://www.w3.org/1999/xhtml", "p")
	if p == nil || len(p.Children) != 5 || p.Text() != "Hi , !" || p.Children[1].Elem.Text() != "there" {
		t.Errorf("mixed content = %#v", p)
	}

	f, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if f.Space != NSStream || f.Local != "features" || f.Child("urn:ietf:params:xml:ns:xmpp-tls", "starttls") == nil {
		t.Errorf("features = %s", f)
	}

	pr, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if pr.Space != "" || pr.Local != "presence" {
		t.Errorf("undeclared default: %s", pr)
	}

	for i := 0; i < 2; i++ {
		if _, err := r.Next(); err != ErrStreamEnd {
			t.Fatalf("Next = %v, want ErrStreamEnd", err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	stanzas := []string{
		`<message to='juliet@example.com' type='chat' xml:lang='de'><body>a &amp; b &lt; c &gt; d ' " &#xD; &#x9;</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		`<iq type='set' id='x'><query xmlns='jabber:iq:roster'><item jid='a@b' name='A &apos;q&apos; &quot;Q&quot; &#xA; &#x9; &#xD;'><group>G</group></item></query></iq>`,
		`<p:a xmlns:p='urn:p' xmlns:q='urn:q' p:x='1' q:y='2' z='3'><q:b><c xmlns=''/></q:b></p:a>`,
		`<message><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>Hi <em>there</em>!</p>
</body></html></message>`,
		`<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>no</text></stream:error>`,
		`<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><x/></stream:stream>`,
		`<xml:foo/>`,
		"<body>\u263a \U0001F600 <![CDATA[<&>]]> ]] &gt;</body>",
	}
	for _, s := range stanzas {
		t.Run(s, func(t *testing.T) {
			r := mustStart(t, strings.NewReader(header+s), Limits{})
			el, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			out := el.AppendXML(nil, r.ContentNamespace())
			r2 := mustStart(t, bytes.NewReader(append([]byte(header), out...)), Limits{})
			el2, err := r2.Next()
			if err != nil {
				t.Fatalf("re-parse of %s: %v", out, err)
			}
			if !equalElements(el, el2) {
				t.Errorf("round trip changed the element:\n%s\n%s", el, el2)
			}
			// Standalone serialisation must also be self-contained.
			r3 := mustStart(t, strings.NewReader(header+el.String()), Limits{})
			el3, err := r3.Next()
			if err != nil || !equalElements(el, el3) {
				t.Errorf("String() did not round trip: %s, %v", el.String(), err)
			}
		})
	}
}

func TestXMLLang(t *testing.T) {
	r := mustStart(t, strings.NewReader(header+`<message xml:lang='de'><body xml:lang='fr'>x</body></message>`), Limits{})
	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if m.AttrNS(NSXML, "lang") != "de" || m.Attr("lang") != "" {
		t.Errorf("xml:lang = %v", m.Attrs)
	}
	if got, want := string(m.AppendXML(nil, NSClient)), `<message xml:lang='de'><body xml:lang='fr'>x</body></message>`; got != want {
		t.Errorf("serialised %s, want %s", got, want)
	}
}

func TestRestart(t *testing.T) {
	// Everything is in one buffer, so after the first read the bytes of the
	// second header are already in the Reader's buffer.
	in := header +
		`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>` +
		header +
		`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`
	r := mustStart(t, strings.NewReader(in), Limits{})
	auth, err := r.Next()
	if err != nil || auth.Local != "auth" {
		t.Fatalf("Next = %v, %v", auth, err)
	}
	r.Restart()
	if _, err := r.Next(); err == nil {
		t.Fatal("Next after Restart without ReadHeader succeeded")
	}
	if _, err := r.ReadHeader(); err != nil {
		t.Fatalf("ReadHeader after Restart: %v", err)
	}
	iq, err := r.Next()
	if err != nil || iq.Local != "iq" || iq.Child("urn:ietf:params:xml:ns:xmpp-bind", "bind") == nil {
		t.Fatalf("Next after restart = %v, %v", iq, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next at end = %v, want io.EOF", err)
	}
}

func TestRestartRightAfterHeader(t *testing.T) {
	r := mustStart(t, strings.NewReader(header+header+`<presence/>`), Limits{})
	r.Restart()
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if p, err := r.Next(); err != nil || p.Local != "presence" {
		t.Fatalf("Next = %v, %v", p, err)
	}
}

func TestReset(t *testing.T) {
	// A peer that pipelines a stanza after <starttls/> must not get it
	// processed inside the TLS stream.
	r := mustStart(t, strings.NewReader(header+`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message><body>injected</body></message>`), Limits{})
	if st, err := r.Next(); err != nil || st.Local != "starttls" {
		t.Fatalf("Next = %v, %v", st, err)
	}
	r.Reset(strings.NewReader(header + `<presence/>`))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	p, err := r.Next()
	if err != nil || p.Local != "presence" {
		t.Fatalf("Next after Reset = %v, %v (old bytes leaked?)", p, err)
	}
}

func TestStreamErrors(t *testing.T) {
	deep := func(n int) string {
		return strings.Repeat("<a>", n) + strings.Repeat("</a>", n)
	}
	var manyNS strings.Builder
	manyNS.WriteString("<x")
	for i := range 200 {
		manyNS.WriteString(" xmlns:p" + strings.Repeat("q", i) + "='urn:x'")
	}
	manyNS.WriteString("/>")
	tests := []struct {
		name, in, cond string
	}{
		{"doctype", `<!DOCTYPE html>`, "restricted-xml"},
		{"entity declaration", `<!ENTITY x 'y'>`, "restricted-xml"},
		{"directive in stanza", `<message><!DOCTYPE x></message>`, "restricted-xml"},
		{"processing instruction", `<?php echo 1; ?>`, "restricted-xml"},
		{"xml declaration after header", `<?xml version='1.0'?>`, "restricted-xml"},
		{"processing instruction in stanza", `<message><?pi x?></message>`, "restricted-xml"},
		{"comment", `<!-- c -->`, "restricted-xml"},
		{"comment in stanza", `<message><body>a<!-- c -->b</body></message>`, "restricted-xml"},
		{"undefined entity", `<message><body>&nbsp;</body></message>`, "not-well-formed"},
		{"entity in attribute", `<message to='&foo;'/>`, "not-well-formed"},
		{"bare ampersand", `<message><body>a & b</body></message>`, "not-well-formed"},
		{"mismatched end tag", `<message><body></message>`, "not-well-formed"},
		{"end tag with other prefix", `<a:x xmlns:a='urn:a' xmlns:b='urn:a'></b:x>`, "not-well-formed"},
		{"stray end tag", `</message>`, "not-well-formed"},
		{"duplicate attribute", `<message a='1' a='2'/>`, "not-well-formed"},
		{"duplicate expanded attribute", `<message xmlns:p='urn:x' xmlns:q='urn:x' p:a='1' q:a='2'/>`, "not-well-formed"},
		{"duplicate declaration", `<message xmlns:p='urn:x' xmlns:p='urn:y'/>`, "not-well-formed"},
		{"undeclared element prefix", `<foo:bar/>`, "not-well-formed"},
		{"undeclared attribute prefix", `<message foo:bar='1'/>`, "not-well-formed"},
		{"prefix scope ends with element", `<message xmlns:p='urn:p'><x/></message><p:y/>`, "not-well-formed"},
		{"empty prefix declaration", `<message xmlns:p=''/>`, "not-well-formed"},
		{"xml namespace as default", `<message xmlns='http://www.w3.org/XML/1998/namespace'/>`, "not-well-formed"},
		{"xml prefix rebound", `<message xmlns:xml='urn:x'/>`, "not-well-formed"},
		{"xmlns prefix declared", `<message xmlns:xmlns='urn:x'/>`, "not-well-formed"},
		{"xmlns element prefix", `<xmlns:x/>`, "not-well-formed"},
		{"colon name", `<a:b:c/>`, "not-well-formed"},
		{"trailing colon name", `<a: />`, "not-well-formed"},
		{"text at stream level", `hello<presence/>`, "bad-format"},
		{"NUL char ref", `<message><body>&#0;</body></message>`, "not-well-formed"},
		{"NUL hex char ref", `<message><body>&#x0;</body></message>`, "not-well-formed"},
		{"control char ref", `<message><body>&#x1F;</body></message>`, "not-well-formed"},
		{"surrogate char ref", `<message><body>&#xD800;</body></message>`, "not-well-formed"},
		{"low surrogate char ref", `<message><body>&#57343;</body></message>`, "not-well-formed"},
		{"FFFE char ref", `<message><body>&#xFFFE;</body></message>`, "not-well-formed"},
		{"FFFF char ref", `<message><body>&#xffff;</body></message>`, "not-well-formed"},
		{"char ref past Unicode", `<message><body>&#x110000;</body></message>`, "not-well-formed"},
		{"huge char ref", `<message><body>&#99999999999999999999;</body></message>`, "not-well-formed"},
		{"surrogate char ref in attribute", `<message id='&#xDFFF;'/>`, "not-well-formed"},
		{"char ref after CDATA", `<message><body><![CDATA[&#0; ]]]]>&#0;</body></message>`, "not-well-formed"},
		{"FFFE raw in CDATA", "<message><body><![CDATA[\xef\xbf\xbe]]></body></message>", "not-well-formed"},
		{"FFFE raw", "<message><body>\xef\xbf\xbe</body></message>", "not-well-formed"},
		{"FFFF raw in attribute", "<message id='\xef\xbf\xbf'/>", "not-well-formed"},
		{"control char", "<message><body>\x01</body></message>", "not-well-formed"},
		{"invalid UTF-8", "<message><body>\xff</body></message>", "not-well-formed"},
		{"unquoted attribute", `<message to=a/>`, "not-well-formed"},
		{"cdata end in text", `<message><body>]]></body></message>`, "not-well-formed"},
		{"lt in attribute", `<message to='<'/>`, "not-well-formed"},
		{"too deep", deep(65), "policy-violation"},
		{"too many namespace declarations", manyNS.String(), "policy-violation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustStart(t, strings.NewReader(header+tt.in+`<presence/>`), Limits{})
			var err error
			for range 10 {
				if _, err = r.Next(); err != nil {
					break
				}
			}
			if got := condition(err); got != tt.cond {
				t.Fatalf("Next error = %v, want condition %q", err, tt.cond)
			}
			if _, err2 := r.Next(); err2 != err {
				t.Errorf("error not sticky: %v then %v", err, err2)
			}
		})
	}
}

// TestCharRefsInCDATA: "&#0;" inside a CDATA section is text, not a
// reference, and the section's end is found even after "]]]".
func TestCharRefsInCDATA(t *testing.T) {
	in := header + `<message><body><![CDATA[&#0; &#xD800; <![CDATA[ ]]]>&#x263A;<![CDATA[]]></body></message>`
	r := mustStart(t, strings.NewReader(in), Limits{})
	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Child(NSClient, "body").Text(), "&#0; &#xD800; <![CDATA[ ]\u263a"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
}

func TestDepthLimit(t *testing.T) {
	l := Limits{MaxDepth: 3}
	r := mustStart(t, strings.NewReader(header+`<a><b><c/></b></a><a><b><c><d/></c></b></a>`), l)
	if _, err := r.Next(); err != nil {
		t.Fatalf("depth 3 rejected: %v", err)
	}
	if _, err := r.Next(); condition(err) != "policy-violation" {
		t.Fatalf("depth 4 = %v, want policy-violation", err)
	}
	// The default allows 64.
	r = mustStart(t, strings.NewReader(header+strings.Repeat("<a>", 64)+strings.Repeat("</a>", 64)), Limits{})
	if _, err := r.Next(); err != nil {
		t.Fatalf("depth 64 rejected: %v", err)
	}
}

// endless yields prefix and then fill bytes for ever, counting what was read.
type endless struct {
	prefix []byte
	fill   byte
	read   int64
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.prefix)
	e.prefix = e.prefix[n:]
	for i := n; i < len(p); i++ {
		p[i] = e.fill
	}
	e.read += int64(len(p))
	return len(p), nil
}

func TestOversize(t *testing.T) {
	const limit = 1 << 20
	tests := []struct {
		name, prefix string
		fill         byte
	}{
		{"text node", `<message><body>`, 'a'},
		{"attribute value", `<message to='`, 'a'},
		{"element name", `<message`, 'a'},
		{"whitespace between stanzas", `<presence/>`, ' '},
		{"cdata", `<message><body><![CDATA[`, 'x'},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &endless{prefix: []byte(header + tt.prefix), fill: tt.fill}
			r := mustStart(t, src, Limits{MaxStanzaBytes: limit})
			start := time.Now()
			var err error
			for range 3 {
				if _, err = r.Next(); err != nil {
					break
				}
			}
			var e *Error
			if !errors.As(err, &e) || e.Condition != "policy-violation" || !strings.Contains(e.Text, "1048576") {
				t.Fatalf("Next = %v, want policy-violation naming the limit", err)
			}
			if src.read > limit+2*readBufferSize+int64(len(header)+len(tt.prefix)) {
				t.Errorf("read %d bytes from the source for a %d-byte limit", src.read, limit)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v to reject", d)
			}
		})
	}
}

func TestLimitIsPerStanza(t *testing.T) {
	// 100 stanzas of ~60 bytes under a 100-byte limit: the count restarts
	// at each stanza.
	var b strings.Builder
	b.WriteString(header)
	for range 100 {
		b.WriteString(" <message to='a@example.com'><body>hello</body></message>")
	}
	r := NewReader(strings.NewReader(b.String()), Limits{MaxStanzaBytes: 200})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := r.Next(); err != nil {
			t.Fatalf("stanza %d: %v", i, err)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("end = %v, want io.EOF", err)
	}
	// The header is limited too.
	r = NewReader(strings.NewReader(header), Limits{MaxStanzaBytes: 50})
	if _, err := r.ReadHeader(); condition(err) != "policy-violation" {
		t.Errorf("oversize header = %v, want policy-violation", err)
	}
}

func TestLargeStanzaThenMore(t *testing.T) {
	// Crosses shrinkAfter, which swaps the decoder between stanzas.
	big := strings.Repeat("x", 100<<10)
	in := header + "<message><body>" + big + "</body></message><presence/><iq/>"
	r := mustStart(t, strings.NewReader(in), Limits{})
	m, err := r.Next()
	if err != nil || m.Child(NSClient, "body").Text() != big {
		t.Fatalf("big stanza: %v", err)
	}
	for _, want := range []string{"presence", "iq"} {
		el, err := r.Next()
		if err != nil || el.Local != want || el.Space != NSClient {
			t.Fatalf("after big stanza: %v, %v; want %s", el, err, want)
		}
	}
}

func TestEOF(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"between stanzas", `<presence/>`, io.EOF},
		{"after whitespace", "<presence/>\n ", io.EOF},
		{"in start tag", `<presence/><message to='a`, io.ErrUnexpectedEOF},
		{"in text", `<presence/><message><body>hel`, io.ErrUnexpectedEOF},
		{"before end tag", `<presence/><message><body>hello</body>`, io.ErrUnexpectedEOF},
		{"in end tag", `<presence/><message></mess`, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustStart(t, strings.NewReader(header+tt.in), Limits{})
			if p, err := r.Next(); err != nil || p.Local != "presence" {
				t.Fatalf("first Next = %v, %v", p, err)
			}
			if _, err := r.Next(); err != tt.want {
				t.Fatalf("Next = %v, want %v", err, tt.want)
			}
			if _, err := r.Next(); err != tt.want {
				t.Fatalf("second Next = %v, want %v", err, tt.want)
			}
		})
	}
}

// chunks hands out one chunk per Read; a nil chunk yields errTimeout.
type chunks struct{ parts [][]byte }

var errTimeout = os.ErrDeadlineExceeded

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	part := c.parts[0]
	if part == nil {
		c.parts = c.parts[1:]
		return 0, errTimeout
	}
	// Like a socket, a short read leaves the rest for the next one.
	n := copy(p, part)
	if n < len(part) {
		c.parts[0] = part[n:]
	} else {
		c.parts = c.parts[1:]
	}
	return n, nil
}

func TestSourceErrorBetweenStanzas(t *testing.T) {
	src := &chunks{parts: [][]byte{
		[]byte(header + "<presence/> "), nil, []byte("<message/>"), nil, []byte("<iq"), nil, []byte("/>"),
	}}
	r := mustStart(t, src, Limits{})
	if p, err := r.Next(); err != nil || p.Local != "presence" {
		t.Fatalf("Next = %v, %v", p, err)
	}
	// A deadline between stanzas is reported and the stream goes on.
	if _, err := r.Next(); !errors.Is(err, errTimeout) {
		t.Fatalf("Next = %v, want the timeout", err)
	}
	if m, err := r.Next(); err != nil || m.Local != "message" {
		t.Fatalf("Next after timeout = %v, %v", m, err)
	}
	if _, err := r.Next(); !errors.Is(err, errTimeout) {
		t.Fatalf("Next = %v, want the timeout", err)
	}
	// A deadline in the middle of a stanza is final.
	_, err := r.Next()
	if !errors.Is(err, errTimeout) {
		t.Fatalf("Next = %v, want the timeout", err)
	}
	if _, err2 := r.Next(); err2 != err {
		t.Fatalf("mid-stanza source error not final: %v", err2)
	}
}

func TestNextBeforeHeader(t *testing.T) {
	r := newTestReader(header + `<presence/>`)
	if _, err := r.Next(); err == nil {
		t.Fatal("Next before ReadHeader succeeded")
	}
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadHeader(); err == nil {
		t.Fatal("ReadHeader inside a stream succeeded")
	}
}

func TestErrorString(t *testing.T) {
	if got := (&Error{Condition: "policy-violation", Text: "too big"}).Error(); got != "stream error: policy-violation: too big" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&Error{Condition: "bad-format"}).Error(); got != "stream error: bad-format" {
		t.Errorf("Error() = %q", got)
	}
}

func FuzzReader(f *testing.F) {
	for _, s := range []string{
		`<message to='a@b'><body>hi</body></message>`,
		`<iq type='get'><query xmlns='jabber:iq:roster'/></iq></stream:stream>`,
		`<p:a xmlns:p='urn:p' p:x='1'><b xml:lang='en'>t<![CDATA[<]]>&amp;&#x263a;</b></p:a>`,
		`<stream:features><x xmlns=''/></stream:features>`,
		" \n<presence/>\t",
		`<a><b></a>`,
		`<!DOCTYPE x><!-- c --><?pi?>`,
		`<a xmlns:q='urn:q' q:a='1' a='&#xD;&#x9;'/>`,
		`<xml:x/>`,
		"<a>\xff</a>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		src := io.MultiReader(strings.NewReader(header), bytes.NewReader(data))
		r := NewReader(src, Limits{MaxStanzaBytes: 8 << 10, MaxDepth: 16})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatal("more elements than input bytes")
			}
			el, err := r.Next()
			if err != nil {
				var e *Error
				if !errors.As(err, &e) && err != io.EOF && err != io.ErrUnexpectedEOF && err != ErrStreamEnd {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			out := el.AppendXML(nil, r.ContentNamespace())
			r2 := NewReader(io.MultiReader(strings.NewReader(header), bytes.NewReader(out)), Limits{MaxStanzaBytes: 1 << 20, MaxDepth: 16})
			if _, err := r2.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			el2, err := r2.Next()
			if err != nil {
				t.Fatalf("re-parse of %q: %v", out, err)
			}
			if !equalElements(el, el2) {
				t.Fatalf("round trip changed %q into %q", out, el2.AppendXML(nil, NSClient))
			}
		}
	})
}

// readMessage is a ~400-byte client message as it comes off the wire.
const readMessage = `<message from='romeo@montague.example/orchard-5fa2c1' to='juliet@capulet.example/balcony-9d3e' type='chat' id='ktx72v49' xml:lang='en'>` +
	`<body>Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike. &lt;3 &amp; more</body>` +
	`<thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread>` +
	`<active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/>` +
	`<origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2-eb6b9e546013'/></message>`

// repeatReader serves header once, then the same stanza for ever.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off += c
		if r.off == len(r.data) {
			r.off = 0
		}
	}
	return n, nil
}

func BenchmarkReadMessage(b *testing.B) {
	src := io.MultiReader(strings.NewReader(header), &repeatReader{data: []byte(readMessage)})
	r := NewReader(src, Limits{})
	if _, err := r.ReadHeader(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(readMessage)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPrimeAfterIdle(t *testing.T) {
	src := &chunks{parts: [][]byte{[]byte(header + `<presence/>`), []byte(`<message to='a@b'/>`)}}
	r := mustStart(t, src, Limits{})
	if p, err := r.Next(); err != nil || p.Local != "presence" {
		t.Fatalf("Next = %v, %v", p, err)
	}
	if !r.Idle() {
		t.Fatal("a reader that consumed all its input must be idle")
	}
	// The caller waits for the peer itself and reads one byte.
	var one [1]byte
	if n, err := src.Read(one[:]); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	r.Prime(one[0])
	if r.Idle() {
		t.Fatal("a primed reader is not idle")
	}
	m, err := r.Next()
	if err != nil || m.Local != "message" || m.Attr("to") != "a@b" {
		t.Fatalf("Next after Prime = %v, %v", m, err)
	}
}

// countReads counts the Reads of its source.
type countReads struct {
	io.Reader
	n int
}

func (c *countReads) Read(p []byte) (int, error) {
	c.n++
	return c.Reader.Read(p)
}

// After a wait, Ready reads the source once, and every element that read
// brought is parsed without another read; a read that brings nothing hands
// back the source's error and leaves the Reader usable.
func TestReadyReadsOnce(t *testing.T) {
	src := &countReads{Reader: &chunks{parts: [][]byte{
		[]byte(header + `<presence/>`), []byte(`<message id='1'/><message id='2'/> <iq id='3' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`),
		nil, []byte(`<message id='4'/>`),
	}}}
	r := mustStart(t, src, Limits{})
	if p, err := r.Next(); err != nil || p.Local != "presence" || !r.Idle() {
		t.Fatalf("Next = %v, %v", p, err)
	}
	before := src.n
	if err := r.Ready(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2", "3"} {
		if r.Idle() {
			t.Fatalf("idle before element %s", id)
		}
		if el, err := r.Next(); err != nil || el.Attr("id") != id {
			t.Fatalf("Next = %v, %v; want element %s", el, err, id)
		}
	}
	if got := src.n - before; got != 1 {
		t.Errorf("three elements after a wait took %d reads, want 1", got)
	}
	if !r.Idle() {
		t.Error("not idle after the last buffered element")
	}
	if err := r.Ready(); !errors.Is(err, errTimeout) {
		t.Fatalf("Ready on a timed-out source = %v", err)
	}
	if err := r.Ready(); err != nil {
		t.Fatal(err)
	}
	if el, err := r.Next(); err != nil || el.Attr("id") != "4" {
		t.Fatalf("Next after a failed Ready = %v, %v", el, err)
	}
}

// A whitespace keepalive leaves the Reader idle once SkipSpace has dropped
// it, without a read: the caller goes back to waiting for the peer itself.
// Whitespace before an element is dropped just the same, and the element
// read whole.
func TestSkipSpace(t *testing.T) {
	src := &countReads{Reader: &chunks{parts: [][]byte{
		[]byte(header + `<presence/>`), []byte(" \n\t "), []byte(`  <message id='1'/>`),
	}}}
	r := mustStart(t, src, Limits{})
	r.SkipSpace() // nothing buffered: nothing to do
	if p, err := r.Next(); err != nil || p.Local != "presence" || !r.Idle() {
		t.Fatalf("Next = %v, %v", p, err)
	}
	if err := r.Ready(); err != nil {
		t.Fatal(err)
	}
	if r.Idle() {
		t.Fatal("idle with a keepalive buffered")
	}
	before := src.n
	r.SkipSpace()
	if !r.Idle() || src.n != before {
		t.Fatalf("after a keepalive: idle %v, %d reads; want idle without a read", r.Idle(), src.n-before)
	}
	if err := r.Ready(); err != nil {
		t.Fatal(err)
	}
	r.SkipSpace()
	if r.Idle() {
		t.Fatal("idle with an element buffered")
	}
	if el, err := r.Next(); err != nil || el.Attr("id") != "1" {
		t.Fatalf("Next after whitespace = %v, %v", el, err)
	}
}
