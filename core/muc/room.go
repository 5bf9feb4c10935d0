package muc

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"sort"
	"sync"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// room is one chat room. Every field below mu is guarded by it.
type room struct {
	svc *Service
	jid jid.JID // bare

	mu sync.Mutex
	// gone is set when the room is destroyed or emptied; a stanza that
	// finds it so looks the room up again.
	gone bool
	cfg  RoomConfig
	// fresh is a room made by a join that has not completed yet, or whose
	// creator has not configured it; locked rooms admit only owners.
	fresh        bool
	locked       bool
	lockedUntil  time.Time // zero: until configured
	created      time.Time
	creator      jid.JID // bare; zero for rooms loaded from the store
	subject      string
	subjectBy    string // nick
	salt         string // occupant-id salt (XEP-0421)
	affs         map[jid.JID]affEntry
	occupants    map[string]*occupant // by nick
	bySession    map[jid.JID]*occupant
	history      []histEntry
	historyBytes int          // the sum of history's chars
	seed         *historySeed // history still to read from the archive (history.go)
	stored       bool         // the room is in the store
	// storing is set while a store change prepared under the lock is
	// written without it (see storeOp); op is that change.
	storing bool
	op      *storeOp
	// storeMu serialises the stanzas that may change what the store
	// keeps of the room, so that the room's configuration, affiliations
	// and subject stay as a change found them while it is written.
	storeMu sync.Mutex

	out      []*xmlstream.Element
	draining bool
	// dropData is set when the room is gone and its archive and vCard
	// are to be deleted by the goroutine that saw it go (dropIfGone).
	dropData bool
	// avatar is the hashes of the photos of the room's vCard (vcard.go).
	avatar []string
}

// affEntry is one user's affiliation, with the nick reserved for them and
// the reason given with the change.
type affEntry struct {
	aff    Affiliation
	nick   string
	reason string
}

// occupant is one nick in the room: a user with one or more sessions
// (clients of the same account may share a nick, as with Prosody).
type occupant struct {
	nick     string
	bare     jid.JID
	role     Role
	sessions []session // in join order; the first is the primary one
}

type session struct {
	jid      jid.JID
	presence *xmlstream.Element // the session's last presence, as broadcast (no muc payloads)
}

func newRoom(s *Service, j jid.JID, cfg RoomConfig, creator jid.JID) *room {
	var salt [16]byte
	_, _ = rand.Read(salt[:])
	return &room{
		svc: s, jid: j, cfg: cfg, creator: creator, created: s.now().UTC(),
		salt:      hex.EncodeToString(salt[:]),
		affs:      map[jid.JID]affEntry{},
		occupants: map[string]*occupant{},
		bySession: map[jid.JID]*occupant{},
	}
}

// send queues el for the outbox.
func (r *room) send(el *xmlstream.Element) { r.out = append(r.out, el) }

// flush routes what the room queued, outside its lock, in the order it was
// queued. One goroutine at a time drains a room's outbox: a stanza queued
// while another goroutine drains is sent by that one, so occupants see one
// order. Errors that routing bounces into the room (a gone resource) are
// handled on the way, under the lock, and their consequences queued too.
func (r *room) flush(ctx context.Context) {
	r.mu.Lock()
	if r.draining {
		r.mu.Unlock()
		return
	}
	r.draining = true
	for len(r.out) > 0 {
		q := r.out
		r.out = nil
		r.mu.Unlock()
		for _, el := range q {
			r.svc.router.Route(ctx, el)
		}
		r.mu.Lock()
	}
	r.draining = false
	r.mu.Unlock()
}

// reply queues the error reply to el.
func (r *room) reply(el *xmlstream.Element, e *stanza.Error) {
	if el.Attr("type") == "error" || (el.Local == "iq" && el.Attr("type") == "result") {
		return
	}
	// From the address the stanza went to: a join's error comes from the
	// nick asked for, as clients expect (XEP-0045 §7.2).
	r.send(stanza.ErrorReply(el, e))
}

// result queues the result of iq.
func (r *room) result(iq, payload *xmlstream.Element) { r.send(stanza.Result(iq, payload)) }

// affiliation returns the affiliation of j's bare JID, counting a ban of
// its domain and the service's admins, who own every room.
func (r *room) affiliation(j jid.JID) Affiliation {
	if r.svc.isAdmin(j) {
		return AffOwner
	}
	if e, ok := r.affs[j.Bare()]; ok {
		return e.aff
	}
	if e, ok := r.affs[j.Domainpart()]; ok && e.aff == AffOutcast {
		return AffOutcast
	}
	return AffNone
}

