package muc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

func (r *room) iq(ctx context.Context, el *xmlstream.Element, from, to jid.JID) {
	typ := el.Attr("type")
	if to.Resource() != "" {
		r.occupantIQ(el, from, to, typ)
		return
	}
	if typ != "get" && typ != "set" {
		return
	}
	q := el.FirstChild()
	if q == nil {
		r.reply(el, stanza.ErrBadRequest)
		return
	}
	switch {
	case typ == "get" && q.Space == NSDiscoInfo && q.Local == "query" && q.Attr("node") == nodeReservedNick:
		r.reservedNick(el, from)
	case typ == "get" && q.Space == NSDiscoInfo && q.Local == "query":
		r.discoInfo(el, q)
	case typ == "get" && q.Space == NSDiscoItems && q.Local == "query":
		// Occupants are not listed: their nicks are for those inside
		// (XEP-0045 §6.5 leaves it to the service).
		r.result(el, xmlstream.NewElement(NSDiscoItems, "query"))
	case typ == "get" && q.Space == NSPing && q.Local == "ping":
		r.result(el, nil)
	case q.Space == NSAdmin && q.Local == "query":
		if typ == "get" {
			r.adminGet(el, q, from)
		} else {
			r.adminSet(ctx, el, q, from)
		}
	case q.Space == NSRegister && q.Local == "query":
		r.register(el, q, from)
	case q.Space == NSOwner && q.Local == "query":
		if typ == "get" {
			r.ownerGet(el, q, from)
		} else {
			r.ownerSet(ctx, el, q, from)
		}
	default:
		r.reply(el, stanza.ErrServiceUnavailable)
	}
}

// occupantIQ serves IQs between occupants (XEP-0045 §7.7: a vCard, a
// version query), which go through the room so that real JIDs stay hidden,
// and self-pings (XEP-0410), which the room answers itself.
func (r *room) occupantIQ(el *xmlstream.Element, from, to jid.JID, typ string) {
	target := r.occupants[to.Resource()]
	if typ == "result" || typ == "error" {
		// An answer to a request forwarded from the occupant to.
		if target == nil {
			return
		}
		responder := r.bySession[from]
		orig, id, ok := r.decodeIQID(el.Attr("id"), from)
		if responder == nil || !ok {
			return
		}
		if r.bySession[orig] != target {
			return
		}
		c := el.Copy()
		c.SetAttr("from", r.occupantJID(responder.nick).String())
		c.SetAttr("to", orig.String())
		c.SetAttr("id", id)
		r.send(c)
		return
	}
	if typ != "get" && typ != "set" {
		return
	}
	cur := r.bySession[from]
	if cur == nil {
		r.reply(el, errNotJoined)
		return
	}
	if target == nil {
		r.reply(el, errNoSuchNick)
		return
	}
	if target == cur && typ == "get" && el.Child(NSPing, "ping") != nil {
		r.result(el, nil)
		return
	}
	dest := target.sessions[0].jid
	c := el.Copy()
	c.SetAttr("from", r.occupantJID(cur.nick).String())
	c.SetAttr("to", dest.String())
	c.SetAttr("id", r.encodeIQID(from, el.Attr("id"), dest))
	r.send(c)
}

// encodeIQID hides a forwarded request's sender and id in the id the
// recipient sees, with a MAC so that only the recipient's answer routes
// back (as Prosody does).
func (r *room) encodeIQID(from jid.JID, id string, dest jid.JID) string {
	payload := base64.RawURLEncoding.EncodeToString([]byte(from.String() + "\x00" + id))
	return payload + "." + r.iqMAC(payload, dest)
}

