// Package muc is a multi-user chat service (XEP-0045) on a domain of its
// own, conference.example.com, served through the module server's
// component seam.
//
// It answers http://jabber.org/protocol/muc and its #user, #admin, #owner,
// #roomconfig, #roominfo and #request namespaces; disco#info and
// disco#items (XEP-0030) of the service and its rooms; self-ping
// (XEP-0410); occupant ids (XEP-0421); unique room names (XEP-0307); and
// stamps every groupchat message with a stanza-id by the room (XEP-0359),
// the id the room's archive (XEP-0313 on rooms, mam.go) files it under.
//
// Rooms live in memory; persistent rooms and their affiliations are also
// written to a Store and loaded from it when the service starts. Each room
// has its own lock: a stanza is handled on its sender's goroutine under
// the room's lock, and what the room sends goes out in order through the
// room's outbox after the lock is released (see room.flush), so that an
// error bounced back into the room at once cannot deadlock it. Changes to
// a persistent room are written to the store outside that lock and applied
// once the store has them (store.go), so no one talking waits for it.
package muc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/throttle"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Namespaces the service answers or writes.
const (
	NSMUC        = "http://jabber.org/protocol/muc"
	NSUser       = NSMUC + "#user"
	NSAdmin      = NSMUC + "#admin"
	NSOwner      = NSMUC + "#owner"
	NSRoomConfig = NSMUC + "#roomconfig"
	NSRoomInfo   = NSMUC + "#roominfo"
	NSRequest    = NSMUC + "#request"
	NSUnique     = NSMUC + "#unique"
	NSDiscoInfo  = "http://jabber.org/protocol/disco#info"
	NSDiscoItems = "http://jabber.org/protocol/disco#items"
	NSData       = "jabber:x:data"
	NSDelay      = "urn:xmpp:delay"
	NSSID        = "urn:xmpp:sid:0"
	NSOccupantID = "urn:xmpp:occupant-id:0"
	NSPing       = "urn:xmpp:ping"
	NSConference = "jabber:x:conference"
	NSStableID   = NSMUC + "#stable_id"
	NSSelfPing   = NSMUC + "#self-ping-optimization"
)

// Router delivers what the service sends: a stanza from the service or a
// room, to a user or another component. modules.Server implements it;
// errors it bounces come back through Deliver.
type Router interface {
	Route(ctx context.Context, el *xmlstream.Element)
}

// Store keeps persistent rooms and their affiliations: the muc backend
// feature (sdk.MUC and sdk.MUCWriter, served by a plugin).
type Store interface {
	ListMUCRooms(ctx context.Context, service string) ([]sdk.MUCRoom, error)
	GetMUCAffiliations(ctx context.Context, room string) ([]sdk.MUCAffiliation, error)
	// GetMUCRoom returns one room, or sdk.ErrNotFound.
	GetMUCRoom(ctx context.Context, room string) (sdk.MUCRoom, error)
	PutMUCRoom(ctx context.Context, r sdk.MUCRoom) error
	DeleteMUCRoom(ctx context.Context, room string) error
	SetMUCAffiliation(ctx context.Context, a sdk.MUCAffiliation) error
}

// Who may create rooms (Config.Creators).
const (
	CreatorsAll    = "all"    // any user of this server
	CreatorsHost   = "host"   // users of the service's own host
	CreatorsAdmins = "admins" // the service's admins only
)

