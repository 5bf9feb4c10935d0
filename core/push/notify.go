package push

import (
	"context"
	"slices"
	"strconv"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Namespaces that make a message important (as in Prosody's
// mod_cloud_notify): encrypted payloads, whose body (if any) is only a
// fallback, and call proposals.
const (
	nsCarbons   = "urn:xmpp:carbons:2"
	nsForward   = "urn:xmpp:forward:0"
	nsOMEMOOld  = "eu.siacs.conversations.axolotl"
	nsOMEMO     = "urn:xmpp:omemo:2"
	nsPGP       = "jabber:x:encrypted"
	nsOX        = "urn:xmpp:openpgp:0"
	nsJingleMsg = "urn:xmpp:jingle-message:0"
)

// Important reports whether msg is worth waking a phone for: a message
// with a non-empty body, an encrypted payload or a call proposal; not a
// headline, a groupchat subject change or a carbon of the user's own
// outgoing message. A carbon of an incoming message is judged by what it
// carries. Receipts, markers and chat states alone are not important.
func Important(msg *xmlstream.Element) bool {
	if msg == nil || msg.Local != "message" {
		return false
	}
	if c := msg.Child(nsCarbons, "sent"); c != nil {
		return false
	}
	msg = carried(msg)
	typ := msg.Attr("type")
	if typ == "headline" || typ == "error" {
		return false
	}
	if msg.Child(nsOMEMOOld, "encrypted") != nil || msg.Child(nsOMEMO, "encrypted") != nil ||
		msg.Child(nsPGP, "x") != nil || msg.Child(nsOX, "openpgp") != nil ||
		msg.Child(nsJingleMsg, "propose") != nil {
		return true
	}
	if typ == "groupchat" && msg.Child(xmlstream.NSClient, "subject") != nil {
		return false
	}
	b := msg.Child(xmlstream.NSClient, "body")
	return b != nil && b.Text() != ""
}

// carried returns the message a received carbon forwards, or msg itself.
func carried(msg *xmlstream.Element) *xmlstream.Element {
	if r := msg.Child(nsCarbons, "received"); r != nil {
		if f := r.Child(nsForward, "forwarded"); f != nil {
			if m := f.Child(xmlstream.NSClient, "message"); m != nil {
				return m
			}
		}
	}
	return msg
}

// Notify tells the app servers of to that msg arrived while to could not
// take it live, if msg is important. To a bare JID (the message was stored
// offline) every registration of the account is notified; to a full JID
// (a session whose connection dropped and which waits to be resumed under
// stream management) only those that session enabled. A connected session
// that received the message, active or not, needs no notification, and the
// callers do not call Notify for it.
func (s *Service) Notify(ctx context.Context, to jid.JID, msg *xmlstream.Element) {
	if !Important(msg) || s.srv.Host(to.Domain()) == nil || to.Local() == "" {
		return
	}
	user := to.Bare()
	a := s.account(user)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := s.load(ctx, user, a); err != nil {
		s.log.Warn("no push notification: registrations unavailable", "user", user.String(), "error", err)
		return
	}
	m := carried(msg)
	body := ""
	if b := m.Child(xmlstream.NSClient, "body"); b != nil {
		body = b.Text()
	}
	// The registrations may shrink while notifying (errors): walk a copy.
	for _, r := range append([]*reg(nil), a.regs...) {
		if to.Resource() != "" && r.resource != to.Resource() {
			continue
		}
		r.pending++
		r.sender, r.body = m.Attr("from"), body
		s.schedule(ctx, user, a, r)
	}
}

// schedule sends r's notification now, or once the interval since the last
// one has passed; the caller holds a.mu.
func (s *Service) schedule(ctx context.Context, user jid.JID, a *account, r *reg) {
	if r.timer != nil || r.removed {
		return // a collapsed notification is already waiting: it takes this message too
	}
	if !r.last.IsZero() && s.cfg.Interval > 0 {
		if wait := r.last.Add(s.cfg.Interval).Sub(s.now()); wait > 0 {
			r.timer = s.after(wait, func() {
				a.mu.Lock()
				defer a.mu.Unlock()
				r.timer = nil
				s.mu.Lock()
				closed := s.closed
				s.mu.Unlock()
				if !r.removed && !closed && r.pending > 0 {
					s.send(context.Background(), user, a, r)
				}
			})
			return
		}
	}
	s.send(ctx, user, a, r)
}

// send publishes r's pending notification; the caller holds a.mu.
func (s *Service) send(ctx context.Context, user jid.JID, a *account, r *reg) {
	id := newID()
	iq := s.notification(user, r, id)
	r.last = s.now()
	r.pending, r.sender, r.body = 0, "", ""
	s.mu.Lock()
	s.sweep()
	s.waiting[id] = sent{user: user, r: r, to: r.JID, at: s.now()}
	s.mu.Unlock()
	err := s.deliver(r.JID, iq)
	switch err {
	case nil:
		s.log.Debug("push notification sent", "user", user.String(), "app_server", r.JID.String(), "id", id)
	case errRemote:
		s.forget(id)
		if !r.warned {
			r.warned = true
			s.log.Warn("push notification not sent: the app server is on another server and koi does not federate yet; the registration is kept",
				"user", user.String(), "app_server", r.JID.String())
		}
	default:
		s.forget(id)
		s.failed(ctx, user, a, r, err.Error())
	}
}

// notification builds the publish of r's pending notification (XEP-0357
// §7), from the server's JID.
func (s *Service) notification(user jid.JID, r *reg, id string) *xmlstream.Element {
	form := xmlstream.NewElement(NSData, "x").SetAttr("type", "submit")
	field := func(name, value string) {
		form.AppendChild(xmlstream.NewElement(NSData, "field").SetAttr("var", name).
			AppendChild(xmlstream.NewElement(NSData, "value").AppendText(value)))
	}
	field("FORM_TYPE", NSSummary)
	field("message-count", strconv.Itoa(r.pending))
	if s.cfg.IncludeSender && r.sender != "" {
		field("last-message-sender", r.sender)
	}
	switch {
	case s.cfg.IncludeBody && r.body != "":
		field("last-message-body", r.body)
	case s.cfg.BodyPlaceholder != "":
		field("last-message-body", s.cfg.BodyPlaceholder)
	}
	item := xmlstream.NewElement(NSPubSub, "item").AppendChild(xmlstream.NewElement(NS, "notification").AppendChild(form))
	pubsub := xmlstream.NewElement(NSPubSub, "pubsub").
		AppendChild(xmlstream.NewElement(NSPubSub, "publish").SetAttr("node", r.Node).AppendChild(item))
	if r.Options != nil {
		pubsub.AppendChild(xmlstream.NewElement(NSPubSub, "publish-options").AppendChild(r.Options.Copy()))
	}
	return xmlstream.NewElement(xmlstream.NSClient, "iq").SetAttr("type", "set").SetAttr("id", id).
		SetAttr("from", user.Domain()).SetAttr("to", r.JID.String()).AppendChild(pubsub)
}

// deliver routes a notification to its app server. Only a session of this
// server can take one: a bare JID or a domain of this server would be
// answered by the server itself, which is no push service
// (service-unavailable), and other servers need federation.
func (s *Service) deliver(to jid.JID, iq *xmlstream.Element) error {
	if s.srv.Host(to.Domain()) == nil {
		return errRemote
	}
	if to.Resource() == "" {
		return errUnreachable
	}
	sess := s.router.Session(to)
	if sess == nil || !sess.Send(iq) {
		return errUnreachable
	}
	return nil
}

// failed counts an error against r and drops it after max_errors in a
// row; the caller holds a.mu.
func (s *Service) failed(ctx context.Context, user jid.JID, a *account, r *reg, why string) {
	if r.removed {
		return
	}
	r.errors++
	s.log.Debug("push notification failed", "user", user.String(), "app_server", r.JID.String(), "error", why, "errors", r.errors)
	if r.errors < s.cfg.MaxErrors {
		return
	}
	keep := make([]*reg, 0, len(a.regs))
	for _, x := range a.regs {
		if x != r {
			keep = append(keep, x)
		}
	}
	if err := s.save(ctx, user, keep); err != nil {
		// Dropped from memory anyway, so that it is not tried again until
		// the next restart; storage keeps it.
		s.log.Warn("push registration not removed from storage", "user", user.String(), "error", err)
	}
	r.remove()
	a.regs = keep
	s.log.Info("push registration dropped: its app server keeps answering with errors",
		"user", user.String(), "app_server", r.JID.String(), "errors", r.errors, "last_error", why)
}

// HandleReply takes the answer of an app server to a notification (an IQ
// result or error addressed to the server) and reports whether it was
// one. The answer must come from the address the notification went to.
func (s *Service) HandleReply(ctx context.Context, sess *router.Session, el *xmlstream.Element) bool {
	id := el.Attr("id")
	from, err := jid.Parse(el.Attr("from"))
	if id == "" || err != nil {
		return false
	}
	s.mu.Lock()
	w, ok := s.waiting[id]
	if ok && (w.to != from || el.Attr("to") != w.user.Domain()) {
		ok = false // someone else guessing the id
	}
	if ok {
		delete(s.waiting, id)
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	a := s.account(w.user)
	a.mu.Lock()
	defer a.mu.Unlock()
	if !slices.Contains(a.regs, w.r) {
		return true // disabled, replaced or forgotten meanwhile
	}
	switch el.Attr("type") {
	case "result":
		w.r.errors = 0
	case "error":
		e := stanza.ErrorFrom(el)
		if e == nil {
			e = &stanza.Error{Type: "cancel", Condition: "undefined-condition"}
		}
		if e.Type == stanza.Wait {
			// Transient by definition (the app server is busy): it does
			// not count, as in Prosody.
			s.log.Debug("push notification deferred by the app server", "user", w.user.String(), "app_server", w.to.String(), "error", e.Condition)
			return true
		}
		s.failed(ctx, w.user, a, w.r, e.Type+"/"+e.Condition)
	}
	return true
}

func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.waiting, id)
	s.mu.Unlock()
}

// sweep drops notifications whose answer is overdue, at most once per
// reply timeout; the caller holds s.mu.
func (s *Service) sweep() {
	now := s.now()
	if now.Sub(s.lastSweep) < replyTimeout {
		return
	}
	s.lastSweep = now
	for id, w := range s.waiting {
		if now.Sub(w.at) > replyTimeout {
			delete(s.waiting, id)
		}
	}
}
