package muc

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// In a cluster of koi nodes a room lives on one node at a time, its home
// (core/cluster decides which, through Homes). A stanza for a room, or for
// one of its occupants, that reaches another node is passed to the home,
// which handles it as its own; what the room sends reaches occupants on
// every node through the router. A node that becomes a room's home reads
// the room afresh from the store: the home it replaces may have changed
// it, and occupants are not carried over (they rejoin when their
// self-ping, XEP-0410, says they are not in the room).
//
// Invariant, on each node: a room in the service's table whose home is
// this node was put there while this node held the claim, and a claim is
// given up only while the table has no room of that name. Both happen
// under the name's lock (names), so a claim never goes while its room is
// served here.

// Homes places a service's rooms on the nodes of a cluster; nil (no
// cluster): every room lives on this node.
type Homes interface {
	// Home returns the node that is room's home, "" for this one,
	// claiming the room for this node when it has no live home; fresh
	// says this call made the claim.
	Home(ctx context.Context, room jid.JID) (node string, fresh bool, err error)
	// Forward sends el, a stanza for a room, to the room's home node.
	Forward(ctx context.Context, node string, el *xmlstream.Element) error
	// Release gives up this node's claim on room.
	Release(ctx context.Context, room jid.JID)
	// Claim reports the node whose claim room has ("" for this node),
	// and whether it has one.
	Claim(room jid.JID) (node string, ok bool)
	// ListOthers asks the other nodes for the items of the rooms they
	// are home of that the room list shows (admin: to a service admin),
	// and returns them by node, for the nodes that answered in time.
	ListOthers(ctx context.Context, admin bool) map[string][]*xmlstream.Element
}

// SetHomes makes the service one of a cluster's; call it before serving.
func (s *Service) SetHomes(h Homes) { s.homes = h }

// Errors of a room whose home cannot be found or loaded.
var (
	errNoHome   = stanza.ErrRecipientUnavailable.WithText("the room's node cannot be reached; try again")
	errLoadRoom = stanza.ErrInternal.WithText("the room could not be read from the store; try again")
)

// placeHere settles where el, a stanza for the room to names, is handled:
// here (true), or on the room's home node, to which it has been passed.
// A room this node has just claimed is read from the store first.
func (s *Service) placeHere(ctx context.Context, el *xmlstream.Element, to jid.JID) bool {
	if s.closing.Load() {
		// Its rooms are released: another node serves them, once the
		// sender's node has seen the release.
		s.reply(ctx, el, errNoHome)
		return false
	}
	unlock := s.names.lock(to.Local())
	node, fresh, err := s.homes.Home(ctx, to.Bare())
	if err == nil && fresh {
		if err = s.reload(ctx, to.Bare()); err != nil {
			s.homes.Release(ctx, to.Bare())
			unlock()
			s.log.Warn("a room this node took over could not be loaded", "room", to.Bare().String(), "error", err)
			s.reply(ctx, el, errLoadRoom)
			return false
		}
	}
	unlock()
	if err != nil {
		s.log.Warn("no home for a room", "room", to.Bare().String(), "error", err)
		s.reply(ctx, el, errNoHome)
		return false
	}
	if node == "" {
		return true
	}
	if err := s.homes.Forward(ctx, node, el); err != nil {
		s.log.Warn("a room stanza could not be passed to the room's node", "room", to.Bare().String(), "node", node, "error", err)
		s.reply(ctx, el, errNoHome)
	}
	return false
}

// createHomed is create in a cluster: under the name's lock, the claim is
// checked again (a stanza that found no room may have released it since
// placeHere), so the new room is never in the table without this node's
// claim. It returns nil (having answered or passed on el) when the room is
// not to be made here.
func (s *Service) createHomed(ctx context.Context, el *xmlstream.Element, from, to jid.JID) (*room, *stanza.Error) {
	unlock := s.names.lock(to.Local())
	defer unlock()
	if s.closing.Load() {
		return nil, errNoHome
	}
	node, fresh, err := s.homes.Home(ctx, to.Bare())
	if err != nil {
		return nil, errNoHome
	}
	if node != "" {
		if err := s.homes.Forward(ctx, node, el); err != nil {
			return nil, errNoHome
		}
		return nil, nil
	}
	if fresh {
		if err := s.reload(ctx, to.Bare()); err != nil {
			s.homes.Release(ctx, to.Bare())
			return nil, errLoadRoom
		}
	}
	return s.create(from, to)
}

