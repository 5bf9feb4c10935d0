package websocket

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"

	"github.com/koi-im/koi/core/xmlstream"
)

// NSFraming qualifies <open/> and <close/>, which replace the stream
// header and footer on a WebSocket (RFC 7395 §3.3.2).
const NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// streamHeader starts the RFC 6120 header an <open/> becomes. The c2s
// reader wants exactly this shape: jabber:client content and the stream
// prefix declared.
const streamHeader = "<stream:stream xmlns='jabber:client' xmlns:stream='" + xmlstream.NSStream + "'"

// streamFooter is what a <close/> becomes.
const streamFooter = "</stream:stream>"

// Frames koi sends for the stream header and footer.
const (
	openStart  = "<open xmlns='" + NSFraming + "'"
	closeFrame = "<close xmlns='" + NSFraming + "'/>"
)

// translateIn turns one message from the client into the bytes of an
// RFC 6120 stream that the c2s reader expects: <open/> becomes a stream
// header, <close/> the closing tag, and any other element passes through
// unchanged (without an XML declaration or surrounding whitespace).
//
// It checks the framing rules of RFC 7395 §3.3.3: exactly one complete,
// well-formed element per message, <open/> and <close/> qualified by the
// framing namespace. A violation is returned as the *xmlstream.Error the
// stream must end with. Everything inside an element (namespaces, depth,
// restricted XML) is left to the c2s reader, which checks it anyway. A
// message of only whitespace gives nil, nil: it carries nothing.
func translateIn(msg []byte) ([]byte, *xmlstream.Error) {
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
		return openToHeader(root), nil
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

// openToHeader writes the stream header for an <open/>, carrying its
// to, from, version, id and xml:lang.
func openToHeader(open xml.StartElement) []byte {
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

// outbound splits what c2s writes into the messages of RFC 7395. It needs
// no XML parser: the bytes are koi's own serialisation, always
// well-formed, without comments, CDATA or markup in attribute values
// outside quotes, so tracking tags, quotes and depth is enough to find
// where a top-level element ends.
type outbound struct {
	pending []byte // the start of an element whose end is not written yet
}

// errBadOutput means c2s wrote something that is not a stream element;
// it never should.
var errBadOutput = errors.New("websocket: output is not a sequence of XML elements")

// translate takes the next bytes c2s wrote and returns the messages to
// send, each one element: the stream header becomes <open/>, the closing
// tag <close/>, a top-level element without a namespace gets
// xmlns='jabber:client' and a stream:-prefixed one its xmlns:stream.
// XML declarations are dropped. keepalive is true when p was only
// whitespace, which on TCP is a keepalive (RFC 6120 §4.6.1) and has no
// place in a WebSocket message.
func (o *outbound) translate(p []byte) (msgs [][]byte, keepalive bool, err error) {
	buf := p
	if len(o.pending) > 0 {
		// A fresh buffer: the messages returned may point into it.
		buf = append(append(make([]byte, 0, len(o.pending)+len(p)), o.pending...), p...)
	}
	i := 0
	for {
		j := i
		for j < len(buf) && isSpace(buf[j]) {
			j++
		}
		if j == len(buf) {
			i = j
			break
		}
		if buf[j] != '<' {
			return nil, false, errBadOutput
		}
		n, msg, err := nextUnit(buf[j:])
		if err != nil {
			return nil, false, err
		}
		if n == 0 {
			i = j
			break
		}
		if msg != nil {
			msgs = append(msgs, msg)
		}
		i = j + n
	}
	o.pending = nil
	if i < len(buf) {
		o.pending = bytes.Clone(buf[i:])
	}
	keepalive = len(msgs) == 0 && len(p) > 0 && len(bytes.TrimLeft(p, " \t\r\n")) == 0
	return msgs, keepalive, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// nextUnit reads the top-level unit at the start of b (which starts with
// '<'): it returns how many bytes it took and the message to send for it
// (nil for an XML declaration), or 0 when b does not hold all of it yet.
func nextUnit(b []byte) (int, []byte, error) {
	switch {
	case bytes.HasPrefix(b, []byte("<?")):
		end := bytes.Index(b, []byte("?>"))
		if end < 0 {
			return 0, nil, nil
		}
		return end + 2, nil, nil
	case bytes.HasPrefix(b, []byte(streamFooter)):
		return len(streamFooter), []byte(closeFrame), nil
	case len(b) < len(streamFooter) && bytes.HasPrefix([]byte(streamFooter), b):
		return 0, nil, nil
	}
	end := tagEnd(b)
	if end < 0 {
		return 0, nil, nil
	}
	tag := b[:end]
	name, _ := tagName(tag)
	if name == "stream:stream" {
		return end, headerToOpen(tag), nil
	}
	depth := 0
	for k := 0; k < len(b); {
		if b[k] != '<' {
			next := bytes.IndexByte(b[k:], '<')
			if next < 0 {
				return 0, nil, nil
			}
			k += next
			continue
		}
		e := tagEnd(b[k:])
		if e < 0 {
			return 0, nil, nil
		}
		t := b[k : k+e]
		switch {
		case len(t) > 1 && t[1] == '/':
			depth--
		case len(t) > 1 && (t[1] == '?' || t[1] == '!'):
			// Never written by koi; nothing to count.
		case t[len(t)-2] == '/':
		default:
			depth++
		}
		k += e
		if depth < 0 {
			return 0, nil, errBadOutput
		}
		if depth == 0 {
			return k, qualify(b[:k]), nil
		}
	}
	return 0, nil, nil
}

// tagEnd returns the length of the tag at the start of b, up to and
// including its '>', or -1 if b ends first. A '>' inside a quoted
// attribute value does not end the tag.
func tagEnd(b []byte) int {
	var quote byte
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '>':
			return i + 1
		}
	}
	return -1
}

// tagName returns the element name of a start tag and where it ends.
func tagName(tag []byte) (string, int) {
	i := 1
	for i < len(tag) && !isSpace(tag[i]) && tag[i] != '/' && tag[i] != '>' {
		i++
	}
	return string(tag[1:i]), i
}

// attr is one attribute of a start tag as written: the value is still
// escaped, and quote is the character around it.
type attr struct {
	name, value string
	quote       byte
}

// tagAttrs returns the attributes of a start tag.
func tagAttrs(tag []byte) []attr {
	_, i := tagName(tag)
	var out []attr
	for {
		for i < len(tag) && isSpace(tag[i]) {
			i++
		}
		if i >= len(tag) || tag[i] == '/' || tag[i] == '>' {
			return out
		}
		n := i
		for i < len(tag) && tag[i] != '=' && !isSpace(tag[i]) {
			i++
		}
		name := string(tag[n:i])
		for i < len(tag) && (tag[i] == '=' || isSpace(tag[i])) {
			i++
		}
		if i >= len(tag) {
			return out
		}
		q := tag[i]
		v := bytes.IndexByte(tag[i+1:], q)
		if v < 0 {
			return out
		}
		out = append(out, attr{name, string(tag[i+1 : i+1+v]), q})
		i += v + 2
	}
}

// headerToOpen writes the <open/> for koi's stream header, with the same
// id, from, to, version and xml:lang.
func headerToOpen(tag []byte) []byte {
	b := []byte(openStart)
	for _, a := range tagAttrs(tag) {
		if a.name == "xmlns" || strings.HasPrefix(a.name, "xmlns:") {
			continue
		}
		b = append(b, ' ')
		b = append(b, a.name...)
		b = append(b, '=', a.quote)
		b = append(b, a.value...)
		b = append(b, a.quote)
	}
	return append(b, "/>"...)
}

// qualify makes a top-level element stand alone, as each WebSocket
// message must (RFC 7395 §3.3.3): in a TCP stream it inherits
// jabber:client and the stream prefix from the header, here it declares
// them itself. It returns el when nothing is missing.
func qualify(el []byte) []byte {
	tag := el[:tagEnd(el)]
	name, nameEnd := tagName(tag)
	var decl, want string
	switch {
	case strings.HasPrefix(name, "stream:"):
		decl, want = " xmlns:stream='"+xmlstream.NSStream+"'", "xmlns:stream"
	case strings.Contains(name, ":"):
		return el
	default:
		decl, want = " xmlns='"+xmlstream.NSClient+"'", "xmlns"
	}
	for _, a := range tagAttrs(tag) {
		if a.name == want {
			return el
		}
	}
	out := make([]byte, 0, len(el)+len(decl))
	out = append(out, el[:nameEnd]...)
	out = append(out, decl...)
	return append(out, el[nameEnd:]...)
}
