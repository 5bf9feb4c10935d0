package e2e

import (
	"encoding/xml"
	"strings"
)

// Namespaces the tests look for.
const (
	nsClient    = "jabber:client"
	nsStream    = "http://etherx.jabber.org/streams"
	nsStreams   = "urn:ietf:params:xml:ns:xmpp-streams"
	nsStanzas   = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsTLS       = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL      = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind      = "urn:ietf:params:xml:ns:xmpp-bind"
	nsRoster    = "jabber:iq:roster"
	nsDelay     = "urn:xmpp:delay"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsPing      = "urn:xmpp:ping"
	nsTime      = "urn:xmpp:time"
	nsVersion   = "jabber:iq:version"
	nsVCard     = "vcard-temp"
	nsPrivate   = "jabber:iq:private"
	nsRegister  = "jabber:iq:register"
	nsRegFeat   = "http://jabber.org/features/iq-register"
)

// element is a received XML element, namespaces resolved.
type element struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []*element `xml:",any"`
}

// attr returns the value of the attribute with this local name and no
// namespace.
func (e *element) attr(local string) string {
	if e == nil {
		return ""
	}
	for _, a := range e.Attrs {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// is reports whether e is named space/local; an empty space matches any.
func (e *element) is(space, local string) bool {
	return e != nil && e.XMLName.Local == local && (space == "" || e.XMLName.Space == space)
}

// child returns the first child named space/local (any namespace when
// space is ""), or nil.
func (e *element) child(space, local string) *element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.is(space, local) {
			return c
		}
	}
	return nil
}

// children returns every child named space/local.
func (e *element) children(space, local string) []*element {
	if e == nil {
		return nil
	}
	var out []*element
	for _, c := range e.Children {
		if c.is(space, local) {
			out = append(out, c)
		}
	}
	return out
}

// path follows children by local name, in any namespace.
func (e *element) path(locals ...string) *element {
	for _, l := range locals {
		e = e.child("", l)
	}
	return e
}

// stanzaError returns the type and the defined condition of a stanza's
// <error/>, or "", "" when it has none.
func (e *element) stanzaError() (typ, condition string) {
	er := e.child("", "error")
	if er == nil {
		return "", ""
	}
	for _, c := range er.Children {
		if c.XMLName.Space == nsStanzas && c.XMLName.Local != "text" {
			return er.attr("type"), c.XMLName.Local
		}
	}
	return er.attr("type"), ""
}

// streamErrorCondition returns the condition of a <stream:error/>.
func (e *element) streamErrorCondition() string {
	if !e.is(nsStream, "error") {
		return ""
	}
	for _, c := range e.Children {
		if c.XMLName.Space == nsStreams && c.XMLName.Local != "text" {
			return c.XMLName.Local
		}
	}
	return ""
}

// String renders e for failure messages (namespaces shown as xmlns).
func (e *element) String() string {
	if e == nil {
		return "<nil>"
	}
	var b strings.Builder
	e.write(&b, "")
	return b.String()
}

func (e *element) write(b *strings.Builder, parentNS string) {
	b.WriteString("<" + e.XMLName.Local)
	if e.XMLName.Space != parentNS {
		b.WriteString(" xmlns='" + e.XMLName.Space + "'")
	}
	for _, a := range e.Attrs {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		name := a.Name.Local
		if a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
			name = "xml:" + name
		} else if a.Name.Space != "" {
			name = a.Name.Space + ":" + name
		}
		b.WriteString(" " + name + "='")
		xml.EscapeText(b2w{b}, []byte(a.Value))
		b.WriteString("'")
	}
	if len(e.Children) == 0 && strings.TrimSpace(e.Text) == "" {
		b.WriteString("/>")
		return
	}
	b.WriteString(">")
	xml.EscapeText(b2w{b}, []byte(e.Text))
	for _, c := range e.Children {
		c.write(b, e.XMLName.Space)
	}
	b.WriteString("</" + e.XMLName.Local + ">")
}

type b2w struct{ b *strings.Builder }

func (w b2w) Write(p []byte) (int, error) { return w.b.Write(p) }

// decodeElement reads the element that start opens from d.
func decodeElement(d *xml.Decoder, start xml.StartElement) (*element, error) {
	el := &element{}
	if err := d.DecodeElement(el, &start); err != nil {
		return nil, err
	}
	return el, nil
}

// xmlEscape escapes s for use in text or a quoted attribute.
func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(b2w{&b}, []byte(s))
	return b.String()
}