func (r *room) iqMAC(payload string, dest jid.JID) string {
	m := hmac.New(sha256.New, []byte(r.salt))
	m.Write([]byte(payload + "\x00" + dest.String()))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

func (r *room) decodeIQID(s string, responder jid.JID) (jid.JID, string, bool) {
	payload, mac, ok := strings.Cut(s, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(r.iqMAC(payload, responder))) {
		return jid.JID{}, "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return jid.JID{}, "", false
	}
	f, id, ok := strings.Cut(string(raw), "\x00")
	if !ok {
		return jid.JID{}, "", false
	}
	j, err := jid.Parse(f)
	if err != nil {
		return jid.JID{}, "", false
	}
	return j, id, true
}

// discoInfo answers disco#info on the room (XEP-0045 §6.4) with the room
// information form (§15.5.4, XEP-0128).
func (r *room) discoInfo(el, q *xmlstream.Element) {
	if q.Attr("node") != "" {
		r.reply(el, stanza.ErrItemNotFound)
		return
	}
	res := xmlstream.NewElement(NSDiscoInfo, "query")
	name := r.cfg.Name
	if name == "" {
		name = r.jid.Local()
	}
	res.AppendChild(xmlstream.NewElement(NSDiscoInfo, "identity").
		SetAttr("category", "conference").SetAttr("type", "text").SetAttr("name", name))
	pick := func(b bool, yes, no string) string {
		if b {
			return yes
		}
		return no
	}
	features := []string{
		NSDiscoInfo, NSMUC, NSStableID, NSSelfPing, NSOccupantID, NSSID, NSRequest, NSRegister,
		pick(r.cfg.Public, "muc_public", "muc_hidden"),
		pick(r.cfg.Persistent, "muc_persistent", "muc_temporary"),
		pick(r.cfg.MembersOnly, "muc_membersonly", "muc_open"),
		pick(r.cfg.Moderated, "muc_moderated", "muc_unmoderated"),
		pick(r.nonAnonymous(), "muc_nonanonymous", "muc_semianonymous"),
		pick(r.cfg.Password != "", "muc_passwordprotected", "muc_unsecured"),
	}
	if a := r.archive(); a != nil {
		features = append(features, NSMAM2, NSMAM2Extended)
		if a.CanRetract() {
			features = append(features, archive.FeatureTombstone)
		}
	}
	if r.svc.vcards() != nil {
		features = append(features, NSVCard)
	}
	features = append(features, NSModerate0, NSModerate1, nsRetract1)
	for _, f := range features {
		res.AppendChild(xmlstream.NewElement(NSDiscoInfo, "feature").SetAttr("var", f))
	}
	info := []dataform.Field{
		{Var: "FORM_TYPE", Type: "hidden", Values: []string{NSRoomInfo}},
		{Var: "muc#roomconfig_roomname", Label: "Title", Values: []string{r.cfg.Name}},
		{Var: "muc#roominfo_description", Label: "Description", Values: []string{r.cfg.Description}},
		{Var: "muc#roominfo_subject", Label: "Subject", Values: []string{r.subject}},
		{Var: "muc#roominfo_subjectmod", Type: "boolean", Label: "Occupants may change the subject", Values: []string{boolString(r.cfg.ChangeSubject)}},
		{Var: "muc#roominfo_occupants", Label: "Number of occupants", Values: []string{strconv.Itoa(len(r.occupants))}},
		{Var: "muc#roominfo_lang", Label: "Language", Values: []string{r.cfg.Language}},
		{Var: "muc#maxhistoryfetch", Label: "Maximum number of history messages returned by room", Values: []string{strconv.Itoa(r.cfg.HistoryLength)}},
		{Var: "muc#roomconfig_allowinvites", Type: "boolean", Label: "Occupants may invite others", Values: []string{boolString(r.cfg.AllowInvites || !r.cfg.MembersOnly)}},
	}
	if len(r.avatar) > 0 {
		// XEP-0486 §3.3.
		info = append(info, dataform.Field{Var: "muc#roominfo_avatarhash", Type: "text-multi", Label: "Avatar hash", Values: r.avatar})
	}
	res.AppendChild(dataform.Build("result", "", "", "", info))
	r.result(el, res)
}

// Errors of the admin and owner protocols.
var (
	errNotOwner  = stanza.ErrForbidden.WithText("only owners may configure this room")
	errListRead  = stanza.ErrForbidden.WithText("you may not read that list")
	errBadItem   = stanza.ErrBadRequest.WithText("want items with a role and a nick, or an affiliation and a jid")
	errNoItem    = stanza.ErrBadRequest.WithText("want at least one item")
	errBareJID   = stanza.ErrJIDMalformed.WithText("affiliations are of bare JIDs or domains")
	errBadNick   = stanza.ErrJIDMalformed.WithText("not a valid nickname")
	errTooMany   = stanza.ErrPolicyViolation.WithText("too many items in one request")
	errBadConfig = stanza.ErrBadRequest.WithText("want a submitted or cancelled room configuration form, or destroy")
)

// maxItems bounds the items of one admin request.
const maxItems = 100

// adminGet answers a request for a list of affiliations or roles
// (XEP-0045 §8.5, §9.5, §9.8, §10.5, §10.8).
func (r *room) adminGet(el, q *xmlstream.Element, from jid.JID) {
	it := q.Child(NSAdmin, "item")
	if it == nil {
		r.reply(el, errBadItem)
		return
	}
	actorAff := r.affiliation(from)
	cur := r.bySession[from]
	res := xmlstream.NewElement(NSAdmin, "query")
	switch a, r2 := it.Attr("affiliation"), it.Attr("role"); {
	case a != "" && r2 == "":
		aff, ok := parseAffiliation(a)
		if !ok || aff == AffNone {
			r.reply(el, stanza.ErrBadRequest.WithText("unknown affiliation "+strconv.Quote(a)))
			return
		}
		if !canReadAffiliations(actorAff, aff, r.cfg.MembersOnly, r.nonAnonymous()) {
			r.reply(el, errListRead)
			return
		}
		for _, j := range r.listOf(aff) {
			e := r.affs[j]
			x := xmlstream.NewElement(NSAdmin, "item").SetAttr("affiliation", aff.String()).SetAttr("jid", j.String())
			if e.nick != "" {
				x.SetAttr("nick", e.nick)
			}
			if e.reason != "" {
				x.AppendChild(xmlstream.NewElement(NSAdmin, "reason").AppendText(e.reason))
			}
			res.AppendChild(x)
		}
	case r2 != "" && a == "":
		role, ok := parseRole(r2)
		if !ok || role == RoleNone {
			r.reply(el, stanza.ErrBadRequest.WithText("unknown role "+strconv.Quote(r2)))
			return
		}
		if cur == nil || cur.role != RoleModerator {
			r.reply(el, errListRead)
			return
		}
		for _, o := range r.sortedOccupants() {
			if o.role != role {
				continue
			}
			x := xmlstream.NewElement(NSAdmin, "item").SetAttr("role", role.String()).
				SetAttr("nick", o.nick).SetAttr("affiliation", r.affiliation(o.bare).String())
			if len(o.sessions) > 0 {
				x.SetAttr("jid", o.sessions[0].jid.String())
			}
			res.AppendChild(x)
		}
	default:
		r.reply(el, errBadItem)
		return
	}
	r.result(el, res)
}

// change is one validated item of an admin request.
type change struct {
	jid    jid.JID // affiliation changes
	aff    Affiliation
	nick   string // reserved nick with an affiliation; the target of a role change
	role   Role
	isRole bool
	reason string
	target *occupant // role changes
}

// adminSet applies a request of role or affiliation changes (XEP-0045
// §8, §9, §10): all of them, or, when one is refused, none.
func (r *room) adminSet(ctx context.Context, el, q *xmlstream.Element, from jid.JID) {
	items := []*xmlstream.Element{}
	for _, c := range q.Elements() {
		if c.Space == NSAdmin && c.Local == "item" {
			items = append(items, c)
		}
	}
	if len(items) == 0 {
		r.reply(el, errNoItem)
		return
	}
	if len(items) > maxItems {
		r.reply(el, errTooMany)
		return
	}
	actorAff := r.affiliation(from)
	cur := r.bySession[from]
	actorRole := RoleNone
	if cur != nil {
		actorRole = cur.role
	}
	var changes []change
	owners := map[jid.JID]bool{}
	for _, j := range r.listOf(AffOwner) {
		owners[j] = true
	}
	for _, it := range items {
		c := change{}
		if rs := it.Child(NSAdmin, "reason"); rs != nil {
			c.reason = rs.Text()
		}
		a, ro := it.Attr("affiliation"), it.Attr("role")
		if n := it.Attr("nick"); n != "" {
			nj, err := r.jid.WithResource(n)
			if err != nil {
				r.reply(el, errBadNick)
				return
			}
			c.nick = nj.Resource()
		}
		if s := it.Attr("jid"); s != "" {
			j, err := jid.Parse(s)
			if err != nil {
				r.reply(el, stanza.ErrJIDMalformed)
				return
			}
			if !j.IsBare() {
				if ro == "" {
					r.reply(el, errBareJID)
					return
				}
			}
			c.jid = j
		}
		switch {
		case a != "" && ro == "":
			aff, ok := parseAffiliation(a)
			if !ok {
				r.reply(el, stanza.ErrBadRequest.WithText("unknown affiliation "+strconv.Quote(a)))
				return
			}
			if c.jid.IsZero() && c.nick != "" {
				// Some clients name an occupant by nick (Prosody allows it).
				if o := r.occupants[c.nick]; o != nil {
					c.jid = o.bare
					c.nick = ""
				}
			}
			if c.jid.IsZero() {
				r.reply(el, errBadItem)
				return
			}
			c.aff = aff
			old := r.storedAffiliation(c.jid)
			lastOwner := owners[c.jid] && len(owners) == 1
			if e := checkAffiliationChange(actorAff, old, aff, lastOwner); e != nil {
				r.reply(el, e)
				return
			}
			if old == AffOwner && aff != AffOwner {
				delete(owners, c.jid)
			}
			if aff == AffOwner {
				owners[c.jid] = true
			}
		case ro != "" && a == "":
			role, ok := parseRole(ro)
			if !ok {
				r.reply(el, stanza.ErrBadRequest.WithText("unknown role "+strconv.Quote(ro)))
				return
			}
			if c.nick == "" && !c.jid.IsZero() {
				if o := r.bySession[c.jid]; o != nil {
					c.nick = o.nick
				} else {
					for _, o := range r.occupants {
						if o.bare == c.jid.Bare() {
							c.nick = o.nick
						}
					}
				}
			}
			target := r.occupants[c.nick]
			if target == nil {
				r.reply(el, errNoSuchNick)
				return
			}
			if e := checkRoleChange(actorAff, actorRole, r.affiliation(target.bare), target.role, role); e != nil {
				r.reply(el, e)
				return
			}
			c.isRole, c.role, c.target = true, role, target
		default:
			r.reply(el, errBadItem)
			return
		}
		changes = append(changes, c)
	}
	actorNick := ""
	if cur != nil {
		actorNick = cur.nick
	}
	apply := func() {
		for _, c := range changes {
			if c.isRole {
				r.applyRole(c.target, c.role, actorNick, c.reason)
			} else {
				r.applyAffiliation(c.jid, affEntry{aff: c.aff, nick: c.nick, reason: c.reason}, actorNick)
			}
		}
		r.result(el, nil)
	}
	var recs []sdk.MUCAffiliation
	for _, c := range changes {
		if !c.isRole {
			recs = append(recs, r.affRecord(c.jid, affEntry{aff: c.aff, nick: c.nick, reason: c.reason}))
		}
	}
	if !r.stored || len(recs) == 0 {
		apply()
		return
	}
	a, old := r.access(), r.oldRecords()
	r.queueStore(storeOp{
		write: func(ctx context.Context) error { return a.setAll(ctx, recs, old) },
		apply: apply,
		fail:  func(error) { r.reply(el, errStore) },
	})
}

// applyRole changes o's role (XEP-0045 §8.2–8.5, §9.6–9.7); role none
// kicks (307).
func (r *room) applyRole(o *occupant, role Role, actorNick, reason string) {
	if r.occupants[o.nick] != o {
		return // kicked by an earlier item of the same request
	}
	if role == RoleNone {
		r.kick(o, presenceOpts{codes: []string{"307"}, actorNick: actorNick, reason: reason})
		return
	}
	was := o.role
	o.role = role
	r.broadcastPresence(o, presenceOpts{actorNick: actorNick, reason: reason})
	r.jidsVisibility(o, was)
}

// jidsVisibility sends a semi-anonymous room's occupants again to one who
// gained or lost the moderator role, who now sees real JIDs or no longer
// does (Prosody does the same).
func (r *room) jidsVisibility(o *occupant, was Role) {
	if r.nonAnonymous() || (was == RoleModerator) == (o.role == RoleModerator) {
		return
	}
	for _, s := range o.sessions {
		for _, other := range r.sortedOccupants() {
			if other != o {
				r.send(r.presenceFor(other, s.jid, o, presenceOpts{}))
			}
		}
	}
}

// applyAffiliation sets j's affiliation (a bare JID, or a domain for a
// ban) and updates the occupants it concerns (XEP-0045 §9, §10).
func (r *room) applyAffiliation(j jid.JID, e affEntry, actorNick string) {
	olds := map[*occupant]Affiliation{}
	for _, o := range r.occupants {
		olds[o] = r.affiliation(o.bare)
	}
	if e.aff == AffNone {
		delete(r.affs, j)
	} else {
		r.affs[j] = e
	}
	for _, o := range r.sortedOccupants() {
		if o.bare != j && !(j.IsDomain() && e.aff == AffOutcast && o.bare.Domain() == j.Domain()) {
			continue
		}
		aff := r.affiliation(o.bare)
		switch {
		case aff == AffOutcast:
			r.kick(o, presenceOpts{codes: []string{"301"}, actorNick: actorNick, reason: e.reason})
		case r.cfg.MembersOnly && aff < AffMember:
			r.kick(o, presenceOpts{codes: []string{"321"}, actorNick: actorNick, reason: e.reason})
		default:
			// A promotion raises the role to the new affiliation's; a
			// demotion sets it (as Prosody does).
			was := o.role
			if want := defaultRole(aff, r.cfg.Moderated); want > o.role || aff < olds[o] {
				o.role = want
			}
			r.broadcastPresence(o, presenceOpts{actorNick: actorNick, reason: e.reason})
			r.jidsVisibility(o, was)
		}
	}
}

// ownerGet sends the room configuration form (XEP-0045 §10.2).
func (r *room) ownerGet(el, q *xmlstream.Element, from jid.JID) {
	if r.affiliation(from) != AffOwner {
		r.reply(el, errNotOwner)
		return
	}
	var owners, admins []string
	for _, j := range r.listOf(AffOwner) {
		owners = append(owners, j.String())
	}
	for _, j := range r.listOf(AffAdmin) {
		admins = append(admins, j.String())
	}
	res := xmlstream.NewElement(NSOwner, "query")
	res.AppendChild(dataform.Build("form", "", "Configuration for "+r.jid.String(),
		"Complete and submit this form to configure the room.",
		r.cfg.fields(owners, admins, r.svc.cfg.MaxHistory, r.svc.cfg.MaxOccupants)))
	r.result(el, res)
}

// ownerSet applies a configuration form, cancels the configuration of a
// new room, or destroys the room (XEP-0045 §10.1–10.2, §10.9).
func (r *room) ownerSet(ctx context.Context, el, q *xmlstream.Element, from jid.JID) {
	if r.affiliation(from) != AffOwner {
		r.reply(el, errNotOwner)
		return
	}
	if d := q.Child(NSOwner, "destroy"); d != nil {
		r.destroyRequest(ctx, el, d)
		return
	}
	x := q.Child(NSData, "x")
	if x == nil {
		r.reply(el, errBadConfig)
		return
	}
	switch x.Attr("type") {
	case "cancel":
		r.result(el, nil)
		if r.isLocked() && !r.stored {
			// An owner who cancels the initial configuration does not want
			// the room (XEP-0045 §10.1.3); it never reached the store.
			r.destroy(jid.JID{}, "The room's creation was cancelled", "")
		}
	case "submit":
		ch, e := applyForm(r.cfg, dataform.Values(x), r.svc.cfg.MaxHistory, r.svc.cfg.MaxOccupants)
		if e != nil {
			r.reply(el, e)
			return
		}
		if e := r.configure(ch, el); e != nil {
			r.reply(el, e)
		}
	default:
		r.reply(el, errBadConfig)
	}
}

// configure applies a valid configuration change, answering el: the store
// first, so that a change the store refuses leaves everything as it was.
func (r *room) configure(ch formChange, el *xmlstream.Element) *stanza.Error {
	// The new owner and admin lists replace the old ones.
	affs := make(map[jid.JID]affEntry, len(r.affs))
	for j, e := range r.affs {
		affs[j] = e
	}
	setList := func(list []jid.JID, aff Affiliation) {
		keep := map[jid.JID]bool{}
		for _, j := range list {
			keep[j] = true
			if affs[j].aff != aff {
				affs[j] = affEntry{aff: aff, nick: affs[j].nick}
			}
		}
		for j, e := range affs {
			if e.aff == aff && !keep[j] {
				delete(affs, j)
			}
		}
	}
	if ch.setOwners {
		setList(ch.owners, AffOwner)
	}
	if ch.setAdmins {
		// An owner named in both lists stays an owner.
		var admins []jid.JID
		for _, j := range ch.admins {
			if affs[j].aff != AffOwner {
				admins = append(admins, j)
			}
		}
		setList(admins, AffAdmin)
	}
	owners := 0
	for _, e := range affs {
		if e.aff == AffOwner {
			owners++
		}
	}
	if owners == 0 {
		return errLastOwner
	}
	apply := func(stored bool) func() {
		return func() {
			r.stored = stored
			r.reconfigure(ch.cfg, affs)
			r.result(el, nil)
		}
	}
	fail := func(error) { r.reply(el, errStore) }
	if r.svc.store == nil {
		apply(false)()
		return nil
	}
	a := r.access()
	switch {
	case ch.cfg.Persistent && !r.stored:
		rec, recs := r.record(ch.cfg, r.subject, r.subjectBy), r.affRecords(affs)
		r.queueStore(storeOp{write: func(ctx context.Context) error { return a.create(ctx, rec, recs) }, apply: apply(true), fail: fail})
	case ch.cfg.Persistent:
		rec, before := r.record(ch.cfg, r.subject, r.subjectBy), r.record(r.cfg, r.subject, r.subjectBy)
		recs, old := r.affRecords(affDiffMap(r.affs, affs)), r.oldRecords()
		r.queueStore(storeOp{
			write: func(ctx context.Context) error {
				if err := a.put(ctx, rec); err != nil {
					return err
				}
				if err := a.setAll(ctx, recs, old); err != nil {
					// Put the old configuration back beside the old lists.
					return errors.Join(err, a.put(ctx, before))
				}
				return nil
			},
			apply: apply(true), fail: fail,
		})
	case r.stored:
		r.queueStore(storeOp{write: a.delete, apply: apply(false), fail: fail})
	default:
		apply(false)()
	}
	return nil
}

// announce tells the room of a change with a groupchat message from the
// room carrying the status codes, if any.
func (r *room) announce(codes ...string) {
	if len(codes) == 0 {
		return
	}
	m := xmlstream.NewElement(xmlstream.NSClient, "message").SetAttr("type", "groupchat").
		SetAttr("from", r.jid.String()).SetAttr("id", newStanzaID())
	x := xmlstream.NewElement(NSUser, "x")
	for _, c := range codes {
		x.AppendChild(xmlstream.NewElement(NSUser, "status").SetAttr("code", c))
	}
	m.AppendChild(x)
	r.broadcast(m)
}

// reconfigure puts a new configuration and affiliations in force and tells
// the room.
func (r *room) reconfigure(cfg RoomConfig, affs map[jid.JID]affEntry) {
	old, oldAffs := r.cfg, r.affs
	r.cfg, r.affs = cfg, affs
	r.locked, r.fresh = false, false

	// Tell the room (XEP-0045 §10.2.1).
	var codes []string
	if old != r.cfg {
		codes = append(codes, "104")
	}
	if old.Logging != r.cfg.Logging {
		codes = append(codes, map[bool]string{true: "170", false: "171"}[r.cfg.Logging])
	}
	if old.WhoIs != r.cfg.WhoIs {
		codes = append(codes, map[bool]string{true: "172", false: "173"}[r.nonAnonymous()])
	}
	r.announce(codes...)
	// Occupants whose standing changed with the lists, or who are no
	// longer welcome in a room that became members-only (322).
	for _, o := range r.sortedOccupants() {
		aff := r.affiliation(o.bare)
		before := AffNone
		if e, ok := oldAffs[o.bare]; ok {
			before = e.aff
		}
		if r.svc.isAdmin(o.bare) {
			before = AffOwner
		}
		switch {
		case r.cfg.MembersOnly && aff < AffMember:
			r.kick(o, presenceOpts{codes: []string{"322"}})
		case aff != before:
			was := o.role
			o.role = max(defaultRole(aff, r.cfg.Moderated), min(o.role, RoleParticipant))
			r.broadcastPresence(o, presenceOpts{})
			r.jidsVisibility(o, was)
		}
	}
}

// affDiffMap is what changes from old to cur, removals as "none".
func affDiffMap(old, cur map[jid.JID]affEntry) map[jid.JID]affEntry {
	out := map[jid.JID]affEntry{}
	for j, e := range cur {
		if old[j] != e {
			out[j] = e
		}
	}
	for j := range old {
		if _, ok := cur[j]; !ok {
			out[j] = affEntry{aff: AffNone}
		}
	}
	return out
}

// destroyRequest destroys the room at its owner's request (XEP-0045
// §10.9), pointing occupants to an alternate venue if one is given.
func (r *room) destroyRequest(ctx context.Context, el, d *xmlstream.Element) {
	var venue jid.JID
	if s := d.Attr("jid"); s != "" {
		j, err := jid.Parse(s)
		if err != nil {
			r.reply(el, stanza.ErrJIDMalformed.WithText("the alternate venue is not a JID"))
			return
		}
		venue = j
	}
	reason, password := "", ""
	if c := d.Child(NSOwner, "reason"); c != nil {
		reason = c.Text()
	}
	if c := d.Child(NSOwner, "password"); c != nil {
		password = c.Text()
	}
	done := func() {
		r.stored = false
		r.destroy(venue, reason, password)
		r.result(el, nil)
	}
	if !r.stored {
		done()
		return
	}
	r.queueStore(storeOp{write: r.access().delete, apply: done, fail: func(error) { r.reply(el, errStore) }})
}
