package modules

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/offline"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

const nsHints = "urn:xmpp:hints"

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// messageType normalises the type attribute (RFC 6121 §5.2.2: unknown
// means normal).
func messageType(el *xmlstream.Element) string {
	switch t := el.Attr("type"); t {
	case "chat", "groupchat", "headline", "error":
		return t
	}
	return "normal"
}

// outboundMessage routes a message a client sent (RFC 6121 §8.5).
func (m *Server) outboundMessage(ctx context.Context, s *router.Session, el *xmlstream.Element, to jid.JID) {
	if to.IsZero() {
		to = s.JID().Bare() // RFC 6120 §10.3.1: no to means the sender's bare JID
		el.SetAttr("to", to.String())
	}
	if !m.isLocal(to) {
		m.bounce(s, el, stanza.ErrRemoteNotFound.WithText("this server does not federate"))
		return
	}
	if to.Local() == "" {
		// Messages to the server itself: only those to a resource a
		// module handles.
		if h := m.serverMsgs[to.Resource()]; h != nil && messageType(el) != "error" {
			if serr := h(ctx, s, el, to); serr != nil {
				m.bounce(s, el, serr)
			}
		} else if messageType(el) != "error" {
			m.bounce(s, el, stanza.ErrServiceUnavailable)
		}
		return
	}
	m.deliverMessage(ctx, el, s.JID(), to)
}

// deliverMessage applies the delivery rules for a local recipient. sender
// is the sending session's JID when the caller knows it (saving a parse of
// the from address), else zero.
func (m *Server) deliverMessage(ctx context.Context, el *xmlstream.Element, sender, to jid.JID) {
	typ := messageType(el)
	if to.Resource() != "" {
		if t := m.router.Session(to); t != nil {
			t.User().AwaitFlush() // its offline messages go first
			arch, serr := m.prepareArchive(ctx, el, sender, to)
			if serr != nil {
				m.bounceTo(ctx, el, serr)
				return
			}
			t.Send(el)
			arch.commit(m)
			m.sendCarbons(el, sender, to, []*router.Session{t}, &arch)
			return
		}
		if typ == "groupchat" {
			m.bounceTo(ctx, el, stanza.ErrServiceUnavailable)
			return
		}
		// Otherwise treated as if addressed to the bare JID (§8.5.3.2.1).
	}
	bare := to.Bare()
	var targets []*router.Session
	if u := m.router.User(bare); u != nil {
		switch typ {
		case "normal", "chat":
			targets = u.TopResources()
		case "headline":
			targets = u.NonNegative()
		}
		if len(targets) > 0 {
			// Read after the targets: a session seen available has its
			// flush, if one runs, seen too (router.BeginFlush).
			u.AwaitFlush()
		}
	}
	switch typ {
	case "error":
		if len(targets) == 0 {
			if u := m.router.User(bare); u != nil {
				targets = u.TopResources()
			}
		}
		for _, t := range targets {
			sendTo(t, el)
		}
		return
	case "groupchat":
		m.bounceTo(ctx, el, stanza.ErrServiceUnavailable)
		return
	}
	if len(targets) > 0 {
		arch, serr := m.prepareArchive(ctx, el, sender, to)
		if serr != nil {
			m.bounceTo(ctx, el, serr)
			return
		}
		defer m.sendCarbons(el, sender, to, targets, &arch)
		defer arch.commit(m)
		// Every target gets the same stanza, and Send serialises it at
		// once: no copy per target.
		el.SetAttr("to", to.Reuse(el.Attr("to")))
		for _, t := range targets {
			t.Send(el)
		}
		return
	}
	ok, err := m.userExists(ctx, bare)
	if err != nil {
		m.bounceTo(ctx, el, backendError(err))
		return
	}
	if !ok {
		m.bounceTo(ctx, el, stanza.ErrServiceUnavailable)
		return
	}
	if typ == "headline" {
		return // headlines are not stored (§8.5.2.1.1)
	}
	m.storeOffline(ctx, el, sender, to)
}

// storeOffline keeps a message for a user who is away (XEP-0160); to is
// the address the sender used. The stored copy is archived (and carries
// its stanza-id) now: offline delivery does not archive it again.
func (m *Server) storeOffline(ctx context.Context, el *xmlstream.Element, sender, to jid.JID) {
	bare := to.Bare()
	if !offline.Worth(el) {
		return
	}
	box, serr := m.offlineRoom(ctx, m.Host(bare.Domain()), bare)
	if serr != nil {
		m.bounceTo(ctx, el, serr)
		return
	}
	arch, serr := m.prepareArchive(ctx, el, sender, to)
	if serr != nil {
		m.bounceTo(ctx, el, serr)
		return
	}
	c, err := box.Put(ctx, bare, el, false)
	if err != nil {
		arch.cancel()
		m.stripStanzaIDs(el) // the id it was given is not used
		m.log.Warn("offline message not stored", "to", bare.String(), "error", err)
		m.bounceTo(ctx, el, backendError(err))
		return
	}
	arch.commit(m)
	m.sendCarbons(el, sender, to, nil, &arch)
	if m.notifier != nil {
		m.notifier.Notify(ctx, bare, c)
	}
	m.offlineStragglers(ctx, bare)
}

// offlineStragglers delivers bare's offline messages when the user became
// available while one was being stored: the flush of that presence may
// have run before the message was in the store, where it would otherwise
// wait for the next login. Either that flush found the message, or this
// finds the session available (it was made so before the flush began).
func (m *Server) offlineStragglers(ctx context.Context, bare jid.JID) {
	u := m.router.User(bare)
	if u == nil || len(u.TopResources()) == 0 {
		return
	}
	end := u.BeginFlush()
	defer end()
	if top := u.TopResources(); len(top) > 0 {
		m.deliverOffline(ctx, top[0])
	}
}

// offlineRoom returns h's offline storage when it can take one more
// message for bare, or the error that says why not.
func (m *Server) offlineRoom(ctx context.Context, h *Host, bare jid.JID) (offline.Box, *stanza.Error) {
	box, ok := offlineBox(h)
	if !ok {
		return box, stanza.ErrServiceUnavailable.WithText("the recipient is offline")
	}
	switch err := box.Room(ctx, bare); {
	case errors.Is(err, offline.ErrFull):
		return box, stanza.ErrServiceUnavailable.WithText(err.Error())
	case err != nil:
		return box, backendError(err)
	}
	return box, nil
}

// offlineBox returns h's offline storage, when it has one that takes
// messages.
func offlineBox(h *Host) (offline.Box, bool) {
	if h == nil || !h.Offline.On || !h.Offline.Writable {
		return offline.Box{}, false
	}
	return offline.Box{Backend: h.Offline.Backend, Limit: h.OfflineLimit}, true
}

// deliverOffline sends stored messages to a session that just became
// available.
func (m *Server) deliverOffline(ctx context.Context, s *router.Session) {
	bare := s.JID().Bare()
	if box, ok := offlineBox(m.Host(bare.Domain())); ok {
		box.Deliver(ctx, m.log, bare, s.Send)
	}
}
