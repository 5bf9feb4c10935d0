package muc

import (
	"context"
	"errors"
	"time"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Room archives: Message Archive Management (XEP-0313) on rooms, as
// Prosody's mod_muc_mam does it. A room whose logging is on
// (muc#roomconfig_enablelogging) files each groupchat message it
// broadcasts in the host's archive, with the room's bare JID as owner,
// under the stanza-id it stamps on the message (XEP-0359). Room for the
// message is reserved in the archive writer's queue before it is
// broadcast, so a message is archived exactly when it is delivered; a
// message the archive cannot take is refused with <resource-constraint/>.
//
// The archived stanza is the one occupants got: from the occupant JID
// (room@service/nick), plus the sender's real bare JID in a muc#user
// item, which a query shows only to those who may see real JIDs in the
// room (anyone in a non-anonymous room, moderators, admins and owners in a
// semi-anonymous one).
const (
	NSMAM2         = archive.NSMAM2
	NSMAM2Extended = NSMAM2 + "#extended"
)

// mamSyncTimeout bounds the wait for the room's pending writes before a
// query.
const mamSyncTimeout = 5 * time.Second

// Archive is the message archive rooms are kept in: the host's archive,
// written through its batched writer (core/archive.Writer).
type Archive interface {
	archive.Source
	// Reserve makes room for n messages in the writer's queue.
	Reserve(ctx context.Context, n int) (*archive.Reservation, error)
	// FullText says whether queries may search message bodies.
	FullText() bool
	// Remove deletes an archive, after its pending messages.
	Remove(ctx context.Context, owner string) error
	// CanRetract says whether Retract works: whether the backend
	// replaces messages with tombstones (moderate.go).
	CanRetract() bool
	// Retract replaces owner's stored message stanzaID with tombstone
	// (sdk.ArchiveRetractor).
	Retract(ctx context.Context, owner, stanzaID, tombstone string) error
}

// Errors of room archives.
var (
	errArchiveBusy   = stanza.ErrResourceConstraint.WithText("the room's archive is busy; try again later")
	errNoArchive     = stanza.ErrServiceUnavailable.WithText("this room keeps no archive")
	errArchiveDenied = stanza.ErrForbidden.WithText("you may not read this room's archive")
)

// archive returns the archive the room's messages go to, nil when its
// logging is off or the host keeps no archive.
func (r *room) archive() Archive {
	if !r.cfg.Logging || r.svc.cfg.Archive == nil {
		return nil
	}
	return r.svc.cfg.Archive()
}

// archiveCopy is the row of m, a message as the room broadcast it, sent by
// the occupant cur, filed under id at stamp.
func (r *room) archiveCopy(m *xmlstream.Element, cur *occupant, id string, stamp time.Time) sdk.ArchivedMessage {
	c := m.Copy()
	c.AppendChild(xmlstream.NewElement(NSUser, "x").
		AppendChild(xmlstream.NewElement(NSUser, "item").SetAttr("jid", cur.bare.String())))
	body := ""
	if b := m.Child(xmlstream.NSClient, "body"); b != nil {
		body = b.Text()
	}
	return sdk.ArchivedMessage{
		Owner: r.jid.String(), StanzaID: id, Peer: r.jid.String(), PeerResource: cur.nick,
		Stamp: stamp, Stanza: c.String(), Body: body,
	}
}

// isMAMQuery reports whether el is an archive query IQ to a room.
func isMAMQuery(el *xmlstream.Element, to jid.JID) bool {
	if el.Local != "iq" || to.Resource() != "" {
		return false
	}
	if t := el.Attr("type"); t != "get" && t != "set" {
		return false
	}
	q := el.FirstChild()
	return q != nil && q.Space == NSMAM2 && q.Local == "query"
}

// mamAccess is what a query may see, decided under the room's lock.
type mamAccess struct {
	a        Archive
	seesJIDs bool
}

// mayQuery applies the room's visibility rules to a query from from: the
// banned never read the archive; in a members-only or password-protected
// room only members (and those inside) do.
func (r *room) mayQuery(from jid.JID) (mamAccess, *stanza.Error) {
	a := r.archive()
	if a == nil || r.isLocked() {
		return mamAccess{}, errNoArchive
	}
	aff := r.affiliation(from)
	cur := r.bySession[from]
	switch {
	case aff == AffOutcast:
		return mamAccess{}, errArchiveDenied
	case (r.cfg.MembersOnly || r.cfg.Password != "") && aff < AffMember && cur == nil:
		return mamAccess{}, errArchiveDenied
	}
	// Admins and owners are moderators whenever they are inside.
	return mamAccess{a: a, seesJIDs: r.seesJIDs(cur) || aff >= AffAdmin}, nil
}

// mamQuery answers an archive query to the room r. It runs outside the
// room's lock: the archive may be slow and the room must not wait for it.
func (s *Service) mamQuery(ctx context.Context, r *room, el *xmlstream.Element, from jid.JID) {
	r.mu.Lock()
	var acc mamAccess
	serr := errNoRoom
	if !r.gone {
		acc, serr = r.mayQuery(from)
	}
	r.mu.Unlock()
	if serr != nil {
		s.reply(ctx, el, serr)
		return
	}
	q := el.FirstChild()
	if el.Attr("type") == "get" {
		s.router.Route(ctx, stanza.Result(el, archive.QueryForm(NSMAM2, acc.a.FullText())))
		return
	}
	req, serr := archive.ParseQuery(q, NSMAM2, acc.a.FullText())
	if serr != nil {
		s.reply(ctx, el, serr)
		return
	}
	owner := r.jid.String()
	req.Q.Owner = owner
	page, err := archive.Read(ctx, acc.a, req, mamSyncTimeout)
	var noID *archive.NoSuchIDError
	switch {
	case errors.As(err, &noID):
		s.reply(ctx, el, stanza.ErrItemNotFound.WithText(noID.Error()))
		return
	case errors.Is(err, archive.ErrPending):
		s.log.Warn("room archive query before pending writes are stored", "room", owner, "error", err)
		s.reply(ctx, el, errArchiveBusy)
		return
	case err != nil:
		s.reply(ctx, el, archiveError(err))
		return
	}
	msgs := page.Messages
	for i := range msgs {
		am := msgs[i]
		if req.Flip {
			am = msgs[len(msgs)-1-i]
		}
		orig, err := stanza.Parse(am.Stanza)
		if err != nil {
			s.log.Warn("skipping unreadable archived message", "room", owner, "stanza_id", am.StanzaID, "error", err)
			continue
		}
		if !acc.seesJIDs {
			orig.RemoveChildren(NSUser, "x")
		}
		s.router.Route(ctx, archive.Result(NSMAM2, req.QueryID, owner, from.String(), am, orig, newStanzaID()))
	}
	s.router.Route(ctx, stanza.Result(el, archive.Fin(NSMAM2, req.Q, page)))
}

// dropArchive deletes the archive of r, a room that is gone (destroyed, or
// a temporary room that emptied), as Prosody does: a room made later under
// the same name, perhaps open where this one was members-only, must not
// show what was said in this one.
func (s *Service) dropArchive(ctx context.Context, r *room) {
	if s.cfg.Archive == nil {
		return
	}
	a := s.cfg.Archive()
	if a == nil {
		return
	}
	cctx, cancel := s.storeCtx(ctx)
	defer cancel()
	if err := a.Remove(cctx, r.jid.String()); err != nil {
		s.log.Warn("the archive of a room that is gone could not be deleted", "room", r.jid.String(), "error", err)
	}
}

// archiveError is the XMPP error for a failed archive read.
func archiveError(err error) *stanza.Error {
	switch {
	case errors.Is(err, sdk.ErrInvalid):
		return stanza.ErrBadRequest
	case errors.Is(err, sdk.ErrUnavailable):
		return stanza.ErrServiceUnavailable.WithText("the message archive is unavailable; try again later")
	}
	return stanza.ErrInternal.WithText("the message archive failed")
}
