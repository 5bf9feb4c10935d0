package archive

import "github.com/koi-im/koi/core/xmlstream"

// Hints of message processing (XEP-0334).
const (
	nsHints = "urn:xmpp:hints"
	nsEME   = "urn:xmpp:eme:0"
)

// Keepable reports whether a message's content is worth archiving: a body
// or an encrypted payload, a retraction, or a <store/> hint, unless it is hinted
// <no-store/> or <no-permanent-store/> (XEP-0334). Chat states, receipts,
// markers and subjects alone are not. The archives of accounts and of
// rooms add their own rules on the message's type.
func Keepable(el *xmlstream.Element) bool {
	if el.Child(nsHints, "no-store") != nil || el.Child(nsHints, "no-permanent-store") != nil {
		return false
	}
	if el.Child(nsHints, "store") != nil {
		return true
	}
	for _, n := range el.Children { // not Elements: it allocates, on every message
		if c := n.Elem; c != nil && (c.Local == "body" && c.Space == xmlstream.NSClient || c.Local == "encrypted" || c.Space == nsEME) {
			return true
		}
	}
	return RetractedID(el) != "" // XEP-0424: retractions MUST be archived
}
