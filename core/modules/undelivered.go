package modules

import (
	"context"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/offline"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Undelivered implements c2s.Undelivered: el was sent to s, which ended
// without acknowledging it (XEP-0198: a resumption that never came, or a
// stream closed with stanzas in flight). Nothing is silently lost and
// nothing is duplicated:
//   - a message for a resource that a new connection has bound since goes
//     to that session: it has the very address the sender used;
//   - a chat or normal message worth keeping goes to offline storage when
//     s was the user's last available session, as it was: no second
//     archive entry, its stanza-id and delay kept;
//   - with another resource online, a message to the bare JID or one that
//     resource got a carbon of already has a copy there and is dropped;
//     otherwise the sender gets <recipient-unavailable/> (as Prosody does);
//   - an IQ get or set from someone else bounces with
//     <service-unavailable/>, the answer for an unavailable resource;
//   - presence, errors, groupchat, headlines, carbon copies and archive
//     query results are dropped: live-only, or a copy of something kept.
func (m *Server) Undelivered(ctx context.Context, s *router.Session, el *xmlstream.Element) {
	switch el.Local {
	case "iq":
		if t := el.Attr("type"); t != "get" && t != "set" {
			return
		}
		// What the server itself sent (roster pushes) needs no error.
		if from, err := jid.Parse(el.Attr("from")); err == nil && from.Local() != "" && from.Bare() != s.JID().Bare() {
			m.bounceTo(ctx, el, stanza.ErrServiceUnavailable)
		}
	case "message":
		m.undeliveredMessage(ctx, s, el)
	}
}

func (m *Server) undeliveredMessage(ctx context.Context, s *router.Session, el *xmlstream.Element) {
	switch messageType(el) {
	case "error", "groupchat", "headline":
		return
	}
	if el.Child(nsCarbons, "sent") != nil || el.Child(nsCarbons, "received") != nil || el.Child(nsMAM2, "result") != nil || el.Child(nsMAM1, "result") != nil {
		return
	}
	if !offline.Worth(el) {
		return
	}
	// A new connection bound the same resource (the client came back
	// without resuming): it has the very address the sender used.
	if cur := m.router.Session(s.JID()); cur != nil && cur != s {
		cur.Send(el)
		return
	}
	bare := s.JID().Bare()
	var others []*router.Session
	if u := m.router.User(bare); u != nil {
		for _, o := range u.Available() {
			if o != s {
				others = append(others, o)
			}
		}
	}
	if len(others) > 0 {
		to, _ := jid.Parse(el.Attr("to"))
		if to.Resource() == "" {
			return // bare-JID delivery reached the other resources too
		}
		for _, o := range others {
			if o.Carbons() {
				return
			}
		}
		m.bounceTo(ctx, el, stanza.ErrRecipientUnavailable.WithText("the recipient's client went away before confirming this message"))
		return
	}
	m.storeUndelivered(ctx, el, bare)
}

// storeUndelivered is storeOffline for a message that was delivered live
// once (and archived then): it is stored without archiving it again, and
// keeps its first stamp.
func (m *Server) storeUndelivered(ctx context.Context, el *xmlstream.Element, bare jid.JID) {
	box, serr := m.offlineRoom(ctx, m.Host(bare.Domain()), bare)
	if serr != nil {
		m.bounceTo(ctx, el, serr)
		return
	}
	if _, err := box.Put(ctx, bare, el, true); err != nil {
		m.log.Warn("unacknowledged message not stored offline", "to", bare.String(), "error", err)
		m.bounceTo(ctx, el, backendError(err))
	}
}