// Config is one service's settings.
type Config struct {
	// Domain is the service's domain, like conference.example.com.
	Domain string
	// Host is the virtual host the service belongs to (for CreatorsHost).
	Host string
	// Creators is CreatorsAll, CreatorsHost or CreatorsAdmins.
	Creators string
	// Admins are bare JIDs that own every room of the service: they may
	// enter, configure and destroy any room, locked or members-only.
	Admins []jid.JID
	// Defaults is the configuration of a new room.
	Defaults RoomConfig
	// MaxHistory bounds a room's history length (the messages a newcomer
	// gets).
	MaxHistory int
	// MaxOccupants bounds the occupants of one room; 0: no bound.
	MaxOccupants int
	// MaxRooms bounds the rooms of the service; 0: no bound.
	MaxRooms int
	// MaxRoomsPerUser bounds the rooms one user has created that still
	// exist; 0: no bound. Service admins are not bound.
	MaxRoomsPerUser int
	// JoinRate is how many rooms one user (a bare JID) may enter per
	// JoinWindow; 0 turns the limit off.
	JoinRate   int
	JoinWindow time.Duration
	// LockTimeout is how long a new room stays locked waiting for its
	// owner to configure it before it opens with its defaults (Prosody
	// does the same); 0 locks until configured.
	LockTimeout time.Duration
	// StoreTimeout bounds each call to the Store.
	StoreTimeout time.Duration
	// Archive returns the archive of the service's host, nil while the
	// host keeps none; it is asked at each use, as a reload may change
	// it. Nil: rooms keep no archive (mam.go).
	Archive func() Archive
	// VCards returns where rooms' vCards are kept, the host's vcard
	// backend, nil while it keeps none it can write; asked at each use.
	// Nil: rooms have no vCards (vcard.go).
	VCards func() VCards
}

// Service is one multi-user chat service. It implements the module
// server's Component.
type Service struct {
	log    hclog.Logger
	cfg    Config
	domain jid.JID
	router Router
	store  Store // nil: persistent rooms live in memory only
	joins  *throttle.Limiter
	ids    *archive.IDs
	admins map[jid.JID]bool
	now    func() time.Time
	homes  Homes // nil: not in a cluster (homes.go)
	names  names
	// closing is set when the service stops serving rooms in a cluster.
	closing atomic.Bool

	mu    sync.Mutex
	rooms map[string]*room // by localpart
}

// New makes a service that sends through r and keeps persistent rooms in
// st (nil: in memory only). Load it before use when st is set.
func New(log hclog.Logger, cfg Config, r Router, st Store) (*Service, error) {
	d, err := jid.Parse(cfg.Domain)
	if err != nil || !d.IsDomain() {
		return nil, fmt.Errorf("muc domain %q: not a domain name", cfg.Domain)
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 5 * time.Second
	}
	switch cfg.Creators {
	case "":
		cfg.Creators = CreatorsAll
	case CreatorsAll, CreatorsHost, CreatorsAdmins:
	default:
		return nil, fmt.Errorf("muc creators %q: want %q, %q or %q", cfg.Creators, CreatorsAll, CreatorsHost, CreatorsAdmins)
	}
	if cfg.Defaults.WhoIs == "" {
		cfg.Defaults.WhoIs = WhoIsModerators
	}
	if cfg.Defaults.AllowPM == "" {
		cfg.Defaults.AllowPM = "anyone"
	}
	cfg.Defaults.HistoryLength = min(cfg.Defaults.HistoryLength, cfg.MaxHistory)
	s := &Service{
		log: log, cfg: cfg, domain: d, router: r, store: st,
		ids: archive.NewIDs(), admins: map[jid.JID]bool{}, now: time.Now,
		rooms: map[string]*room{},
	}
	if cfg.JoinRate > 0 && cfg.JoinWindow > 0 {
		s.joins = throttle.New(cfg.JoinRate, cfg.JoinWindow, nil)
	}
	for _, a := range cfg.Admins {
		s.admins[a.Bare()] = true
	}
	return s, nil
}

// Domain is the service's domain.
func (s *Service) Domain() string { return s.domain.String() }

// Load reads the persistent rooms of the service from the store.
func (s *Service) Load(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	rooms, err := s.store.ListMUCRooms(cctx, s.domain.String())
	cancel()
	if err != nil {
		return fmt.Errorf("muc %s: loading rooms: %w", s.domain, err)
	}
	loaded := map[string]*room{}
	for _, sr := range rooms {
		r, err := s.stored(ctx, sr)
		if errors.Is(err, errBadStoredRoom) {
			s.log.Warn("skipping a stored room with a bad address", "room", sr.Room)
			continue
		}
		if err != nil {
			return err
		}
		loaded[r.jid.Local()] = r
	}
	added := 0
	s.mu.Lock()
	for k, r := range loaded {
		if s.rooms[k] == nil { // one in memory is newer than the store
			s.rooms[k] = r
			added++
		}
	}
	s.mu.Unlock()
	s.log.Info("rooms loaded", "service", s.domain.String(), "rooms", added)
	return nil
}

