package websocket

import (
	"strings"
	"testing"
)

func TestTranslateIn(t *testing.T) {
	const fr = "xmlns='urn:ietf:params:xml:ns:xmpp-framing'"
	tests := []struct {
		name, in, want string
		cond           string // the stream error expected instead
	}{
		{"open", "<open " + fr + " to='localhost' version='1.0'/>",
			"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>", ""},
		{"open with lang, from and declaration", "<?xml version='1.0'?>\n<open xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" from=\"a@localhost\" to=\"localhost\" xml:lang=\"en\" version=\"1.0\"/>",
			"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='a@localhost' to='localhost' xml:lang='en' version='1.0'>", ""},
		{"open escapes", "<open " + fr + " to='a&apos;b&lt;'/>",
			"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a&apos;b&lt;'>", ""},
		{"open requotes", "<open " + fr + ` to="a'b" version = "1.0"/>`,
			"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a&apos;b' version='1.0'>", ""},
		{"open with an escaped namespace", "<open xmlns='urn:ietf:params:xml:ns:xmpp-&#x66;raming' to='localhost'/>",
			"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost'>", ""},
		{"stanza with CDATA and a quoted >", "<message xmlns='jabber:client' id='a>b'><body><![CDATA[</body></message>]]></body></message>",
			"<message xmlns='jabber:client' id='a>b'><body><![CDATA[</body></message>]]></body></message>", ""},
		{"open with a prefix", "<f:open xmlns:f='urn:ietf:params:xml:ns:xmpp-framing' to='localhost'/>",
			"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost'>", ""},
		{"close", "<close " + fr + "/>", "</stream:stream>", ""},
		{"stanza passes through", " <message xmlns='jabber:client' to='b@localhost'><body>hi &amp; bye</body></message>\n",
			"<message xmlns='jabber:client' to='b@localhost'><body>hi &amp; bye</body></message>", ""},
		{"stanza without xmlns passes through", "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
			"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>", ""},
		{"sasl", "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj1hLHI9eA==</auth>",
			"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj1hLHI9eA==</auth>", ""},
		{"whitespace only", " \r\n", "", ""},
		{"empty", "", "", ""},
		{"not XML", "hello", "", "not-well-formed"},
		{"unclosed element", "<message xmlns='jabber:client'><body>", "", "not-well-formed"},
		{"two elements", "<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>", "", "not-well-formed"},
		{"text after", "<presence xmlns='jabber:client'/>x", "", "not-well-formed"},
		{"comment", "<!-- hi --><presence/>", "", "restricted-xml"},
		{"processing instruction", "<presence/><?php x?>", "", "restricted-xml"},
		{"doctype", "<!DOCTYPE x><presence/>", "", "restricted-xml"},
		{"open without framing namespace", "<open to='localhost' version='1.0'/>", "", "invalid-namespace"},
		{"close in jabber:client", "<close xmlns='jabber:client'/>", "", "invalid-namespace"},
		{"stream header", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='localhost'/>", "", "invalid-namespace"},
		{"unknown framing element", "<reopen " + fr + "/>", "", "unsupported-stanza-type"},
		{"open with children", "<open " + fr + "><x/></open>", "", "not-well-formed"},
		{"open with a malformed attribute", "<open " + fr + " to='a'from='b'/>", "", "not-well-formed"},
		{"open with an attribute breaking out", "<open " + fr + " to='a' x=y/>", "", "not-well-formed"},
		{"end tag first", "</message>", "", "not-well-formed"},
		{"comment inside", "<message><!-- x --></message>", "", "restricted-xml"},
		{"processing instruction inside", "<message><?x y?></message>", "", "restricted-xml"},
		{"CDATA outside", "<![CDATA[x]]>", "", "not-well-formed"},
		{"unclosed CDATA", "<message><![CDATA[x</message>", "", "not-well-formed"},
		{"unclosed tag", "<message to='a", "", "not-well-formed"},
		{"other processing instruction first", "<?xml-stylesheet x?><presence/>", "", "restricted-xml"},
		{"comment after", "<presence/><!-- x -->", "", "restricted-xml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := translateIn([]byte(tt.in))
			switch {
			case tt.cond != "":
				if err == nil || err.Condition != tt.cond {
					t.Fatalf("translateIn(%q) = %q, %v; want stream error %s", tt.in, got, err, tt.cond)
				}
			case err != nil:
				t.Fatalf("translateIn(%q): %v", tt.in, err)
			case string(got) != tt.want:
				t.Errorf("translateIn(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTranslateOut(t *testing.T) {
	const (
		header   = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='abc' version='1.0' xml:lang='en' from='localhost' to='a@localhost'>"
		open     = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='abc' version='1.0' xml:lang='en' from='localhost' to='a@localhost'/>"
		features = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism></mechanisms></stream:features>"
		closeMsg = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
	)
	tests := []struct {
		name      string
		writes    []string // successive Writes
		want      []string // messages, in order
		keepalive bool     // the last write was a keepalive
	}{
		{"header and features in one write", []string{header + features}, []string{open, features}, false},
		{"header without declaration or lang", []string{"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x' version='1.0'>"},
			[]string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='x' version='1.0'/>"}, false},
		{"features without xmlns:stream get it", []string{"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"},
			[]string{"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"}, false},
		{"stanza gets jabber:client", []string{"<message from='a@localhost/r' to='b@localhost' type='chat'><body>x &lt; y &gt; z</body></message>"},
			[]string{"<message xmlns='jabber:client' from='a@localhost/r' to='b@localhost' type='chat'><body>x &lt; y &gt; z</body></message>"}, false},
		{"empty stanza gets jabber:client", []string{"<presence/>"}, []string{"<presence xmlns='jabber:client'/>"}, false},
		{"stanza with xmlns kept", []string{"<iq xmlns='jabber:client' type='result' id='1'/>"}, []string{"<iq xmlns='jabber:client' type='result' id='1'/>"}, false},
		{"sasl element kept", []string{"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1x</success>"},
			[]string{"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1x</success>"}, false},
		{"quoted > and nested same name", []string{"<message to='a' id='x&gt;y' note='>'><message><message/></message></message>"},
			[]string{"<message xmlns='jabber:client' to='a' id='x&gt;y' note='>'><message><message/></message></message>"}, false},
		{"batch of stanzas", []string{"<presence/><message><body>1</body></message><iq type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>"},
			[]string{"<presence xmlns='jabber:client'/>", "<message xmlns='jabber:client'><body>1</body></message>", "<iq xmlns='jabber:client' type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>"}, false},
		{"element split across writes", []string{"<message><bo", "dy>1</body></mess", "age>"},
			[]string{"<message xmlns='jabber:client'><body>1</body></message>"}, false},
		{"stream error then close", []string{"<stream:error xmlns:stream='http://etherx.jabber.org/streams'><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"},
			[]string{"<stream:error xmlns:stream='http://etherx.jabber.org/streams'><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>", closeMsg}, false},
		{"error before any header", []string{header + "<stream:error xmlns:stream='http://etherx.jabber.org/streams'><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"},
			[]string{open, "<stream:error xmlns:stream='http://etherx.jabber.org/streams'><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>", closeMsg}, false},
		{"close split", []string{"</stream:", "stream>"}, []string{closeMsg}, false},
		{"whitespace keepalive", []string{" "}, nil, true},
		{"whitespace between elements dropped", []string{"<presence/> \n <presence/>"}, []string{"<presence xmlns='jabber:client'/>", "<presence xmlns='jabber:client'/>"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o outbound
			var got []string
			var keepalive bool
			for _, w := range tt.writes {
				msgs, ka, err := o.translate([]byte(w))
				if err != nil {
					t.Fatalf("translate(%q): %v", w, err)
				}
				for _, m := range msgs {
					got = append(got, string(m))
				}
				keepalive = ka
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("messages\n got %q\nwant %q", got, tt.want)
			}
			if keepalive != tt.keepalive {
				t.Errorf("keepalive = %v, want %v", keepalive, tt.keepalive)
			}
			if len(o.pending) != 0 {
				t.Errorf("left pending: %q", o.pending)
			}
		})
	}
}

func TestTranslateOutRejectsText(t *testing.T) {
	var o outbound
	if _, _, err := o.translate([]byte("hello")); err == nil {
		t.Error("text at the top level was framed")
	}
}

// BenchmarkTranslateIn is the cost of one chat message from a WebSocket
// client before c2s reads it.
func BenchmarkTranslateIn(b *testing.B) {
	msg := []byte(`<message xmlns='jabber:client' to='bob@example.com' type='chat' id='a1b2c3d4'><body>` + strings.Repeat("hello bob, ", 25) +
		`</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := translateIn(msg); err != nil {
			b.Fatal(err)
		}
	}
}