// storedAffiliation is j's own entry, without the service's admins.
func (r *room) storedAffiliation(j jid.JID) Affiliation {
	if e, ok := r.affs[j]; ok {
		return e.aff
	}
	return AffNone
}

// listOf returns the bare JIDs with affiliation a, sorted.
func (r *room) listOf(a Affiliation) []jid.JID {
	var out []jid.JID
	for j, e := range r.affs {
		if e.aff == a {
			out = append(out, j)
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].String() < out[k].String() })
	return out
}

func (r *room) nonAnonymous() bool { return r.cfg.WhoIs == WhoIsAnyone }

// isLocked reports whether the room still waits for its configuration,
// opening it when its lock timed out.
func (r *room) isLocked() bool {
	if r.locked && !r.lockedUntil.IsZero() && !r.svc.now().Before(r.lockedUntil) {
		r.locked = false
		r.fresh = false
	}
	return r.locked
}

// occupantJID is the in-room address of nick.
func (r *room) occupantJID(nick string) jid.JID {
	j, err := r.jid.WithResource(nick)
	if err != nil {
		// Nicks are stored normalised; this cannot fail for one.
		return r.jid
	}
	return j
}

// occupantID is the occupant's stable anonymous id (XEP-0421): an HMAC of
// the user's bare JID under the room's salt.
func (r *room) occupantID(bare jid.JID) string {
	m := hmac.New(sha256.New, []byte(r.salt))
	m.Write([]byte(bare.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// seesJIDs reports whether the occupant o (nil: a non-occupant) sees the
// real JIDs of others.
func (r *room) seesJIDs(o *occupant) bool {
	if r.nonAnonymous() {
		return true
	}
	return o != nil && o.role == RoleModerator
}

// item is an <item/> of a muc#user payload.
type item struct {
	aff       Affiliation
	role      Role
	jid       jid.JID // zero: not shown
	nick      string
	actorNick string
	reason    string
}

func (it item) element() *xmlstream.Element {
	e := xmlstream.NewElement(NSUser, "item").
		SetAttr("affiliation", it.aff.String()).SetAttr("role", it.role.String())
	if !it.jid.IsZero() {
		e.SetAttr("jid", it.jid.String())
	}
	if it.nick != "" {
		e.SetAttr("nick", it.nick)
	}
	if it.actorNick != "" {
		e.AppendChild(xmlstream.NewElement(NSUser, "actor").SetAttr("nick", it.actorNick))
	}
	if it.reason != "" {
		e.AppendChild(xmlstream.NewElement(NSUser, "reason").AppendText(it.reason))
	}
	return e
}

// presenceOpts says how one presence of an occupant is built.
type presenceOpts struct {
	unavailable bool
	codes       []string // status codes for everyone
	selfCodes   []string // more status codes for the occupant's own sessions
	newNick     string   // with 303
	actorNick   string
	reason      string
	status      string // an unavailable presence's status text
	destroy     *xmlstream.Element
}

// presenceFor builds o's presence for recipient (a full JID) whose own
// occupant is rec (nil for none).
func (r *room) presenceFor(o *occupant, to jid.JID, rec *occupant, opt presenceOpts) *xmlstream.Element {
	var p *xmlstream.Element
	if !opt.unavailable && len(o.sessions) > 0 && o.sessions[0].presence != nil {
		p = o.sessions[0].presence.Copy()
	} else {
		p = xmlstream.NewElement(xmlstream.NSClient, "presence").SetAttr("type", "unavailable")
		if opt.status != "" {
			p.AppendChild(xmlstream.NewElement(xmlstream.NSClient, "status").AppendText(opt.status))
		}
	}
	p.SetAttr("from", r.occupantJID(o.nick).String())
	p.SetAttr("to", to.String())
	self := rec == o
	x := xmlstream.NewElement(NSUser, "x")
	it := item{aff: r.affiliation(o.bare), role: o.role, nick: opt.newNick, actorNick: opt.actorNick, reason: opt.reason}
	if opt.unavailable && opt.destroy == nil && it.role != RoleNone && len(o.sessions) == 0 {
		it.role = RoleNone
	}
	if self || r.seesJIDs(rec) {
		if self {
			it.jid = to
		} else if len(o.sessions) > 0 {
			it.jid = o.sessions[0].jid
		} else {
			it.jid = o.bare
		}
	}
	x.AppendChild(it.element())
	if opt.destroy != nil {
		x.AppendChild(opt.destroy.Copy())
	}
	codes := opt.codes
	if self {
		codes = append(append([]string{}, codes...), opt.selfCodes...)
		codes = append(codes, "110")
	}
	for _, c := range dedupe(codes) {
		x.AppendChild(xmlstream.NewElement(NSUser, "status").SetAttr("code", c))
	}
	p.AppendChild(x)
	p.AppendChild(xmlstream.NewElement(NSOccupantID, "occupant-id").SetAttr("id", r.occupantID(o.bare)))
	return p
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// sortedOccupants lists the occupants by nick, for a stable order.
func (r *room) sortedOccupants() []*occupant {
	out := make([]*occupant, 0, len(r.occupants))
	for _, o := range r.occupants {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].nick < out[j].nick })
	return out
}

// broadcastPresence queues o's presence for every session in the room,
// o's own included (also those of o that just left, in gone).
func (r *room) broadcastPresence(o *occupant, opt presenceOpts, gone ...jid.JID) {
	for _, rec := range r.sortedOccupants() {
		for _, s := range rec.sessions {
			r.send(r.presenceFor(o, s.jid, rec, opt))
		}
	}
	for _, g := range gone {
		r.send(r.presenceFor(o, g, o, opt))
	}
}

// broadcast queues a copy of el for every session of every occupant.
func (r *room) broadcast(el *xmlstream.Element) {
	for _, o := range r.sortedOccupants() {
		r.toOccupant(o, el)
	}
}

// toOccupant queues a copy of el for each session of o.
func (r *room) toOccupant(o *occupant, el *xmlstream.Element) {
	for _, s := range o.sessions {
		c := el.Copy()
		c.SetAttr("to", s.jid.String())
		r.send(c)
	}
}

// removeOccupant takes o out of the room.
func (r *room) removeOccupant(o *occupant) {
	for _, s := range o.sessions {
		delete(r.bySession, s.jid)
	}
	delete(r.occupants, o.nick)
	o.role = RoleNone
}

// kick removes o with the status codes given (307 kicked, 301 banned, 321
// affiliation change, 322 members-only, 333 error), telling everyone and o.
func (r *room) kick(o *occupant, opt presenceOpts) {
	sessions := make([]jid.JID, 0, len(o.sessions))
	for _, s := range o.sessions {
		sessions = append(sessions, s.jid)
	}
	r.removeOccupant(o)
	o.sessions = nil
	opt.unavailable = true
	r.broadcastPresence(o, opt, sessions...)
}

// emptied drops a room that has no one left and need not stay: a
// temporary room, or one whose creation never completed (its creator's
// join failed, or it left the room still locked; such a room was never
// stored). A room with a store change under way stays until it is done.
// It reports whether the room is gone.
func (r *room) emptied() bool {
	if len(r.occupants) > 0 || r.storing || r.stored {
		return false
	}
	if r.cfg.Persistent && !r.fresh && !r.isLocked() {
		return false
	}
	r.gone = true
	r.dropData = true
	r.svc.remove(r)
	return true
}

// shutdown tells everyone the service is going away (status 332).
func (r *room) shutdown() {
	for _, o := range r.sortedOccupants() {
		r.kick(o, presenceOpts{codes: []string{"332"}})
	}
}

// destroy removes everyone with a <destroy/> payload (XEP-0045 §10.9) and
// forgets the room; the caller has deleted it from the store.
func (r *room) destroy(venue jid.JID, reason, password string) {
	d := xmlstream.NewElement(NSUser, "destroy")
	if !venue.IsZero() {
		d.SetAttr("jid", venue.String())
	}
	if reason != "" {
		d.AppendChild(xmlstream.NewElement(NSUser, "reason").AppendText(reason))
	}
	if password != "" {
		d.AppendChild(xmlstream.NewElement(NSUser, "password").AppendText(password))
	}
	for _, o := range r.sortedOccupants() {
		sessions := o.sessions
		r.removeOccupant(o)
		o.sessions = nil
		for _, s := range sessions {
			p := xmlstream.NewElement(xmlstream.NSClient, "presence").SetAttr("type", "unavailable").
				SetAttr("from", r.occupantJID(o.nick).String()).SetAttr("to", s.jid.String())
			x := xmlstream.NewElement(NSUser, "x")
			x.AppendChild(item{aff: AffNone, role: RoleNone}.element())
			x.AppendChild(d.Copy())
			x.AppendChild(xmlstream.NewElement(NSUser, "status").SetAttr("code", "110"))
			p.AppendChild(x)
			r.send(p)
		}
	}
	r.gone = true
	r.dropData = true
	r.svc.remove(r)
}

// errStore is what a user gets when the store failed a change, which then
// did not happen.
var errStore = stanza.ErrInternal.WithText("the room could not be saved; nothing was changed")