// NodeGone is told that a cluster node died. The persistent rooms it
// made after this node loaded its rooms are read from the store now, so
// that the room list shows them although no node claims them until
// someone needs one.
func (s *Service) NodeGone(ctx context.Context) {
	if err := s.Load(ctx); err != nil {
		s.log.Warn("rooms not read again after a cluster node died; the room list may miss the rooms it made", "error", err)
	}
}

var errBadStoredRoom = errors.New("a stored room with a bad address")

// stored makes the room the store keeps as sr, with its affiliations.
func (s *Service) stored(ctx context.Context, sr sdk.MUCRoom) (*room, error) {
	rj, err := jid.Parse(sr.Room)
	if err != nil || rj.Local() == "" || !rj.IsBare() || rj.Domain() != s.domain.Domain() {
		return nil, fmt.Errorf("muc %s: %q: %w", s.domain, sr.Room, errBadStoredRoom)
	}
	cfg, salt := configFromMap(s.cfg.Defaults, sr.Config, s.cfg.MaxHistory, s.cfg.MaxOccupants)
	cfg.Persistent = true
	r := newRoom(s, rj, cfg, jid.JID{})
	if salt != "" {
		r.salt = salt
	}
	r.subject, r.subjectBy = sr.Subject, sr.SubjectBy
	r.created = sr.Created
	r.stored = true
	r.avatar = storedAvatar(sr.Config)
	if s.cfg.MaxHistory > 0 {
		r.seed = &historySeed{}
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	affs, err := s.store.GetMUCAffiliations(cctx, sr.Room)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("muc %s: loading affiliations: %w", sr.Room, err)
	}
	for _, a := range affs {
		j, err := jid.Parse(a.JID)
		aff, ok := parseAffiliation(a.Affiliation)
		if err != nil || !j.IsBare() || !ok || aff == AffNone {
			s.log.Warn("skipping a stored affiliation", "room", sr.Room, "jid", a.JID, "affiliation", a.Affiliation)
			continue
		}
		r.affs[j] = affEntry{aff: aff, nick: a.Nick, reason: a.Reason}
	}
	return r, nil
}

// Close tells every occupant the service is going away (status 332).
func (s *Service) Close(ctx context.Context) {
	rooms := s.allRooms()
	s.leaveHomes(ctx, rooms)
	for _, r := range rooms {
		r.mu.Lock()
		r.shutdown()
		r.mu.Unlock()
		r.flush(ctx)
	}
}

// isAdmin reports whether the bare JID of j administers the service.
func (s *Service) isAdmin(j jid.JID) bool { return s.admins[j.Bare()] }

// Deliver handles a stanza addressed to the service or one of its rooms;
// from is the sender's full JID (or another component's address).
func (s *Service) Deliver(ctx context.Context, el *xmlstream.Element) {
	from, err := jid.Parse(el.Attr("from"))
	if err != nil {
		return
	}
	to, err := jid.Parse(el.Attr("to"))
	if err != nil {
		s.reply(ctx, el, stanza.ErrJIDMalformed)
		return
	}
	if to.Local() == "" {
		s.serviceStanza(ctx, el, from, to)
		return
	}
	if s.homes != nil {
		if !s.placeHere(ctx, el, to) {
			return
		}
		defer s.releaseIfNone(ctx, to.Bare())
	}
	if serve := s.outsideLock(el, to); serve != nil {
		if r := s.room(to.Local()); r != nil {
			serve(ctx, r, el, from)
		} else {
			s.reply(ctx, el, errNoRoom)
		}
		return
	}
	store := s.store != nil && mayStore(el, to)
	for {
		r := s.room(to.Local())
		if r == nil {
			r = s.maybeCreate(ctx, el, from, to)
			if r == nil {
				return
			}
		}
		if isEntering(el, to) {
			r.awaitHistory(ctx)
		}
		if store {
			r.storeMu.Lock()
		}
		r.mu.Lock()
		if r.gone {
			// Destroyed between the look-up and the lock: look again.
			r.mu.Unlock()
			if store {
				r.storeMu.Unlock()
			}
			continue
		}
		r.handle(ctx, el, from, to)
		queued := r.op != nil
		r.mu.Unlock()
		if queued {
			r.runStore(ctx, store)
		}
		if store {
			r.storeMu.Unlock()
		}
		r.flush(ctx)
		s.dropIfGone(ctx, r)
		return
	}
}

