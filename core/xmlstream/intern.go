package xmlstream

import "slices"

// Names and values that nearly every stanza carries, so that reading them
// costs a lookup instead of an allocation. The table is read-only.
//
// It is an array of small buckets indexed by a string's length and its
// first and last bytes, rather than a map: a message has a dozen or more
// names and values to look up, and hashing each whole string was 5% of
// the CPU a routed message costs. Here a lookup is an index and, mostly,
// one comparison.
var interned = func() *[internSlots][]string {
	var t [internSlots][]string
	for _, s := range []string{
		// Stream level and stanzas.
		"stream", "features", "error", "message", "presence", "iq", "body", "subject", "thread",
		"show", "status", "priority", "x", "c", "query", "item", "items", "text", "delay",
		"to", "from", "id", "type", "xmlns", "xml", "lang", "jid", "node", "ver", "hash", "name",
		"stamp", "by", "version", "code", "reason", "subscription", "ask", "group", "category",
		"var", "value", "field", "feature", "identity", "pubsub", "publish", "event", "retract",
		"max", "before", "after", "set", "first", "last", "count", "index", "start", "end",
		"with", "fin", "complete", "result", "forwarded", "sent", "received", "private",
		"r", "a", "h", "enable", "enabled", "resume", "resumed", "previd", "location",
		"starttls", "proceed", "auth", "mechanism", "mechanisms", "challenge", "response",
		"success", "failure", "bind", "resource", "session", "ping", "time", "vCard", "photo",
		"active", "inactive", "composing", "paused", "gone", "request", "markable", "displayed",
		"acknowledged", "origin-id", "stanza-id", "replace", "store", "no-store", "no-copy",
		"hint", "nick", "password", "affiliation", "role", "actor", "destroy", "invite",
		"decline", "html", "p", "span", "br", "style", "href", "src", "alt",
		// Attribute values.
		"chat", "normal", "groupchat", "headline", "get", "result", "cancel", "modify",
		"wait", "continue", "unavailable", "subscribe", "subscribed", "unsubscribe",
		"unsubscribed", "probe", "away", "xa", "dnd", "both", "none", "remove", "true", "false",
		"1", "0", "en", "en-US", "de", "fr", "es", "ru", "member", "moderator", "participant",
		"visitor", "owner", "admin", "outcast", "SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN",
		"tls-exporter", "tls-server-end-point", "tls-unique", "sha-1", "sha-256",
		// Namespaces.
		NSStream, NSClient, NSXML, "jabber:server", "jabber:component:accept",
		"urn:ietf:params:xml:ns:xmpp-tls", "urn:ietf:params:xml:ns:xmpp-sasl",
		"urn:ietf:params:xml:ns:xmpp-bind", "urn:ietf:params:xml:ns:xmpp-session",
		"urn:ietf:params:xml:ns:xmpp-stanzas", "urn:ietf:params:xml:ns:xmpp-streams",
		"jabber:iq:roster", "jabber:iq:private", "jabber:iq:register", "jabber:iq:version",
		"jabber:iq:last", "jabber:x:data", "jabber:x:conference", "jabber:x:oob", "vcard-temp",
		"vcard-temp:x:update", "urn:xmpp:ping", "urn:xmpp:time", "urn:xmpp:delay",
		"urn:xmpp:receipts", "urn:xmpp:chat-markers:0", "urn:xmpp:sid:0", "urn:xmpp:sm:3",
		"urn:xmpp:carbons:2", "urn:xmpp:forward:0", "urn:xmpp:hints", "urn:xmpp:csi:0",
		"urn:xmpp:mam:2", "urn:xmpp:mam:2#extended", "urn:xmpp:message-correct:0",
		"urn:xmpp:blocking", "urn:xmpp:push:0", "urn:xmpp:sasl:2", "urn:xmpp:bind:0",
		"urn:xmpp:fast:0", "urn:xmpp:avatar:data", "urn:xmpp:avatar:metadata",
		"urn:xmpp:bookmarks:1", "urn:xmpp:mds:displayed:0", "urn:xmpp:reply:0",
		"urn:xmpp:reactions:0", "urn:xmpp:styling:0", "urn:xmpp:eme:0", "urn:xmpp:omemo:2",
		"eu.siacs.conversations.axolotl", "http://jabber.org/protocol/chatstates",
		"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
		"http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/pubsub",
		"http://jabber.org/protocol/pubsub#event", "http://jabber.org/protocol/pubsub#owner",
		"http://jabber.org/protocol/muc", "http://jabber.org/protocol/muc#user",
		"http://jabber.org/protocol/muc#admin", "http://jabber.org/protocol/muc#owner",
		"http://jabber.org/protocol/rsm", "http://jabber.org/protocol/xhtml-im",
		"http://www.w3.org/1999/xhtml", "storage:bookmarks",
	} {
		if len(s) > maxInterned {
			panic("xmlstream: interned string longer than maxInterned: " + s)
		}
		h := internSlot(s)
		if !slices.Contains(t[h], s) {
			t[h] = append(t[h], s)
		}
	}
	return &t
}()

// internSlots is the size of interned.
const (
	internBits  = 10
	internSlots = 1 << internBits
)

// maxInterned is the longest string in interned.
const maxInterned = 48

// internSlot is where s belongs in interned. s is not empty.
func internSlot[S string | []byte](s S) int {
	n := len(s)
	x := (uint32(n)<<16 | uint32(s[0])<<8 | uint32(s[n-1])) * 0x9E3779B1 // Fibonacci hashing
	return int(x >> (32 - internBits))
}

// intern returns b as a string, from the table when it is there.
func intern(b []byte) string {
	if len(b) == 0 || len(b) > maxInterned {
		return string(b)
	}
	for _, s := range interned[internSlot(b)] {
		if s == string(b) {
			return s
		}
	}
	return string(b)
}
