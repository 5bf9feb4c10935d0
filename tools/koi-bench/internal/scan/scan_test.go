package scan

import (
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkReader returns its input in pieces of random length, to split
// tokens at every possible place.
type chunkReader struct {
	s   string
	rng *rand.Rand
	max int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	n := min(1+c.rng.IntN(c.max), len(p), len(c.s))
	copy(p, c.s[:n])
	c.s = c.s[n:]
	return n, nil
}

// tokens reads everything and renders each token as KIND:raw.
func tokens(t *testing.T, r io.Reader, bufSize int) ([]string, error) {
	t.Helper()
	sc := NewScanner(r, bufSize, 1<<16)
	var out []string
	for {
		tok, err := sc.Next()
		if err != nil {
			return out, err
		}
		kind := map[Kind]string{Header: "H", Element: "E", End: "X"}[tok.Kind]
		out = append(out, kind+":"+string(tok.Raw))
	}
}

func TestScannerSplitsStream(t *testing.T) {
	const header = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='a>b' version='1.0'>`
	tests := []struct {
		name string
		in   string
		want []string
	}{{
		name: "declaration, header, features, stanzas, keepalives, end",
		in: "<?xml version='1.0'?>" + header +
			"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>" +
			"  \n <message to='a@b' id=\"x>y\"><body>1 &lt; 2 &amp;&amp; 3 > 2</body></message> " +
			"<presence/><iq type='result' id='p'/>\t</stream:stream>",
		want: []string{
			"H:" + header,
			"E:<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
			"E:<message to='a@b' id=\"x>y\"><body>1 &lt; 2 &amp;&amp; 3 > 2</body></message>",
			"E:<presence/>",
			"E:<iq type='result' id='p'/>",
			"X:</stream:stream>",
		},
	}, {
		name: "comment and CDATA inside a stanza",
		in:   header + "<message><!-- a <b> c --><body><![CDATA[<not a tag/>]]></body></message>",
		want: []string{
			"H:" + header,
			"E:<message><!-- a <b> c --><body><![CDATA[<not a tag/>]]></body></message>",
		},
	}, {
		name: "deep nesting and self-closing children",
		in:   header + "<iq><query xmlns='jabber:iq:roster'><item jid='a'/><item jid='b'><group>x</group></item></query></iq>",
		want: []string{
			"H:" + header,
			"E:<iq><query xmlns='jabber:iq:roster'><item jid='a'/><item jid='b'><group>x</group></item></query></iq>",
		},
	}, {
		name: "stream error then end",
		in:   header + "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
		want: []string{
			"H:" + header,
			"E:<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
			"X:</stream:stream>",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readers := map[string]io.Reader{
				"whole":        strings.NewReader(tt.in),
				"byte by byte": iotest.OneByteReader(strings.NewReader(tt.in)),
			}
			for seed := range 20 {
				readers["random chunks "+string(rune('a'+seed))] = &chunkReader{s: tt.in, rng: rand.New(rand.NewPCG(uint64(seed), 7)), max: 40}
			}
			for rname, r := range readers {
				// A small buffer forces compaction and growth.
				got, err := tokens(t, r, 256)
				if !errors.Is(err, io.EOF) {
					t.Fatalf("%s: error %v, want io.EOF after the tokens", rname, err)
				}
				if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
					t.Fatalf("%s: got\n%s\nwant\n%s", rname, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
				}
			}
		})
	}
}

func TestScannerErrors(t *testing.T) {
	const header = "<stream:stream xmlns='jabber:client'>"
	tests := []struct {
		name string
		in   string
		want string // substring of the error; "" means ErrTooLarge
	}{
		{"DTD", header + "<!DOCTYPE foo [<!ENTITY x 'y'>]>", "unsupported markup"},
		{"closing tag before the header", "</stream:stream>", "before the stream header"},
		{"element over the limit", header + "<message><body>" + strings.Repeat("x", 2000) + "</body></message>", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := NewScanner(strings.NewReader(tt.in), 256, 1024)
			var err error
			for err == nil {
				_, err = sc.Next()
			}
			switch {
			case tt.want == "" && !errors.Is(err, ErrTooLarge):
				t.Fatalf("error %v, want ErrTooLarge", err)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			// The error sticks.
			if _, err2 := sc.Next(); err2 != err {
				t.Fatalf("second Next: %v, want the same error %v", err2, err)
			}
		})
	}
}

func TestScannerReleaseAndTryNext(t *testing.T) {
	pr, pw := io.Pipe()
	sc := NewScanner(pr, 512, 0)
	go func() {
		pw.Write([]byte("<stream:stream><a/><b/>"))
		pw.Write([]byte("<c/>"))
		pw.Close()
	}()
	want := []string{"<stream:stream>", "<a/>", "<b/>"}
	for _, w := range want {
		tok, err := sc.Next()
		if err != nil || string(tok.Raw) != w {
			t.Fatalf("Next = %q, %v; want %q", tok.Raw, err, w)
		}
	}
	if _, ok, err := sc.TryNext(); ok || err != nil {
		t.Fatalf("TryNext with nothing buffered = %v, %v; want false, nil", ok, err)
	}
	if !sc.Release() {
		t.Fatal("Release with nothing buffered did not drop the buffer")
	}
	tok, err := sc.Next()
	if err != nil || string(tok.Raw) != "<c/>" {
		t.Fatalf("Next after Release = %q, %v", tok.Raw, err)
	}
}

func TestElementHelpers(t *testing.T) {
	msg := []byte(`<message xml:lang='en' to="bob@example.com" type='chat' id='k&apos;1'><body>hi &amp; bye &#x263A;</body>` +
		`<error type='cancel'><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
	if n := string(Name(msg)); n != "message" {
		t.Errorf("Name = %q", n)
	}
	if n := string(Name([]byte("<stream:features/>"))); n != "features" {
		t.Errorf("Name of a prefixed element = %q", n)
	}
	for _, c := range []struct{ attr, want string }{{"to", "bob@example.com"}, {"type", "chat"}, {"id", "k&apos;1"}, {"xml:lang", "en"}, {"lang", ""}} {
		v, ok := Attr(msg, c.attr)
		if string(v) != c.want || ok != (c.want != "") {
			t.Errorf("Attr(%q) = %q, %v; want %q", c.attr, v, ok, c.want)
		}
	}
	if v := Unescape([]byte("k&apos;1 &lt;&gt;&quot;&#65;&#x42;&bogus;")); v != `k'1 <>"AB&bogus;` {
		t.Errorf("Unescape = %q", v)
	}
	body, ok := Child(msg, "body")
	if !ok || Text(body) != "hi & bye ☺" {
		t.Errorf("Child body = %q %v, text %q", body, ok, Text(body))
	}
	e, _ := Child(msg, "error")
	if c := Condition(e); c != "item-not-found" {
		t.Errorf("Condition = %q", c)
	}
	var kids []string
	Elements(msg, func(c []byte) bool { kids = append(kids, string(Name(c))); return true })
	if strings.Join(kids, ",") != "body,error" {
		t.Errorf("Elements = %v", kids)
	}
	if _, ok := Child(msg, "nothing"); ok {
		t.Error("Child found a missing element")
	}
	if got := string(Escape(nil, `a<'&">`)); got != "a&lt;&apos;&amp;&quot;&gt;" {
		t.Errorf("Escape = %q", got)
	}
}
