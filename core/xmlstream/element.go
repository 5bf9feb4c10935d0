// Package xmlstream is the XML layer of an XMPP stream: a small element tree
// with allocation-lean serialisation, and a stream reader that enforces the
// XML subset and resource limits of RFC 6120 §11.
package xmlstream

import (
	"strconv"
	"unicode/utf8"
)

// Namespaces the stream layer needs to know by name.
const (
	NSStream = "http://etherx.jabber.org/streams"
	NSClient = "jabber:client"
	NSXML    = "http://www.w3.org/XML/1998/namespace"
)

// streamPrefix is the prefix used when serialising elements qualified by
// NSStream; peers with non-namespace-aware parsers still expect it.
const streamPrefix = "stream"

// Attr is one attribute. Space is "" for plain (unqualified) attributes and
// NSXML for xml:lang and friends.
type Attr struct {
	Space, Local, Value string
}

// Node is one child of an Element: an element when Elem != nil, otherwise
// character data in Text.
type Node struct {
	Elem *Element
	Text string
}

// Element is an XML element with resolved namespace. Namespace declaration
// attributes are never stored: Space carries the namespace, and
// serialisation re-creates the declarations it needs.
type Element struct {
	Space, Local string // namespace URI (resolved) and local name
	Attrs        []Attr
	Children     []Node // mixed content, in document order
}

// NewElement returns an empty element with the given namespace and local name.
func NewElement(space, local string) *Element {
	return &Element{Space: space, Local: local}
}

// Attr returns the value of the plain attribute local, or "" if absent.
func (e *Element) Attr(local string) string {
	return e.AttrNS("", local)
}

// AttrNS returns the value of the attribute {space}local, or "" if absent.
func (e *Element) AttrNS(space, local string) string {
	for i := range e.Attrs {
		if e.Attrs[i].Local == local && e.Attrs[i].Space == space {
			return e.Attrs[i].Value
		}
	}
	return ""
}

// SetAttr sets or replaces the plain attribute local and returns e.
func (e *Element) SetAttr(local, value string) *Element {
	return e.SetAttrNS("", local, value)
}

// SetAttrNS sets or replaces the attribute {space}local and returns e.
func (e *Element) SetAttrNS(space, local, value string) *Element {
	for i := range e.Attrs {
		if e.Attrs[i].Local == local && e.Attrs[i].Space == space {
			e.Attrs[i].Value = value
			return e
		}
	}
	e.Attrs = append(e.Attrs, Attr{Space: space, Local: local, Value: value})
	return e
}

// RemoveAttr removes the plain attribute local, if present, and returns e.
func (e *Element) RemoveAttr(local string) *Element {
	for i := range e.Attrs {
		if e.Attrs[i].Local == local && e.Attrs[i].Space == "" {
			e.Attrs = append(e.Attrs[:i], e.Attrs[i+1:]...)
			return e
		}
	}
	return e
}

// Child returns the first element child named {space}local, or nil.
func (e *Element) Child(space, local string) *Element {
	for _, n := range e.Children {
		if n.Elem != nil && n.Elem.Local == local && n.Elem.Space == space {
			return n.Elem
		}
	}
	return nil
}

// FirstChild returns the first element child, or nil.
func (e *Element) FirstChild() *Element {
	for _, n := range e.Children {
		if n.Elem != nil {
			return n.Elem
		}
	}
	return nil
}

// Elements returns the element children in order, in a new slice.
func (e *Element) Elements() []*Element {
	var out []*Element
	for _, n := range e.Children {
		if n.Elem != nil {
			out = append(out, n.Elem)
		}
	}
	return out
}

// AppendChild appends c as the last child and returns e.
func (e *Element) AppendChild(c *Element) *Element {
	e.Children = append(e.Children, Node{Elem: c})
	return e
}

// AppendText appends character data and returns e. Adjacent text is merged
// so that a tree built from pieces equals the same tree after a re-parse.
func (e *Element) AppendText(s string) *Element {
	if s == "" {
		return e
	}
	if n := len(e.Children); n > 0 && e.Children[n-1].Elem == nil {
		e.Children[n-1].Text += s
		return e
	}
	e.Children = append(e.Children, Node{Text: s})
	return e
}

// Text returns the concatenation of the direct text children.
func (e *Element) Text() string {
	var out string
	var buf []byte
	count := 0
	for _, n := range e.Children {
		if n.Elem != nil || n.Text == "" {
			continue
		}
		switch count {
		case 0:
			out = n.Text
		case 1:
			buf = append(append(buf, out...), n.Text...)
		default:
			buf = append(buf, n.Text...)
		}
		count++
	}
	if count > 1 {
		return string(buf)
	}
	return out
}

