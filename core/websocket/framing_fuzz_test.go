package websocket

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/koi-im/koi/core/xmlstream"
)

// translateInXML is translateIn as it was, on encoding/xml: the reference
// FuzzTranslateInAgainstEncodingXML holds the scanner to.
func translateInXML(msg []byte) ([]byte, *xmlstream.Error) {
	d := xml.NewDecoder(bytes.NewReader(msg))
	var (
		root        xml.StartElement
		start, end  int64 = -1, -1
		depth       int
		sawDecl     bool
		hasChildren bool
	)
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var syn *xml.SyntaxError
			if errors.As(err, &syn) {
				return nil, &xmlstream.Error{Condition: "not-well-formed", Text: syn.Msg}
			}
			return nil, &xmlstream.Error{Condition: "not-well-formed", Text: err.Error()}
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			// An XML declaration may open a message; some clients send one
			// with <open/>. Anything else is restricted (RFC 6120 §11.1).
			if t.Target != "xml" || sawDecl || start >= 0 {
				return nil, &xmlstream.Error{Condition: "restricted-xml", Text: "processing instruction not allowed"}
			}
			sawDecl = true
		case xml.Comment:
			return nil, &xmlstream.Error{Condition: "restricted-xml", Text: "comment not allowed"}
		case xml.Directive:
			return nil, &xmlstream.Error{Condition: "restricted-xml", Text: "DTD or directive not allowed"}
		case xml.CharData:
			if depth == 0 && len(bytes.TrimLeft(t, " \t\r\n")) > 0 {
				return nil, &xmlstream.Error{Condition: "not-well-formed", Text: "text outside the element"}
			}
		case xml.StartElement:
			if depth == 0 {
				if start >= 0 {
					return nil, &xmlstream.Error{Condition: "not-well-formed", Text: "more than one element in a WebSocket message (RFC 7395 §3.3.3)"}
				}
				start, root = off, t.Copy()
			} else {
				hasChildren = true
			}
			depth++
		case xml.EndElement:
			if depth--; depth == 0 {
				end = d.InputOffset()
			}
		}
	}
	if start < 0 {
		return nil, nil
	}
	switch {
	case root.Name.Space == NSFraming && root.Name.Local == "open":
		if hasChildren {
			return nil, &xmlstream.Error{Condition: "not-well-formed", Text: "<open/> must be empty"}
		}
		return openToHeaderXML(root), nil
	case root.Name.Space == NSFraming && root.Name.Local == "close":
		return []byte(streamFooter), nil
	case root.Name.Space == NSFraming:
		return nil, &xmlstream.Error{Condition: "unsupported-stanza-type", Text: "<" + root.Name.Local + "/> is not an RFC 7395 framing element"}
	case root.Name.Local == "open" || root.Name.Local == "close":
		return nil, &xmlstream.Error{Condition: "invalid-namespace", Text: "<" + root.Name.Local + "/> must be qualified by " + NSFraming + " (RFC 7395 §3.3.2)"}
	case root.Name.Space == xmlstream.NSStream && root.Name.Local == "stream":
		return nil, &xmlstream.Error{Condition: "invalid-namespace", Text: "on a WebSocket the stream opens with <open xmlns='" + NSFraming + "'/> (RFC 7395 §3.4)"}
	}
	return msg[start:end], nil
}

// openToHeaderXML is openToHeader of translateInXML.
func openToHeaderXML(open xml.StartElement) []byte {
	var b strings.Builder
	b.WriteString(streamHeader)
	for _, a := range open.Attr {
		name := a.Name.Local
		switch a.Name.Space {
		case "":
		case "http://www.w3.org/XML/1998/namespace":
			name = "xml:" + name
		default:
			continue // namespace declarations and foreign attributes
		}
		if name == "xmlns" {
			continue
		}
		b.WriteString(" " + name + "='")
		xml.EscapeText(&b, []byte(a.Value)) //nolint:errcheck // a strings.Builder does not fail
		b.WriteString("'")
	}
	b.WriteString(">")
	return []byte(b.String())
}

