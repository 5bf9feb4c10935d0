// Package csi is the server side of Client State Indication (XEP-0352).
// While a client says it is inactive (a phone app in the background), what
// is not urgent for it is held back and collapsed, so that the radio wakes
// for what matters and not for every presence change of every contact.
// Anything urgent sends everything held, in order, then itself.
//
// The rules follow Prosody's mod_csi_simple, with collapsing added:
// presence and chat states held from one address keep only the latest.
package csi

import (
	"slices"

	"github.com/koi-im/koi/core/xmlstream"
)

// NS is the namespace of <csi/>, <active/> and <inactive/>.
const NS = "urn:xmpp:csi:0"

// DefaultMaxHeld bounds what an inactive session holds: one more stanza to
// hold sends them all. Prosody's csi_simple queue size is the same.
const DefaultMaxHeld = 32

// Namespaces the classification looks at.
const (
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsCarbons    = "urn:xmpp:carbons:2"
	nsForward    = "urn:xmpp:forward:0"
	nsMUCUser    = "http://jabber.org/protocol/muc#user"
)

// Filter holds the stanzas of one inactive session. It is not safe for
// concurrent use: the connection serialises Push and Activate, and must
// send what they return before its next call, so that order is kept.
type Filter struct {
	max  int
	held []held
}

type held struct {
	key key // zero: kept as is, not collapsed
	el  *xmlstream.Element
}

// key names what a held stanza is about; a newer stanza with the same key
// replaces it.
type key struct {
	kind byte // 'p' presence, 'c' chat state; 0 none
	from string
}

// New returns a filter holding at most max stanzas (DefaultMaxHeld when
// max <= 0).
func New(max int) *Filter {
	if max <= 0 {
		max = DefaultMaxHeld
	}
	return &Filter{max: max}
}

// Push takes the next stanza for the client and returns what to send now,
// in order: nothing when el is held, else everything held and then el.
// What is held is a copy: a sender may change el once Push returns (the
// modules send one element to several sessions, changing it in between).
func (f *Filter) Push(el *xmlstream.Element) []*xmlstream.Element {
	urgent, k := classify(el)
	if urgent {
		return f.flush(el)
	}
	if k.kind != 0 {
		// The newer stanza takes its own place in the order: what was sent
		// between the two stays before it.
		for i := range f.held {
			if f.held[i].key == k {
				f.held = slices.Delete(f.held, i, i+1)
				break
			}
		}
	}
	if len(f.held) >= f.max {
		return f.flush(el)
	}
	f.held = append(f.held, held{key: k, el: el.Copy()})
	return nil
}

// Activate returns everything held, in order, and empties the filter.
func (f *Filter) Activate() []*xmlstream.Element { return f.flush(nil) }

// Len is the number of stanzas held.
func (f *Filter) Len() int { return len(f.held) }

func (f *Filter) flush(last *xmlstream.Element) []*xmlstream.Element {
	if len(f.held) == 0 {
		if last == nil {
			return nil
		}
		return []*xmlstream.Element{last}
	}
	out := make([]*xmlstream.Element, 0, len(f.held)+1)
	for _, h := range f.held {
		out = append(out, h.el)
	}
	if last != nil {
		out = append(out, last)
	}
	// Let the stanzas go: an inactive session can hold its filter for hours.
	f.held = nil
	return out
}

// classify says whether el must go out now and, if not, what it collapses
// with.
func classify(el *xmlstream.Element) (urgent bool, k key) {
	switch el.Local {
	case "presence":
		switch el.Attr("type") {
		case "", "unavailable", "error":
			// A state, not a request: only the latest per address matters
			// (an unavailable replaces an available).
			return false, key{'p', el.Attr("from")}
		}
		return true, key{} // subscription requests and answers
	case "message":
		return classifyMessage(el)
	}
	// IQs (a client must answer, or is waiting for an answer) and anything
	// unknown.
	return true, key{}
}

func classifyMessage(el *xmlstream.Element) (bool, key) {
	switch el.Attr("type") {
	case "error":
		return true, key{} // a delivery failure
	case "headline":
		return false, key{} // ephemeral by definition (PEP events)
	}
	if el.Child(nsCarbons, "sent") != nil {
		return true, key{} // the user is busy on another device: keep up
	}
	msg, wrapped := el, false
	if rc := el.Child(nsCarbons, "received"); rc != nil {
		if fw := rc.Child(nsForward, "forwarded"); fw != nil {
			if inner := fw.Child(el.Space, "message"); inner != nil {
				msg, wrapped = inner, true
			}
		}
	}
	if important(msg) {
		return true, key{}
	}
	if !wrapped && hasChatState(msg) {
		return false, key{'c', el.Attr("from")}
	}
	// Receipts, markers and the like: held, but in full.
	return false, key{}
}

func important(msg *xmlstream.Element) bool {
	if msg.Child(msg.Space, "body") != nil || msg.Child(msg.Space, "subject") != nil {
		return true // a message, or the last step of a MUC join
	}
	for _, n := range msg.Children {
		c := n.Elem
		if c == nil {
			continue
		}
		if urgentPayload(c) {
			return true
		}
	}
	return false
}

func hasChatState(msg *xmlstream.Element) bool {
	for _, n := range msg.Children {
		if n.Elem != nil && n.Elem.Space == nsChatStates {
			return true
		}
	}
	return false
}

// urgentPayload says whether a message child makes the message worth waking
// the client for. Encrypted payloads count: their content cannot be known.
func urgentPayload(c *xmlstream.Element) bool {
	switch c.Space {
	case "urn:xmpp:eme:0":
		return c.Local == "encryption"
	case "eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2": // OMEMO
		return c.Local == "encrypted"
	case "urn:xmpp:openpgp:0":
		return c.Local == "openpgp"
	case "jabber:x:encrypted":
		return c.Local == "x"
	case "jabber:x:conference": // direct MUC invitation
		return c.Local == "x"
	case nsMUCUser: // mediated MUC invitation
		return c.Child(nsMUCUser, "invite") != nil
	case "urn:xmpp:jingle-message:0", "urn:xmpp:jingle-message:1": // a call
		return true
	}
	return false
}
