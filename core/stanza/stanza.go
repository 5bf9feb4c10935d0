// Package stanza builds and inspects the three XMPP stanzas (RFC 6120 §8)
// and their errors on top of the xmlstream element tree.
package stanza

import (
	"fmt"
	"io"
	"strings"

	"github.com/koi-im/koi/core/xmlstream"
)

// Namespaces used across the core.
const (
	NSStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSStreams = "urn:ietf:params:xml:ns:xmpp-streams"
	NSDelay   = "urn:xmpp:delay"
)

// Error types (RFC 6120 §8.3.2).
const (
	Auth     = "auth"
	Cancel   = "cancel"
	Continue = "continue"
	Modify   = "modify"
	Wait     = "wait"
)

// Error is a stanza error: a type and a defined condition.
type Error struct {
	Type      string
	Condition string
	Text      string
	// App is an application-specific condition element (RFC 6120
	// §8.3.3.3), such as XEP-0060's <precondition-not-met/>; nil for none.
	App *xmlstream.Element
}

func (e *Error) Error() string {
	if e.Text != "" {
		return e.Condition + ": " + e.Text
	}
	return e.Condition
}

// Common stanza errors.
var (
	ErrBadRequest           = &Error{Type: Modify, Condition: "bad-request"}
	ErrFeatureNotImpl       = &Error{Type: Cancel, Condition: "feature-not-implemented"}
	ErrForbidden            = &Error{Type: Auth, Condition: "forbidden"}
	ErrItemNotFound         = &Error{Type: Cancel, Condition: "item-not-found"}
	ErrJIDMalformed         = &Error{Type: Modify, Condition: "jid-malformed"}
	ErrNotAcceptable        = &Error{Type: Modify, Condition: "not-acceptable"}
	ErrNotAllowed           = &Error{Type: Cancel, Condition: "not-allowed"}
	ErrConflict             = &Error{Type: Cancel, Condition: "conflict"}
	ErrServiceUnavailable   = &Error{Type: Cancel, Condition: "service-unavailable"}
	ErrRemoteNotFound       = &Error{Type: Cancel, Condition: "remote-server-not-found"}
	ErrResourceConstraint   = &Error{Type: Wait, Condition: "resource-constraint"}
	ErrInternal             = &Error{Type: Wait, Condition: "internal-server-error"}
	ErrInternalCancel       = &Error{Type: Cancel, Condition: "internal-server-error"}
	ErrUnexpectedRequest    = &Error{Type: Wait, Condition: "unexpected-request"}
	ErrNotAuthorized        = &Error{Type: Auth, Condition: "not-authorized"}
	ErrPolicyViolation      = &Error{Type: Modify, Condition: "policy-violation"}
	ErrRecipientUnavailable = &Error{Type: Wait, Condition: "recipient-unavailable"}
)

// WithText returns a copy of e carrying a human-readable text.
func (e *Error) WithText(text string) *Error {
	c := *e
	c.Text = text
	return &c
}

// WithApp returns a copy of e carrying the application-specific condition
// {ns}local.
func (e *Error) WithApp(ns, local string) *Error {
	c := *e
	c.App = xmlstream.NewElement(ns, local)
	return &c
}

// Element renders the <error/> child.
func (e *Error) Element() *xmlstream.Element {
	el := xmlstream.NewElement(xmlstream.NSClient, "error").SetAttr("type", e.Type)
	el.AppendChild(xmlstream.NewElement(NSStanzas, e.Condition))
	if e.Text != "" {
		el.AppendChild(xmlstream.NewElement(NSStanzas, "text").SetAttrNS(xmlstream.NSXML, "lang", "en").AppendText(e.Text))
	}
	if e.App != nil {
		el.AppendChild(e.App.Copy())
	}
	return el
}

// ErrorReply turns a received stanza into the error stanza sent back to
// its sender (RFC 6120 §8.3.1): addresses swapped, type "error". For
// messages and presence the original payload is kept; an IQ's is dropped.
func ErrorReply(orig *xmlstream.Element, e *Error) *xmlstream.Element {
	r := xmlstream.NewElement(xmlstream.NSClient, orig.Local)
	if id := orig.Attr("id"); id != "" {
		r.SetAttr("id", id)
	}
	if to := orig.Attr("to"); to != "" {
		r.SetAttr("from", to)
	}
	if from := orig.Attr("from"); from != "" {
		r.SetAttr("to", from)
	}
	r.SetAttr("type", "error")
	if orig.Local != "iq" {
		for _, c := range orig.Children {
			if c.Elem != nil && c.Elem.Local != "error" {
				r.AppendChild(c.Elem.Copy())
			}
		}
	}
	return r.AppendChild(e.Element())
}

// Result builds the result of an IQ get or set, with payload (may be nil).
func Result(iq *xmlstream.Element, payload *xmlstream.Element) *xmlstream.Element {
	r := xmlstream.NewElement(xmlstream.NSClient, "iq").SetAttr("type", "result").SetAttr("id", iq.Attr("id"))
	if to := iq.Attr("to"); to != "" {
		r.SetAttr("from", to)
	}
	if from := iq.Attr("from"); from != "" {
		r.SetAttr("to", from)
	}
	if payload != nil {
		r.AppendChild(payload)
	}
	return r
}

// ErrorFrom extracts the condition of a received error stanza.
func ErrorFrom(el *xmlstream.Element) *Error {
	e := el.Child(xmlstream.NSClient, "error")
	if e == nil {
		return nil
	}
	out := &Error{Type: e.Attr("type")}
	for _, c := range e.Elements() {
		if c.Space == NSStanzas && c.Local != "text" {
			out.Condition = c.Local
		}
		if c.Space == NSStanzas && c.Local == "text" {
			out.Text = c.Text()
		}
	}
	return out
}

// Parse reads one serialised element, as stored by a backend. Top-level
// elements without a namespace declaration are read as jabber:client.
func Parse(s string) (*xmlstream.Element, error) {
	src := io.MultiReader(
		strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"),
		strings.NewReader(s),
		strings.NewReader("</stream:stream>"))
	r := xmlstream.NewReader(src, xmlstream.Limits{MaxStanzaBytes: int64(len(s)) + 1024})
	if _, err := r.ReadHeader(); err != nil {
		return nil, fmt.Errorf("parse stored element: %w", err)
	}
	el, err := r.Next()
	if err != nil {
		return nil, fmt.Errorf("parse stored element: %w", err)
	}
	return el, nil
}

// IsStanza reports whether el is a message, presence or iq in jabber:client.
func IsStanza(el *xmlstream.Element) bool {
	if el.Space != xmlstream.NSClient {
		return false
	}
	switch el.Local {
	case "message", "presence", "iq":
		return true
	}
	return false
}

// AppendStreamError appends a stream error (RFC 6120 §4.9) with condition
// and, if set, text to b.
func AppendStreamError(b []byte, condition, text string) []byte {
	e := xmlstream.NewElement(xmlstream.NSStream, "error")
	e.AppendChild(xmlstream.NewElement(NSStreams, condition))
	if text != "" {
		e.AppendChild(xmlstream.NewElement(NSStreams, "text").AppendText(text))
	}
	return e.AppendXML(b, "")
}