// RemoveChildren removes every element child named {space}local and
// returns e. Text children are kept.
func (e *Element) RemoveChildren(space, local string) *Element {
	kept := e.Children[:0]
	for _, n := range e.Children {
		if n.Elem != nil && n.Elem.Local == local && n.Elem.Space == space {
			continue
		}
		kept = append(kept, n)
	}
	// Clear the tail so removed elements can be collected.
	for i := len(kept); i < len(e.Children); i++ {
		e.Children[i] = Node{}
	}
	e.Children = kept
	return e
}

// Copy returns a deep copy of e.
func (e *Element) Copy() *Element {
	if e == nil {
		return nil
	}
	c := &Element{Space: e.Space, Local: e.Local}
	if len(e.Attrs) > 0 {
		c.Attrs = append([]Attr(nil), e.Attrs...)
	}
	if len(e.Children) > 0 {
		c.Children = make([]Node, len(e.Children))
		for i, n := range e.Children {
			if n.Elem != nil {
				c.Children[i] = Node{Elem: n.Elem.Copy()}
			} else {
				c.Children[i] = Node{Text: n.Text}
			}
		}
	}
	return c
}

// String returns the serialised element with all namespaces declared.
func (e *Element) String() string {
	return string(e.AppendXML(nil, ""))
}

// AppendXML appends the serialised element to buf and returns the extended
// buffer. parentNS is the default namespace in scope where the element is
// written (for a stanza on a c2s stream, NSClient).
//
// An xmlns='…' declaration is emitted only where the element's namespace
// differs from the namespace in scope. Elements in NSStream are written with
// the "stream" prefix and declare it themselves, so the output is correct
// standalone and inside a stream. Attributes in other namespaces get a
// prefix declared on the element; xml:lang uses the predeclared xml prefix.
// Text and attribute values are escaped, and characters that XML cannot
// carry (control characters, invalid UTF-8) become U+FFFD, so the output is
// always well-formed.
func (e *Element) AppendXML(buf []byte, parentNS string) []byte {
	buf = append(buf, '<')
	defaultNS := parentNS
	switch e.Space {
	case NSStream:
		buf = append(buf, streamPrefix...)
		buf = append(buf, ':')
		buf = append(buf, e.Local...)
		buf = append(buf, " xmlns:"+streamPrefix+"='"+NSStream+"'"...)
	case NSXML:
		// The xml namespace may not be the default namespace; its prefix is
		// predeclared.
		buf = append(buf, "xml:"...)
		buf = append(buf, e.Local...)
	default:
		buf = append(buf, e.Local...)
		if e.Space != parentNS {
			buf = append(buf, " xmlns='"...)
			buf = appendEscaped(buf, e.Space, true)
			buf = append(buf, '\'')
			defaultNS = e.Space
		}
	}
	buf = e.appendAttrs(buf)
	if len(e.Children) == 0 {
		return append(buf, "/>"...)
	}
	buf = append(buf, '>')
	for _, n := range e.Children {
		if n.Elem != nil {
			buf = n.Elem.AppendXML(buf, defaultNS)
		} else {
			buf = appendEscaped(buf, n.Text, false)
		}
	}
	buf = append(buf, "</"...)
	switch e.Space {
	case NSStream:
		buf = append(buf, streamPrefix+":"...)
	case NSXML:
		buf = append(buf, "xml:"...)
	}
	buf = append(buf, e.Local...)
	return append(buf, '>')
}

// appendAttrs writes the attributes, declaring a generated prefix (ns1,
// ns2, …) for each distinct foreign namespace on first use.
func (e *Element) appendAttrs(buf []byte) []byte {
	for i, a := range e.Attrs {
		buf = append(buf, ' ')
		switch a.Space {
		case "":
		case NSXML:
			buf = append(buf, "xml:"...)
		default:
			// Reuse the prefix of an earlier attribute in the same namespace;
			// attribute counts are tiny, so a scan beats a map.
			idx := i
			for j := 0; j < i; j++ {
				if e.Attrs[j].Space == a.Space {
					idx = j
					break
				}
			}
			if idx == i {
				buf = append(buf, "xmlns:ns"...)
				buf = strconv.AppendInt(buf, int64(i+1), 10)
				buf = append(buf, "='"...)
				buf = appendEscaped(buf, a.Space, true)
				buf = append(buf, "' "...)
			}
			buf = append(buf, "ns"...)
			buf = strconv.AppendInt(buf, int64(idx+1), 10)
			buf = append(buf, ':')
		}
		buf = append(buf, a.Local...)
		buf = append(buf, "='"...)
		buf = appendEscaped(buf, a.Value, true)
		buf = append(buf, '\'')
	}
	return buf
}