// roomIQ serves an IQ to a room.
type roomIQ func(ctx context.Context, r *room, el *xmlstream.Element, from jid.JID)

// outsideLock returns the handler of el if it is one of the IQs to a room
// served without the room's lock, as their backends may be slow: vCards,
// moderation and archive queries; nil otherwise.
func (s *Service) outsideLock(el *xmlstream.Element, to jid.JID) roomIQ {
	switch {
	case isVCardIQ(el, to):
		return s.vcardIQ
	case isMAMQuery(el, to):
		return s.mamQuery
	}
	if m, ok, serr := parseModerate(el, to); ok {
		return func(ctx context.Context, r *room, el *xmlstream.Element, from jid.JID) {
			if serr != nil {
				s.reply(ctx, el, serr)
				return
			}
			s.moderate(ctx, r, el, from, m)
		}
	}
	return nil
}

// dropIfGone deletes the archive and vCard of r if it is gone and no other
// goroutine took that on.
func (s *Service) dropIfGone(ctx context.Context, r *room) {
	r.mu.Lock()
	drop := r.dropData
	r.dropData = false
	r.mu.Unlock()
	if drop {
		s.dropArchive(ctx, r)
		s.dropVCard(ctx, r)
	}
}

// reply sends the error reply to el, unless el is an error itself.
func (s *Service) reply(ctx context.Context, el *xmlstream.Element, e *stanza.Error) {
	if el.Attr("type") == "error" || (el.Local == "iq" && el.Attr("type") == "result") {
		return
	}
	s.router.Route(ctx, stanza.ErrorReply(el, e))
}

// room returns the room named local, or nil.
func (s *Service) room(local string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[local]
}

// allRooms returns the rooms served now.
func (s *Service) allRooms() []*room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.rooms))
}

// remove forgets r, a room that is gone.
func (s *Service) remove(r *room) {
	s.mu.Lock()
	if s.rooms[r.jid.Local()] == r {
		delete(s.rooms, r.jid.Local())
	}
	s.mu.Unlock()
}

// Errors of room creation.
var (
	errNoRoom       = stanza.ErrItemNotFound.WithText("no such room")
	errCreateDenied = stanza.ErrNotAllowed.WithText("room creation is restricted")
	errTooManyRooms = stanza.ErrResourceConstraint.WithText("the service has as many rooms as it may hold")
	errUserRooms    = stanza.ErrPolicyViolation.WithText("you have created as many rooms as you may")
)

// maybeCreate makes the room to addresses when el is a join presence
// (XEP-0045 §10.1.1); anything else to a room that does not exist gets
// item-not-found. The new room is in the service's table when it returns,
// locked until its creator joins under the room's lock.
func (s *Service) maybeCreate(ctx context.Context, el *xmlstream.Element, from, to jid.JID) *room {
	join := el.Local == "presence" && el.Attr("type") == "" && el.Child(NSMUC, "x") != nil
	if !join {
		if el.Local == "presence" && el.Attr("type") != "" {
			// An unavailable presence to a room that is gone (the session
			// that joined it ends) needs no answer.
			return nil
		}
		s.reply(ctx, el, errNoRoom)
		return nil
	}
	if to.Resource() == "" {
		s.reply(ctx, el, errNoNick)
		return nil
	}
	if e := s.mayCreate(from); e != nil {
		s.reply(ctx, el, e)
		return nil
	}
	var r *room
	var e *stanza.Error
	if s.homes != nil {
		r, e = s.createHomed(ctx, el, from, to)
	} else {
		r, e = s.create(from, to)
	}
	if e != nil {
		s.reply(ctx, el, e)
		return nil
	}
	return r
}

