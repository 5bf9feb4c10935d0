package archive

import (
	"time"

	"github.com/koi-im/koi/core/xmlstream"
)

// Namespaces of message retraction (XEP-0424): version 1, and version 0
// (XEP-0424 0.3, still sent by slixmpp), which wraps the request in a
// fastening (XEP-0422).
const (
	NSRetract0 = "urn:xmpp:message-retract:0"
	NSRetract1 = "urn:xmpp:message-retract:1"
	NSFasten   = "urn:xmpp:fasten:0"
	// FeatureTombstone is advertised by an archive that puts tombstones in
	// the places of retracted messages.
	FeatureTombstone = NSRetract1 + "#tombstone"

	nsSID        = "urn:xmpp:sid:0"
	nsOccupantID = "urn:xmpp:occupant-id:0"
	nsCorrect    = "urn:xmpp:message-correct:0"
)

// RetractedID is the id that the retraction el names (either version),
// "" when el retracts nothing. In a room it is the room's stanza-id of the
// message; between two accounts it is the message's id attribute (version
// 1) or its origin-id (version 0).
func RetractedID(el *xmlstream.Element) string {
	for _, n := range el.Children { // not Child twice: it runs on every routed message
		c := n.Elem
		switch {
		case c == nil:
		case c.Local == "retract" && c.Space == NSRetract1:
			return c.Attr("id")
		case c.Local == "apply-to" && c.Space == NSFasten && c.Child(NSRetract0, "retract") != nil:
			return c.Attr("id")
		}
	}
	return ""
}

// Named reports whether el is the message that a retraction naming id
// retracts, not counting a stanza-id: el's id attribute (XEP-0424 1 between
// two accounts) or its origin-id (XEP-0424 0.3).
func Named(el *xmlstream.Element, id string) bool {
	if el.Attr("id") == id {
		return true
	}
	o := el.Child(nsSID, "origin-id")
	return o != nil && o.Attr("id") == id
}

// Corrects reports whether el is a correction (XEP-0308) of the message
// id, which would repeat a retracted message's text.
func Corrects(el *xmlstream.Element, id string) bool {
	r := el.Child(nsCorrect, "replace")
	return r != nil && r.Attr("id") == id
}

// Tombstone is what an archive or a room's history keeps in the place of
// orig, retracted at at (XEP-0424 §6): orig's type, sender, recipient and
// id, a <retracted/> element naming the retraction's id (when it has one)
// that decorate completes (who moderated, and why: XEP-0425) with its
// version 0 twin, and orig's
// stable ids and occupant id, so that clients match it with the message
// they have and with the retraction. Nothing else of orig is kept.
func Tombstone(orig *xmlstream.Element, retraction string, at time.Time, decorate func(retracted *xmlstream.Element)) *xmlstream.Element {
	t := xmlstream.NewElement(xmlstream.NSClient, "message")
	for _, k := range []string{"type", "from", "to", "id"} {
		if v := orig.Attr(k); v != "" {
			t.SetAttr(k, v)
		}
	}
	ret := xmlstream.NewElement(NSRetract1, "retracted").SetAttr("stamp", at.UTC().Format(time.RFC3339))
	if retraction != "" {
		ret.SetAttr("id", retraction)
	}
	if decorate != nil {
		decorate(ret)
	}
	t.AppendChild(ret)
	// XEP-0424 0.3's tombstone too, for the clients still on it.
	t.AppendChild(xmlstream.NewElement(NSRetract0, "retracted").SetAttr("stamp", ret.Attr("stamp")))
	for _, c := range orig.Elements() {
		if c.Space == nsOccupantID || (c.Space == nsSID && (c.Local == "stanza-id" || c.Local == "origin-id")) {
			t.AppendChild(c.Copy())
		}
	}
	return t
}