// AppendAttrValue appends s escaped for an attribute value quoted with
// either quote character.
func AppendAttrValue(buf []byte, s string) []byte { return appendEscaped(buf, s, true) }

// appendEscaped appends s with markup characters escaped. In attribute
// values whitespace other than space is written as character references so
// that attribute-value normalisation by the peer cannot change it; \r is
// escaped in text too, because parsers turn a literal \r into \n.
func appendEscaped(buf []byte, s string, attr bool) []byte {
	special := &textSpecial
	if attr {
		special = &attrSpecial
	}
	last, slow := 0, 0
	for i := 0; i < len(s); {
		// Eight bytes at a time past plain text, the common case. A
		// word with anything to look at goes byte by byte, all of it,
		// before the next word is tried: text with a special byte in
		// every word (any non-Latin script) costs one try per word.
		if i >= slow && i+8 <= len(s) {
			// Written out rather than called: this loop is most of
			// what writing a stanza costs.
			if w := word(s, i); w&msb == 0 { // else non-ASCII
				bad := has0(w^('&'*lsb)) | has0(w^('<'*lsb)) | has0(w^('>'*lsb))
				ctrl := (w - 0x20*lsb) &^ w & msb
				if attr {
					bad |= ctrl | has0(w^('\''*lsb)) | has0(w^('"'*lsb))
				} else if bad == 0 && ctrl != 0 && !textControlsOK(w) {
					bad = 1
				}
				if bad == 0 {
					i += 8
					continue
				}
			}
			slow = i + 8
		}
		b := s[i]
		if !special[b] {
			i++
			continue
		}
		var esc string
		width := 1
		if b < utf8.RuneSelf {
			switch b {
			case '&':
				esc = "&amp;"
			case '<':
				esc = "&lt;"
			case '>':
				esc = "&gt;"
			case '\'':
				if attr {
					esc = "&apos;"
				}
			case '"':
				if attr {
					esc = "&quot;"
				}
			case '\r':
				esc = "&#xD;"
			case '\n':
				if attr {
					esc = "&#xA;"
				}
			case '\t':
				if attr {
					esc = "&#x9;"
				}
			default:
				if b < 0x20 {
					esc = "\uFFFD"
				}
			}
		} else if b >= 0xc2 && b < 0xe0 && i+1 < len(s) && s[i+1]&0xc0 == 0x80 {
			// Two bytes, well formed: Cyrillic, Greek, Hebrew, Arabic,
			// Latin with accents. Nothing to escape.
			width = 2
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			width = size
			if (r == utf8.RuneError && size == 1) || r == 0xFFFE || r == 0xFFFF {
				esc = "\uFFFD"
			}
		}
		if esc != "" {
			buf = append(buf, s[last:i]...)
			buf = append(buf, esc...)
			last = i + width
		}
		i += width
	}
	return append(buf, s[last:]...)
}

// word is the eight bytes of s from i, little-endian (one load).
func word(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// Eight bytes at a time (appendEscaped): lsb and msb are the low and the
// top bit of every byte of a word.
const (
	lsb  = 0x0101010101010101
	msb  = 0x8080808080808080
	low7 = 0x7f7f7f7f7f7f7f7f
)

// has0 is not 0 exactly when a byte of x is 0.
func has0(x uint64) uint64 { return (x - lsb) &^ x & msb }

// textControlsOK reports whether the only control bytes of w, a word of
// bytes under 0x80, are tabs and newlines, which text keeps as they are.
// With every byte under 0x80 no addition carries into the next byte, so
// each top bit answers for its own byte.
func textControlsOK(w uint64) bool {
	ctrl := ^(w + 0x60*lsb) & msb
	zero := func(x uint64) uint64 { return ^((x & low7) + low7 | x) & msb }
	return ctrl&^(zero(w^('\t'*lsb))|zero(w^('\n'*lsb))) == 0
}

// textSpecial and attrSpecial mark the bytes appendEscaped must look at:
// markup characters, control characters and every non-ASCII byte (which
// needs a UTF-8 validity check). Everything else is copied as is.
var textSpecial, attrSpecial = func() (text, attr [256]bool) {
	for b := 0; b < 256; b++ {
		special := b < 0x20 || b >= utf8.RuneSelf || b == '&' || b == '<' || b == '>'
		text[b] = special && b != '\t' && b != '\n'
		attr[b] = special || b == '\'' || b == '"'
	}
	return text, attr
}()