// leaveHomes, when the service stops in a cluster, gives up the claims on
// its rooms before their occupants are told the service is going away
// (status 332): the clients that rejoin at once reach a node that takes
// the rooms over, not this one. From now on this node serves no room.
func (s *Service) leaveHomes(ctx context.Context, rooms []*room) {
	if s.homes == nil {
		return
	}
	s.closing.Store(true)
	for _, r := range rooms {
		unlock := s.names.lock(r.jid.Local())
		s.homes.Release(ctx, r.jid)
		unlock()
	}
}

// releaseIfNone gives up this node's claim on the room named local when
// the service has no such room (any more): it was destroyed or emptied, or
// the stanza that claimed it found nothing to serve.
func (s *Service) releaseIfNone(ctx context.Context, room jid.JID) {
	unlock := s.names.lock(room.Local())
	defer unlock()
	if s.room(room.Local()) == nil {
		s.homes.Release(ctx, room)
	}
}

// reload replaces what the service has of the room rj with the store's copy, or
// forgets it when the store has none. Without a store a room is only ever
// in this node's memory, and what the table holds stays.
func (s *Service) reload(ctx context.Context, rj jid.JID) error {
	if s.store == nil {
		return nil
	}
	cctx, cancel := s.storeCtx(ctx)
	sr, err := s.store.GetMUCRoom(cctx, rj.String())
	cancel()
	var r *room
	switch {
	case errors.Is(err, sdk.ErrNotFound):
	case err != nil:
		return fmt.Errorf("muc %s: %w", rj, err)
	default:
		if r, err = s.stored(ctx, sr); err != nil {
			return err
		}
	}
	s.mu.Lock()
	old := s.rooms[rj.Local()]
	if r != nil {
		s.rooms[rj.Local()] = r
	} else {
		delete(s.rooms, rj.Local())
	}
	s.mu.Unlock()
	if old != nil {
		// Holders of the old copy look the room up again.
		old.mu.Lock()
		old.gone = true
		old.mu.Unlock()
	}
	return nil
}

// names is a lock per room name, held while a room enters the service's
// table or a claim on it is given up.
type names struct {
	mu    sync.Mutex
	locks map[string]*nameLock
}

type nameLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks name and returns its unlock.
func (n *names) lock(name string) (unlock func()) {
	n.mu.Lock()
	if n.locks == nil {
		n.locks = map[string]*nameLock{}
	}
	l := n.locks[name]
	if l == nil {
		l = &nameLock{}
		n.locks[name] = l
	}
	l.refs++
	n.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		n.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(n.locks, name)
		}
		n.mu.Unlock()
	}
}

// SessionsGone takes the sessions in gone, whose cluster node died, out of
// the rooms served here, as a stanza to them that bounced would (status
// 333): their node never sent their unavailable presence, and a quiet room
// would otherwise show them until someone spoke.
func (s *Service) SessionsGone(ctx context.Context, gone []jid.JID) {
	ended := make(map[jid.JID]bool, len(gone))
	for _, j := range gone {
		ended[j] = true
	}
	for _, r := range s.allRooms() {
		r.mu.Lock()
		var hit []jid.JID
		if !r.gone {
			for j := range r.bySession {
				if ended[j] {
					hit = append(hit, j)
				}
			}
		}
		for _, j := range hit {
			if o := r.bySession[j]; o != nil {
				r.sessionFailed(o, j)
			}
		}
		if len(hit) > 0 {
			r.emptied()
		}
		r.mu.Unlock()
		if len(hit) == 0 {
			continue
		}
		r.flush(ctx)
		s.dropIfGone(ctx, r)
		if s.homes != nil {
			s.releaseIfNone(ctx, r.jid)
		}
	}
}
