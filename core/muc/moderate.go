package muc

import (
	"context"
	"errors"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Message moderation (XEP-0425): a moderator retracts an occupant's
// message from the room, by the stanza-id the room gave it. The room tells
// everyone inside (the message's clients hide it), puts a tombstone in
// the message's place in its history and in its archive, and archives the
// announcement, so that a client catching up from the archive learns of
// it too. Both versions of the protocol are served, as Prosody's
// mod_muc_moderation does: 0.3 (moderate:1) and 0.2 (fasten's apply-to
// with moderate:0, which slixmpp 1.8 sends), and the announcement carries
// both. An archive whose backend cannot retract
// (sdk.ArchiveCapabilities.Retract) keeps the message; the live clients
// and the history still lose it, and koi says so in its log.
//
// An occupant's retraction of their own message (XEP-0424) is relayed like
// any message, and the room puts a tombstone in the message's place when
// the retraction comes from its sender (their occupant id in the history,
// their real JID in the archive).
const (
	NSModerate0 = "urn:xmpp:message-moderate:0"
	NSModerate1 = "urn:xmpp:message-moderate:1"
	nsRetract0  = archive.NSRetract0
	nsRetract1  = archive.NSRetract1
	nsFasten    = archive.NSFasten
)

// Errors of moderation.
var (
	errNotModerating = stanza.ErrForbidden.WithText("only moderators may retract others' messages")
	errModerate      = stanza.ErrBadRequest.WithText("want <moderate id='the message's stanza-id'> with <retract/>")
	errNoMessage     = stanza.ErrItemNotFound.WithText("the room has no message with that id")
)

// moderation is a retraction request: the message's stanza-id and the
// moderator's reason.
type moderation struct {
	id, reason string
}

// parseModerate reads a moderation request of either version from el, an
// IQ set to a room; ok is false when el is not one.
func parseModerate(el *xmlstream.Element, to jid.JID) (m moderation, ok bool, serr *stanza.Error) {
	if el.Local != "iq" || el.Attr("type") != "set" || to.Resource() != "" {
		return m, false, nil
	}
	q := el.FirstChild()
	var mod *xmlstream.Element
	switch {
	case q == nil:
		return m, false, nil
	case q.Space == NSModerate1 && q.Local == "moderate":
		mod, m.id = q, q.Attr("id")
		if mod.Child(nsRetract1, "retract") == nil {
			return m, true, errModerate
		}
	case q.Space == nsFasten && q.Local == "apply-to" && q.Child(NSModerate0, "moderate") != nil:
		mod, m.id = q.Child(NSModerate0, "moderate"), q.Attr("id")
		if mod.Child(nsRetract0, "retract") == nil {
			return m, true, errModerate
		}
	default:
		return m, false, nil
	}
	if m.id == "" {
		return m, true, errModerate
	}
	if r := mod.Child(mod.Space, "reason"); r != nil {
		m.reason = r.Text()
	}
	return m, true, nil
}

// moderate serves a moderation request to the room r. The archive is
// read and written without the room's lock.
func (s *Service) moderate(ctx context.Context, r *room, el *xmlstream.Element, from jid.JID, m moderation) {
	r.mu.Lock()
	if r.gone {
		r.mu.Unlock()
		s.reply(ctx, el, errNoRoom)
		return
	}
	cur := r.bySession[from]
	role := defaultRole(r.affiliation(from), r.cfg.Moderated)
	by := r.jid
	if cur != nil {
		role, by = cur.role, r.occupantJID(cur.nick)
	} else if e := r.affs[from.Bare()]; e.nick != "" {
		by = r.occupantJID(e.nick)
	}
	modID := r.occupantID(from.Bare())
	a := r.archive()
	var orig *xmlstream.Element
	if i := r.historyIndex(m.id); i >= 0 {
		orig = r.history[i].msg
	}
	r.mu.Unlock()
	if role < RoleModerator {
		s.reply(ctx, el, errNotModerating)
		return
	}
	owner := r.jid.String()
	if orig == nil && a != nil {
		var serr *stanza.Error
		if orig, serr = s.archived(ctx, a, owner, m.id); serr != nil {
			s.reply(ctx, el, serr)
			return
		}
	}
	if orig == nil {
		s.reply(ctx, el, errNoMessage)
		return
	}
	tomb := archive.Tombstone(orig, "", s.now(), func(ret *xmlstream.Element) {
		ret.AppendChild(moderatedBy(NSModerate1, by, modID))
		if m.reason != "" {
			ret.AppendChild(xmlstream.NewElement(nsRetract1, "reason").AppendText(m.reason))
		}
	})
	if a != nil {
		if err := s.retract(ctx, a, owner, m.id, tomb); err != nil {
			s.log.Warn("a moderated message could not be retracted from the room's archive; nothing was changed", "room", owner, "stanza_id", m.id, "error", err)
			s.reply(ctx, el, archiveError(err))
			return
		}
	}
	s.log.Info("message moderated", "room", owner, "stanza_id", m.id, "by", from.Bare().String(), "reason", m.reason)

	r.mu.Lock()
	if i := r.historyIndex(m.id); i >= 0 {
		r.replaceHistory(i, tomb)
	}
	r.announceModeration(ctx, m, by, modID)
	r.mu.Unlock()
	r.flush(ctx)
	s.router.Route(ctx, stanza.Result(el, nil))
}

// archived reads message id of owner's archive, nil when it has none.
func (s *Service) archived(ctx context.Context, a Archive, owner, id string) (*xmlstream.Element, *stanza.Error) {
	page, err := archive.Read(ctx, a, archive.Query{Q: sdk.ArchiveQuery{Owner: owner, IDs: []string{id}, Max: 1}}, mamSyncTimeout)
	if err != nil {
		s.log.Warn("reading a message to moderate failed", "room", owner, "stanza_id", id, "error", err)
		return nil, archiveError(err)
	}
	if len(page.Messages) == 0 {
		return nil, nil
	}
	orig, err := stanza.Parse(page.Messages[0].Stanza)
	if err != nil {
		return nil, stanza.ErrInternalCancel
	}
	return orig, nil
}

// replaceHistory puts tomb in the place of history entry i, under its id
// and time. The room's lock is held.
func (r *room) replaceHistory(i int, tomb *xmlstream.Element) {
	e := &r.history[i]
	n := len(tomb.String())
	r.historyBytes += n - e.chars
	e.msg, e.chars = tomb, n
}

// retract puts tomb in the place of message id in owner's archive, when
// the archive can; a message that only the history held is not there.
func (s *Service) retract(ctx context.Context, a Archive, owner, id string, tomb *xmlstream.Element) error {
	if !a.CanRetract() {
		s.log.Warn("the archive's plugin cannot retract messages: the moderated message stays in the room's archive", "room", owner, "stanza_id", id)
		return nil
	}
	cctx, cancel := s.storeCtx(ctx)
	defer cancel()
	if err := a.Sync(cctx, owner); err != nil {
		return err
	}
	err := a.Retract(cctx, owner, id, tomb.String())
	if errors.Is(err, sdk.ErrNotFound) {
		return nil
	}
	return err
}

// retractOwn puts a tombstone in the place of message id when the
// occupant cur, who sent its retraction (whose id is retraction), is its
// sender (XEP-0424: a room
// SHOULD stop handing a retracted message out): in the history at once,
// and in the archive on a goroutine of its own, as reading the archive
// to check the sender must not hold the room. The room's lock is held.
func (r *room) retractOwn(id, retraction string, cur *occupant) {
	at := r.svc.now().UTC()
	if i := r.historyMatch(id); i >= 0 {
		e := r.history[i]
		id = e.id // the archive's id, for one named by its origin-id
		if sid := e.msg.Child(NSOccupantID, "occupant-id"); sid == nil || sid.Attr("id") != r.occupantID(cur.bare) {
			return // not theirs
		}
		r.replaceHistory(i, archive.Tombstone(e.msg, retraction, at, nil))
	}
	a := r.archive()
	if a == nil || !a.CanRetract() {
		return
	}
	s, owner, sender := r.svc, r.jid.String(), cur.bare.String()
	go func() {
		ctx, cancel := s.storeCtx(context.Background())
		defer cancel()
		orig, serr := s.archived(ctx, a, owner, id)
		if serr != nil || orig == nil {
			return
		}
		x := orig.Child(NSUser, "x")
		if x == nil || x.Child(NSUser, "item") == nil || x.Child(NSUser, "item").Attr("jid") != sender {
			return // not theirs
		}
		if err := s.retract(ctx, a, owner, id, archive.Tombstone(orig, retraction, at, nil)); err != nil {
			s.log.Warn("a retracted message could not be replaced in the room's archive", "room", owner, "stanza_id", id, "error", err)
		}
	}()
}

func moderatedBy(ns string, by jid.JID, modID string) *xmlstream.Element {
	mod := xmlstream.NewElement(ns, "moderated").SetAttr("by", by.String())
	if ns == NSModerate1 {
		mod.AppendChild(xmlstream.NewElement(NSOccupantID, "occupant-id").SetAttr("id", modID))
	}
	return mod
}

// announceModeration tells the room that message m.id was retracted by
// the occupant by, in both versions of the protocol, and archives the
// announcement. The room's lock is held.
func (r *room) announceModeration(ctx context.Context, m moderation, by jid.JID, modID string) {
	msg := xmlstream.NewElement(xmlstream.NSClient, "message").SetAttr("type", "groupchat").
		SetAttr("from", r.jid.String()).SetAttr("id", newStanzaID())
	ret := xmlstream.NewElement(nsRetract1, "retract").SetAttr("id", m.id)
	ret.AppendChild(moderatedBy(NSModerate1, by, modID))
	apply := xmlstream.NewElement(nsFasten, "apply-to").SetAttr("id", m.id)
	old := moderatedBy(NSModerate0, by, modID)
	old.AppendChild(xmlstream.NewElement(nsRetract0, "retract"))
	if m.reason != "" {
		ret.AppendChild(xmlstream.NewElement(nsRetract1, "reason").AppendText(m.reason))
		old.AppendChild(xmlstream.NewElement(NSModerate0, "reason").AppendText(m.reason))
	}
	apply.AppendChild(old)
	msg.AppendChild(ret)
	msg.AppendChild(apply)
	var resv *archive.Reservation
	if a := r.archive(); a != nil {
		var err error
		if resv, err = a.Reserve(ctx, 1); err != nil {
			r.svc.log.Warn("a moderation's announcement is not archived: the archive cannot keep up", "room", r.jid.String(), "error", err)
		}
	}
	id, stamp := r.svc.ids.Next()
	msg.AppendChild(archive.StanzaIDElement(r.jid.String(), id))
	if resv != nil {
		err := resv.Commit(sdk.ArchivedMessage{
			Owner: r.jid.String(), StanzaID: id, Peer: r.jid.String(), Stamp: stamp, Stanza: msg.String(),
		})
		if err != nil {
			r.svc.log.Error("archiving a moderation's announcement failed", "room", r.jid.String(), "error", err)
		}
	}
	r.broadcast(msg)
}

// historyMatch is the index in the history of the message id names: by
// its stanza-id or, as XEP-0424 0.3's clients name it, by its origin-id
// or its id; -1 if none.
func (r *room) historyMatch(id string) int {
	for i := len(r.history) - 1; i >= 0; i-- {
		if r.history[i].id == id || archive.Named(r.history[i].msg, id) {
			return i
		}
	}
	return -1
}

// historyIndex is the index in the history of the message with stanza-id
// id, -1 if none.
func (r *room) historyIndex(id string) int {
	for i := range r.history {
		if r.history[i].id == id {
			return i
		}
	}
	return -1
}