// create adds the room to names to the table, or returns the one a
// concurrent join made first.
func (s *Service) create(from, to jid.JID) (*room, *stanza.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[to.Local()]; r != nil {
		return r, nil
	}
	if s.cfg.MaxRooms > 0 && len(s.rooms) >= s.cfg.MaxRooms {
		s.log.Warn("room refused: the service is full", "room", to.Bare().String(), "max_rooms", s.cfg.MaxRooms)
		return nil, errTooManyRooms
	}
	if n := s.cfg.MaxRoomsPerUser; n > 0 && !s.isAdmin(from) {
		count := 0
		for _, r := range s.rooms {
			if r.creator == from.Bare() {
				count++
			}
		}
		if count >= n {
			return nil, errUserRooms
		}
	}
	r := newRoom(s, to.Bare(), s.cfg.Defaults, from.Bare())
	r.fresh = true
	r.locked = true
	if s.cfg.LockTimeout > 0 {
		r.lockedUntil = s.now().Add(s.cfg.LockTimeout)
	}
	s.rooms[to.Local()] = r
	return r, nil
}

// mayCreate says whether from may create a room.
func (s *Service) mayCreate(from jid.JID) *stanza.Error {
	switch {
	case s.isAdmin(from):
		return nil
	case s.cfg.Creators == CreatorsAdmins:
		return errCreateDenied
	case s.cfg.Creators == CreatorsHost && from.Domain() != s.cfg.Host:
		return errCreateDenied
	case from.Local() == "":
		return errCreateDenied // another component or a server
	}
	return nil
}

// serviceStanza handles a stanza to the service's own domain.
func (s *Service) serviceStanza(ctx context.Context, el *xmlstream.Element, from, to jid.JID) {
	if el.Local != "iq" {
		if el.Local == "message" && el.Attr("type") != "error" {
			s.reply(ctx, el, stanza.ErrServiceUnavailable)
		}
		return
	}
	typ := el.Attr("type")
	if typ != "get" && typ != "set" {
		return
	}
	q := el.FirstChild()
	if q == nil {
		s.reply(ctx, el, stanza.ErrBadRequest)
		return
	}
	switch {
	case typ == "get" && q.Space == NSDiscoInfo && q.Local == "query":
		if q.Attr("node") != "" {
			s.reply(ctx, el, stanza.ErrItemNotFound)
			return
		}
		res := xmlstream.NewElement(NSDiscoInfo, "query")
		res.AppendChild(xmlstream.NewElement(NSDiscoInfo, "identity").
			SetAttr("category", "conference").SetAttr("type", "text").SetAttr("name", "Chatrooms"))
		for _, f := range []string{NSDiscoInfo, NSDiscoItems, NSMUC, NSUnique, NSPing, NSOccupantID, NSSID, NSStableID, NSSelfPing} {
			res.AppendChild(xmlstream.NewElement(NSDiscoInfo, "feature").SetAttr("var", f))
		}
		s.router.Route(ctx, stanza.Result(el, res))
	case typ == "get" && q.Space == NSDiscoItems && q.Local == "query":
		if q.Attr("node") != "" {
			s.reply(ctx, el, stanza.ErrItemNotFound)
			return
		}
		s.router.Route(ctx, stanza.Result(el, s.roomList(ctx, from)))
	case typ == "get" && q.Space == NSPing && q.Local == "ping":
		s.router.Route(ctx, stanza.Result(el, nil))
	case typ == "get" && q.Space == NSUnique && q.Local == "unique":
		// XEP-0307: a name no room has, for a room the client will create.
		res := xmlstream.NewElement(NSUnique, "unique")
		for {
			name := uniqueName()
			if s.room(name) == nil {
				res.AppendText(name)
				break
			}
		}
		s.router.Route(ctx, stanza.Result(el, res))
	default:
		s.reply(ctx, el, stanza.ErrServiceUnavailable)
	}
}

// uniqueName is a random room name, lower case so that it is its own
// normalised form.
func uniqueName() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(strings.TrimRight(base64.RawURLEncoding.EncodeToString(b[:]), "="))
}

// storeCtx is the context of one store call.
func (s *Service) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
}
