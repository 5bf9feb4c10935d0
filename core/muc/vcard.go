package muc

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Room vCards: vcard-temp (XEP-0054) on a room's bare JID, which is how
// rooms have avatars (XEP-0486, as ejabberd and Prosody's mod_vcard_muc
// serve them). Owners set the vCard, anyone reads it; the room advertises
// the SHA-1 of each photo in its disco#info (muc#roominfo_avatarhash) and
// tells those inside of a change with status 104, so clients fetch it
// again. The vCard is kept in the host's vcard backend under the room's
// bare JID. The hashes are kept with the room, in memory and in the
// store's record of a persistent room, so that disco#info, which clients
// ask of every room they list or join, never reads the backend.

// NSVCard is vcard-temp.
const NSVCard = "vcard-temp"

// fAvatarHash is the room record's key for the avatar hashes.
const fAvatarHash = "koi#avatar_hash"

// VCards is where rooms' vCards are kept: the host's vcard backend.
type VCards interface {
	GetVCard(ctx context.Context, owner string) (string, error)
	SetVCard(ctx context.Context, owner, vcard string) error
	DeleteVCard(ctx context.Context, owner string) error
}

// Errors of room vCards.
var (
	errVCardOwner = stanza.ErrForbidden.WithText("only owners may set the room's vCard")
	errNoVCards   = stanza.ErrServiceUnavailable.WithText("this service keeps no vCards for rooms")
	errBadPhoto   = stanza.ErrBadRequest.WithText("a PHOTO's BINVAL must be base64")
)

// vcards returns where the rooms' vCards go, nil when the host keeps none
// it can write.
func (s *Service) vcards() VCards {
	if s.cfg.VCards == nil {
		return nil
	}
	return s.cfg.VCards()
}

// isVCardIQ reports whether el is a vCard get or set on a room.
func isVCardIQ(el *xmlstream.Element, to jid.JID) bool {
	if el.Local != "iq" || to.Resource() != "" {
		return false
	}
	if t := el.Attr("type"); t != "get" && t != "set" {
		return false
	}
	q := el.FirstChild()
	return q != nil && q.Space == NSVCard && q.Local == "vCard"
}

// vcardIQ serves a vCard get or set on the room r. The backend is called
// without the room's lock, as for the store's changes.
func (s *Service) vcardIQ(ctx context.Context, r *room, el *xmlstream.Element, from jid.JID) {
	vc := s.vcards()
	if vc == nil {
		s.reply(ctx, el, errNoVCards)
		return
	}
	r.mu.Lock()
	gone := r.gone
	r.mu.Unlock()
	if gone {
		s.reply(ctx, el, errNoRoom)
		return
	}
	if el.Attr("type") == "get" {
		cctx, cancel := s.storeCtx(ctx)
		v, err := vc.GetVCard(cctx, r.jid.String())
		cancel()
		res, serr := storedVCard(v, err)
		if serr != nil {
			s.log.Warn("reading a room's vCard failed", "room", r.jid.String(), "error", err)
			s.reply(ctx, el, serr)
			return
		}
		s.router.Route(ctx, stanza.Result(el, res))
		return
	}
	if serr := s.setVCard(ctx, r, el.FirstChild(), from, vc); serr != nil {
		s.reply(ctx, el, serr)
		return
	}
	s.router.Route(ctx, stanza.Result(el, nil))
	s.dropIfGone(ctx, r)
}

// storedVCard is the answer to a get, given what the backend returned.
func storedVCard(v string, err error) (*xmlstream.Element, *stanza.Error) {
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		// As for accounts (XEP-0054 §3.1): no vCard is an empty one.
		return xmlstream.NewElement(NSVCard, "vCard"), nil
	case errors.Is(err, sdk.ErrUnavailable):
		return nil, stanza.ErrServiceUnavailable.WithText("the vCard store is unavailable; try again later")
	case err != nil:
		return nil, stanza.ErrInternal
	}
	el, perr := stanza.Parse(v)
	if perr != nil || el.Space != NSVCard || el.Local != "vCard" {
		return nil, stanza.ErrInternalCancel
	}
	return el, nil
}

