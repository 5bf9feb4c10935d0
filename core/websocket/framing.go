package websocket

import (
	"bytes"
	"errors"
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
// It checks the framing rules of RFC 7395 §3.3.3: exactly one complete
// element per message, <open/> and <close/> qualified by the framing
// namespace. A violation is returned as the *xmlstream.Error the stream
// must end with. Everything inside an element (names, attributes,
// references, characters, matching end tags, depth) is left to the c2s
// reader, which checks all of it anyway: this only follows the markup far
// enough to find where the element ends, as the reader will, and refuses
// comments, processing instructions and DTDs (RFC 6120 §11.1). So a
// message costs one pass over its bytes and no allocation; it used to be
// decoded by encoding/xml first, which cost more than all the rest of
// routing it. A message of only whitespace gives nil, nil: it carries
// nothing.
func translateIn(msg []byte) ([]byte, *xmlstream.Error) {
	i := skipSpaces(msg, 0)
	if i == len(msg) {
		return nil, nil
	}
	if bytes.HasPrefix(msg[i:], []byte("<?")) {
		// An XML declaration may open a message; some clients send one
		// with <open/>. Any other processing instruction is restricted.
		if !isXMLDecl(msg[i:]) {
			return nil, restricted(msg[i:])
		}
		end := bytes.Index(msg[i:], []byte("?>"))
		if end < 0 {
			return nil, errIncomplete
		}
		if i = skipSpaces(msg, i+end+2); i == len(msg) {
			return nil, nil
		}
	}
	start := i
	if msg[i] != '<' || bytes.HasPrefix(msg[i:], []byte("<![CDATA[")) {
		return nil, errTextOutside
	}
	if bytes.HasPrefix(msg[i:], []byte("<!")) || bytes.HasPrefix(msg[i:], []byte("<?")) {
		return nil, restricted(msg[i:])
	}
	end, children, xerr := elementEnd(msg, start)
	if xerr != nil {
		return nil, xerr
	}
	if rest := skipSpaces(msg, end); rest < len(msg) {
		switch {
		case bytes.HasPrefix(msg[rest:], []byte("<!")) && !bytes.HasPrefix(msg[rest:], []byte("<![CDATA[")),
			bytes.HasPrefix(msg[rest:], []byte("<?")):
			return nil, restricted(msg[rest:])
		case msg[rest] == '<' && !bytes.HasPrefix(msg[rest:], []byte("<![CDATA[")):
			return nil, &xmlstream.Error{Condition: "not-well-formed", Text: "more than one element in a WebSocket message (RFC 7395 §3.3.3)"}
		default:
			return nil, errTextOutside
		}
	}
	tag := msg[start : start+tagEnd(msg[start:])]
	name, _ := tagName(tag)
	prefix, local, found := strings.Cut(name, ":")
	if !found {
		prefix, local = "", name
	}
	var ns []byte // the root's namespace as written
	declared := false
	ok := rootAttrs(tag, func(n, v []byte, _ byte) {
		if p, isDecl := bytes.CutPrefix(n, []byte("xmlns")); isDecl && (len(p) == 0 && prefix == "" ||
			len(p) > 1 && p[0] == ':' && string(p[1:]) == prefix) {
			ns, declared = v, true
		}
	})
	if !ok {
		return nil, &xmlstream.Error{Condition: "not-well-formed", Text: "malformed start tag"}
	}
	switch {
	case bytes.IndexByte(ns, '&') >= 0:
		// Written with references, which only the c2s reader decodes.
		el, xerr := readElement(msg[start:end])
		if xerr != nil {
			return nil, xerr
		}
		ns = []byte(el.Space)
	case prefix != "" && !declared:
		ns = []byte(prefix) // as encoding/xml names an undeclared prefix
	}
	switch {
	case string(ns) == NSFraming && local == "open":
		if children {
			return nil, &xmlstream.Error{Condition: "not-well-formed", Text: "<open/> must be empty"}
		}
		if _, xerr := readElement(msg[start:end]); xerr != nil {
			return nil, xerr
		}
		return openToHeader(tag), nil
	case string(ns) == NSFraming && local == "close":
		if _, xerr := readElement(msg[start:end]); xerr != nil {
			return nil, xerr
		}
		return []byte(streamFooter), nil
	case string(ns) == NSFraming:
		return nil, &xmlstream.Error{Condition: "unsupported-stanza-type", Text: "<" + local + "/> is not an RFC 7395 framing element"}
	case local == "open" || local == "close":
		return nil, &xmlstream.Error{Condition: "invalid-namespace", Text: "<" + local + "/> must be qualified by " + NSFraming + " (RFC 7395 §3.3.2)"}
	case string(ns) == xmlstream.NSStream && local == "stream":
		return nil, &xmlstream.Error{Condition: "invalid-namespace", Text: "on a WebSocket the stream opens with <open xmlns='" + NSFraming + "'/> (RFC 7395 §3.4)"}
	}
	return msg[start:end], nil
}

// readElement reads el as the c2s reader reads an element: <open/> and
// <close/> become something else, so c2s never sees them, and they are
// read here instead (once or twice a session, unlike stanzas); so is a
// root whose namespace is written with character references.
func readElement(el []byte) (*xmlstream.Element, *xmlstream.Error) {
	in := make([]byte, 0, len(streamHeader)+1+len(el))
	in = append(append(append(in, streamHeader...), '>'), el...)
	r := xmlstream.NewReader(bytes.NewReader(in), xmlstream.Limits{})
	_, err := r.ReadHeader()
	var root *xmlstream.Element
	if err == nil {
		root, err = r.Next()
	}
	if err == nil {
		return root, nil
	}
	var xerr *xmlstream.Error
	if errors.As(err, &xerr) {
		return nil, xerr
	}
	return nil, &xmlstream.Error{Condition: "not-well-formed", Text: err.Error()}
}

// Errors of translateIn that need no details.
var (
	errIncomplete  = &xmlstream.Error{Condition: "not-well-formed", Text: "the message ends inside its element (RFC 7395 §3.3.3: one complete element per message)"}
	errTextOutside = &xmlstream.Error{Condition: "not-well-formed", Text: "text outside the element"}
)

// restricted is the error for the markup at the start of b, which is a
// comment, a processing instruction or a DTD.
func restricted(b []byte) *xmlstream.Error {
	switch {
	case bytes.HasPrefix(b, []byte("<!--")):
		return &xmlstream.Error{Condition: "restricted-xml", Text: "comment not allowed"}
	case bytes.HasPrefix(b, []byte("<?")):
		return &xmlstream.Error{Condition: "restricted-xml", Text: "processing instruction not allowed"}
	}
	return &xmlstream.Error{Condition: "restricted-xml", Text: "DTD or directive not allowed"}
}

func skipSpaces(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// isXMLDecl reports whether b starts with an XML declaration, a
// processing instruction whose target is exactly "xml".
func isXMLDecl(b []byte) bool {
	return len(b) > 5 && string(b[:5]) == "<?xml" && (isSpace(b[5]) || b[5] == '?')
}

// elementEnd follows the element that starts at msg[start] to the end of
// its end tag, counting start and end tags (quoted '>' and CDATA sections
// skipped), and reports whether it has child elements. Names are not
// matched: the c2s reader does that, and on markup it accepts, counting
// finds the same end.
func elementEnd(msg []byte, start int) (end int, children bool, err *xmlstream.Error) {
	depth := 0
	for k := start; k < len(msg); {
		if msg[k] != '<' {
			next := bytes.IndexByte(msg[k:], '<')
			if next < 0 {
				break
			}
			k += next
			continue
		}
		rest := msg[k:]
		switch {
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			e := bytes.Index(rest, []byte("]]>"))
			if e < 0 {
				return 0, false, errIncomplete
			}
			k += e + 3
			continue
		case bytes.HasPrefix(rest, []byte("<!")), bytes.HasPrefix(rest, []byte("<?")):
			return 0, false, restricted(rest)
		}
		e := tagEnd(rest)
		if e < 0 {
			return 0, false, errIncomplete
		}
		switch {
		case rest[1] == '/' && depth == 0:
			return 0, false, &xmlstream.Error{Condition: "not-well-formed", Text: "an end tag without its start tag"}
		case rest[1] == '/':
			depth--
		case rest[e-2] == '/':
			children = children || depth > 0
		default:
			children = children || depth > 0
			depth++
		}
		k += e
		if depth == 0 {
			return k, children, nil
		}
	}
	return 0, false, errIncomplete
}

// rootAttrs calls f with each attribute of a start tag as written (the
// value still escaped, quote the character around it), checking that each
// has the shape name='value' or name="value", after whitespace: what
// openToHeader copies must not be able to change the header's shape. (The
// c2s reader checks the names and values themselves.) It reports whether
// the tag has that shape; f sees the attributes before a bad one.
func rootAttrs(tag []byte, f func(name, value []byte, quote byte)) bool {
	_, i := tagName(tag)
	for {
		sp := skipSpaces(tag, i)
		if sp >= len(tag) {
			return false
		}
		if tag[sp] == '>' || (tag[sp] == '/' && sp+1 < len(tag) && tag[sp+1] == '>') {
			return true
		}
		if sp == i {
			return false // no whitespace before the attribute
		}
		n := sp
		for n < len(tag) && !isSpace(tag[n]) && !strings.ContainsRune("='\"<>/", rune(tag[n])) {
			n++
		}
		if n == sp {
			return false
		}
		j := skipSpaces(tag, n)
		if j >= len(tag) || tag[j] != '=' {
			return false
		}
		j = skipSpaces(tag, j+1)
		if j >= len(tag) || (tag[j] != '\'' && tag[j] != '"') {
			return false
		}
		q := tag[j]
		v := bytes.IndexByte(tag[j+1:], q)
		if v < 0 {
			return false
		}
		f(tag[sp:n], tag[j+1:j+1+v], q)
		i = j + v + 2
	}
}

// openToHeader writes the stream header for the start tag of an <open/>,
// carrying its to, from, version, id and xml:lang as they were written
// (escaped), requoted with ' where they were in ".
func openToHeader(tag []byte) []byte {
	b := []byte(streamHeader)
	rootAttrs(tag, func(name, value []byte, quote byte) {
		if string(name) == "xmlns" || (bytes.IndexByte(name, ':') >= 0 && !bytes.HasPrefix(name, []byte("xml:"))) {
			return // namespace declarations and foreign attributes
		}
		b = append(b, ' ')
		b = append(b, name...)
		b = append(b, "='"...)
		if quote == '"' {
			b = append(b, bytes.ReplaceAll(value, []byte("'"), []byte("&apos;"))...)
		} else {
			b = append(b, value...)
		}
		b = append(b, '\'')
	})
	return append(b, '>')
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