// readAsC2S reads b as the c2s reader does after a stream header: the
// header's element when b is one, else the element that follows one.
func readAsC2S(b []byte) (*xmlstream.Element, error) {
	in := b
	if !bytes.HasPrefix(b, []byte(streamHeader)) {
		in = append([]byte(streamHeader+">"), b...)
	}
	r := xmlstream.NewReader(bytes.NewReader(in), xmlstream.Limits{})
	h, err := r.ReadHeader()
	if err != nil || bytes.HasPrefix(b, []byte(streamHeader)) {
		return h, err
	}
	return r.Next()
}

// withoutDecl is msg without the whitespace and XML declaration before
// its element.
func withoutDecl(msg []byte) []byte {
	msg = bytes.TrimLeft(msg, " \t\r\n")
	if isXMLDecl(msg) {
		if end := bytes.Index(msg, []byte("?>")); end >= 0 {
			msg = bytes.TrimLeft(msg[end+2:], " \t\r\n")
		}
	}
	return msg
}

// FuzzTranslateInAgainstEncodingXML holds the scanning translateIn to the
// encoding/xml one it replaced, as the client sees it: a message both
// accept becomes the same element (or the same stream header, or the
// footer); one only encoding/xml accepted is one the c2s reader refuses
// too; and what the scanner passes on is read by c2s as one element and
// nothing more, or refused.
func FuzzTranslateInAgainstEncodingXML(f *testing.F) {
	for _, s := range []string{
		"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>",
		"<?xml version='1.0'?>\n<open xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" to=\"a'b\" xml:lang=\"en\"/>",
		"<f:open xmlns:f='urn:ietf:params:xml:ns:xmpp-framing' to='a&amp;b'/>",
		"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
		" <message xmlns='jabber:client' to='b@localhost' id='x>y'><body>hi &amp; <![CDATA[</body>]]></body></message>\n",
		"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
		"<a><b></a></b>", "<a x='1'y='2'/>", "<a></a><b/>", "</a>", "<!-- c --><a/>", "<a/><?p?>",
		"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>", "<a>&#xD800;</a>", "<a b='<'/>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, gerr := translateIn(msg)
		want, werr := translateInXML(msg)
		if gerr == nil && len(got) > 0 && !bytes.HasPrefix(got, []byte(streamHeader)) && string(got) != streamFooter {
			// What the scanner passes on, c2s reads as exactly one
			// element and nothing after it, or refuses: a message cannot
			// end inside an element, nor carry a second one.
			r := xmlstream.NewReader(bytes.NewReader(append([]byte(streamHeader+">"), got...)), xmlstream.Limits{})
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Next(); err == nil {
				if el, err := r.Next(); err != io.EOF {
					t.Fatalf("%q: scanner passed %q, after whose element c2s reads %v, %v", msg, got, el, err)
				}
			}
		}
		if gerr == nil && werr != nil {
			// encoding/xml is stricter than XML 1.0 in places (names
			// from its fifth edition): whatever c2s makes of it, above.
			return
		}
		if gerr != nil && werr == nil {
			// Only encoding/xml accepted, which is laxer than XML in
			// places (no whitespace between attributes...): the message
			// itself must be what c2s refuses.
			if el, err := readAsC2S(withoutDecl(msg)); err == nil {
				t.Fatalf("%q: scanner %v; encoding/xml %q; and c2s reads the message as %s", msg, gerr, want, el)
			}
			return
		}
		if gerr != nil {
			return
		}
		if bytes.HasPrefix(got, []byte(streamHeader)) != bytes.HasPrefix(want, []byte(streamHeader)) {
			t.Fatalf("%q: scanner %q; encoding/xml %q", msg, got, want)
		}
		if !bytes.HasPrefix(got, []byte(streamHeader)) {
			if !bytes.Equal(got, want) {
				t.Fatalf("%q: scanner %q; encoding/xml %q", msg, got, want)
			}
			return
		}
		// Two stream headers: the same to c2s, escaped alike or not.
		gh, gherr := readAsC2S(got)
		wh, wherr := readAsC2S(want)
		if gherr != nil && wherr == nil {
			t.Fatalf("%q: header %q refused (%v); encoding/xml's %q read as %s", msg, got, gherr, want, wh)
		}
		if gherr != nil || wherr != nil {
			return
		}
		for _, a := range []string{"to", "from", "version", "id"} {
			if gh.Attr(a) != wh.Attr(a) {
				t.Fatalf("%q: %s is %q, encoding/xml's %q", msg, a, gh.Attr(a), wh.Attr(a))
			}
		}
	})
}