// setVCard replaces the room's vCard with v (an empty one deletes it),
// for an owner, and tells the room.
func (s *Service) setVCard(ctx context.Context, r *room, v *xmlstream.Element, from jid.JID, vc VCards) *stanza.Error {
	hashes, serr := avatarHashes(v)
	if serr != nil {
		return serr
	}
	r.storeMu.Lock()
	defer r.storeMu.Unlock()
	r.mu.Lock()
	if r.gone {
		r.mu.Unlock()
		return errNoRoom
	}
	if r.affiliation(from) != AffOwner {
		r.mu.Unlock()
		return errVCardOwner
	}
	// A persistent room's record gets the new hashes in the same change.
	var rec *sdk.MUCRoom
	if r.stored {
		x := r.record(r.cfg, r.subject, r.subjectBy)
		delete(x.Config, fAvatarHash)
		if len(hashes) > 0 {
			x.Config[fAvatarHash] = hashes
		}
		rec = &x
	}
	a := r.access()
	r.storing = true // the room stays while its vCard is written
	r.mu.Unlock()

	err := writeVCard(ctx, vc, a, v, rec)

	r.mu.Lock()
	r.storing = false
	if err == nil && !r.gone {
		r.avatar = hashes
		r.announce("104")
	}
	r.emptied()
	r.mu.Unlock()
	r.flush(ctx)
	if err != nil {
		s.log.Warn("a room's vCard could not be stored; nothing was changed", "room", a.room, "error", err)
		return errStore
	}
	return nil
}

// writeVCard stores v as the room's vCard and then rec, the room's record
// with the new hashes (nil for a room not in the store); when rec cannot
// be written the old vCard is put back, so that the hashes the room
// advertises stay those of its vCard.
func writeVCard(ctx context.Context, vc VCards, a storeAccess, v *xmlstream.Element, rec *sdk.MUCRoom) error {
	cctx, cancel := a.ctx(ctx)
	defer cancel()
	// The old vCard is only wanted to put back under a record that failed.
	var old string
	var had bool
	if rec != nil {
		var err error
		old, err = vc.GetVCard(cctx, a.room)
		had = err == nil
		if err != nil && !errors.Is(err, sdk.ErrNotFound) {
			return err
		}
	}
	var err error
	if len(v.Elements()) == 0 {
		err = ignoreNotFound(vc.DeleteVCard(cctx, a.room))
	} else {
		err = vc.SetVCard(cctx, a.room, v.String())
	}
	if err != nil || rec == nil {
		return err
	}
	if err := a.put(ctx, *rec); err != nil {
		back := ignoreNotFound(vc.DeleteVCard(cctx, a.room))
		if had {
			back = vc.SetVCard(cctx, a.room, old)
		}
		return errors.Join(err, back)
	}
	return nil
}

func ignoreNotFound(err error) error {
	if errors.Is(err, sdk.ErrNotFound) {
		return nil
	}
	return err
}

// avatarHashes are the hex SHA-1 of the data of each photo in the vCard v
// (XEP-0153's hash, which XEP-0486 uses), in order.
func avatarHashes(v *xmlstream.Element) ([]string, *stanza.Error) {
	var out []string
	for _, p := range v.Elements() {
		if p.Space != NSVCard || p.Local != "PHOTO" {
			continue
		}
		b := p.Child(NSVCard, "BINVAL")
		if b == nil {
			continue
		}
		data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b.Text()), ""))
		if err != nil || len(data) == 0 {
			return nil, errBadPhoto
		}
		sum := sha1.Sum(data)
		out = append(out, hex.EncodeToString(sum[:]))
	}
	return out, nil
}

// storedAvatar is the avatar hashes of a room's record, those that are
// hashes at all.
func storedAvatar(m map[string][]string) []string {
	var out []string
	for _, h := range m[fAvatarHash] {
		if b, err := hex.DecodeString(h); err == nil && len(b) == sha1.Size {
			out = append(out, h)
		}
	}
	return out
}

// dropVCard deletes the vCard of r, a room that is gone: a room made later
// under the same name starts without it.
func (s *Service) dropVCard(ctx context.Context, r *room) {
	vc := s.vcards()
	if vc == nil {
		return
	}
	cctx, cancel := s.storeCtx(ctx)
	defer cancel()
	if err := ignoreNotFound(vc.DeleteVCard(cctx, r.jid.String())); err != nil {
		s.log.Warn("the vCard of a room that is gone could not be deleted", "room", r.jid.String(), "error", err)
	}
}
