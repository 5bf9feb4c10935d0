package xmlstream

// Names and values that nearly every stanza carries, so that reading them
// costs a lookup instead of an allocation. The table is read-only.
var interned = func() map[string]string {
	m := make(map[string]string)
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
		m[s] = s
	}
	return m
}()

// maxInterned is the longest string in interned, give or take.
const maxInterned = 48

// intern returns b as a string, from the table when it is there.
func intern(b []byte) string {
	if len(b) <= maxInterned {
		if s, ok := interned[string(b)]; ok {
			return s
		}
	}
	return string(b)
}
