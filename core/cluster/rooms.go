package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Chat rooms (core/muc) live on one node at a time, their home. The first
// node that needs a room claims it in the key-value bucket NAME_rooms
// (key: the room's bare JID, base64url; value: the node), with a
// create-if-absent, so that two nodes never both win. A node that is not a
// room's home publishes the room's stanzas to the home's subject
// node.HOME.room, where its chat service handles them as its own; the
// room's answers reach occupants on any node through the router's remote
// sessions. A claim whose node stopped sending heartbeats is taken over
// with a compare-and-swap on its revision; the reaping node also deletes
// the dead node's claims, and a node deletes its own when it stops or
// starts afresh.

const (
	subjRoomSuffix = ".room" // node.NODE.room: stanzas for the rooms NODE is home of
	hdrHops        = "Koi-Hops"
	// maxHops bounds how often one stanza is passed on between nodes
	// whose views of a room's home disagree for a moment.
	maxHops = 3
)

// ErrNoHome is returned when a room's home cannot be settled or reached.
var ErrNoHome = errors.New("the room's home node cannot be reached")

// roomClaim is a room's bucket value.
type roomClaim struct {
	Node string `json:"node"`
}

// claimState is what this node knows of a room's claim: node "" is no
// claim (deleted at rev). Revisions order what the watcher and this
// node's own writes report, so an old event never undoes a newer write.
type claimState struct {
	node string
	rev  uint64
}

// rooms is the cluster's side of the room homes.
type rooms struct {
	c  *Cluster
	kv jetstream.KeyValue

	mu       sync.Mutex
	claims   map[string]claimState  // by key
	services map[string]RoomService // chat services by domain
}

// RoomService is a chat service whose rooms the cluster places.
type RoomService interface {
	// Deliver handles a stanza for one of the service's rooms, forwarded
	// by another node.
	Deliver(ctx context.Context, el *xmlstream.Element)
	// SessionsGone takes sessions whose node died out of the rooms served
	// here: the node never sent their unavailable presence.
	SessionsGone(ctx context.Context, gone []jid.JID)
	// NodeGone is told that a node died, after SessionsGone: the rooms
	// it made and nobody else has seen are the service's to list.
	NodeGone(ctx context.Context)
	RoomLister // roomlist.go
}

type hopsKey struct{}

func roomKey(room jid.JID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(room.Bare().String()))
}

// startRooms opens the bucket of room claims, drops the claims an earlier
// run of this node left, and follows the others' claims.
func (c *Cluster) startRooms(ctx context.Context, js jetstream.JetStream) error {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: c.cfg.Name + "_rooms", History: 1, Storage: jetstream.MemoryStorage,
		Description: "koi: the home node of each chat room",
	})
	if err != nil {
		return fmt.Errorf("cluster: key-value bucket %s_rooms: %w", c.cfg.Name, err)
	}
	r := &rooms{c: c, kv: kv, claims: map[string]claimState{}, services: map[string]RoomService{}}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("cluster: watch the room claims: %w", err)
	}
	var stale []string
	for e := range w.Updates() {
		if e == nil {
			break
		}
		r.apply(e)
		if cl := r.claims[e.Key()]; cl.node == c.cfg.Node {
			stale = append(stale, e.Key())
		}
	}
	for _, k := range stale {
		// The rooms of an earlier run are gone with its memory.
		if err := r.release(ctx, k); err != nil {
			w.Stop()
			return err
		}
	}
	sub, err := c.nc.Subscribe(c.subj(subjNode+c.cfg.Node+subjRoomSuffix), r.onRoom)
	if err != nil {
		w.Stop()
		return fmt.Errorf("cluster: subscribe to room stanzas: %w", err)
	}
	sub.SetPendingLimits(-1, 256<<20)
	c.subs = append(c.subs, sub)
	c.rooms = r
	c.wg.Add(1)
	go r.follow(w)
	return nil
}

// follow applies the other nodes' claims.
func (r *rooms) follow(w jetstream.KeyWatcher) {
	defer r.c.wg.Done()
	defer w.Stop()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil {
				r.mu.Lock()
				r.apply(e)
				r.mu.Unlock()
			}
		case <-r.c.stop:
			return
		}
	}
}

// apply records a bucket entry unless this node knows a newer one; r.mu
// is held (or the watcher not started).
func (r *rooms) apply(e jetstream.KeyValueEntry) {
	if cur, ok := r.claims[e.Key()]; ok && cur.rev >= e.Revision() {
		return
	}
	st := claimState{rev: e.Revision()}
	if e.Operation() == jetstream.KeyValuePut {
		var v roomClaim
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			r.c.log.Warn("room claims: bad value", "key", e.Key(), "error", err)
			return
		}
		st.node = v.Node
	}
	r.claims[e.Key()] = st
}

// Rooms returns the room homes of svc, the chat service on domain, and
// answers the other nodes' requests for its room list.
func (c *Cluster) Rooms(domain string, svc RoomService) *RoomHomes {
	c.rooms.mu.Lock()
	c.rooms.services[domain] = svc
	c.rooms.mu.Unlock()
	if err := c.serveList(domain, svc); err != nil {
		c.log.Warn("the other nodes will list this node's rooms as they last saw them", "service", domain, "error", err)
	}
	return &RoomHomes{r: c.rooms, domain: domain}
}

// RoomHomes places the rooms of one chat service on the cluster's nodes
// (it implements muc.Homes).
type RoomHomes struct {
	r      *rooms
	domain string
}

// Home returns the node that is room's home, "" for this node; fresh says
// this call made this node the home, so the room must be read from the
// store: what this node had of it in memory may be stale. A room without a
// home, or whose home is dead, is claimed.
func (h *RoomHomes) Home(ctx context.Context, room jid.JID) (node string, fresh bool, err error) {
	r := h.r
	k := roomKey(room)
	self := r.c.cfg.Node
	value, _ := json.Marshal(roomClaim{Node: self})
	for range 4 {
		r.mu.Lock()
		cur := r.claims[k]
		r.mu.Unlock()
		switch {
		case cur.node == self:
			return "", false, nil
		case cur.node != "" && r.c.alive(cur.node):
			return cur.node, false, nil
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var rev uint64
		if cur.node == "" {
			rev, err = r.kv.Create(cctx, k, value)
		} else {
			// The home is dead: take its claim over, unless another node
			// did first.
			rev, err = r.kv.Update(cctx, k, value, cur.rev)
			if err == nil {
				r.c.log.Info("taking over a room of a dead node", "room", room.String(), "node", cur.node)
			}
		}
		if err == nil {
			cancel()
			r.mu.Lock()
			if r.claims[k].rev < rev {
				r.claims[k] = claimState{node: self, rev: rev}
			}
			r.mu.Unlock()
			return "", true, nil
		}
		// Another node was faster (or this one's view is behind): read
		// the claim as it is and decide again.
		e, gerr := r.kv.Get(cctx, k)
		cancel()
		switch {
		case gerr == nil:
			r.mu.Lock()
			r.apply(e)
			r.mu.Unlock()
		case errors.Is(gerr, jetstream.ErrKeyNotFound):
			r.mu.Lock()
			if st := r.claims[k]; st.rev == cur.rev {
				r.claims[k] = claimState{rev: st.rev}
			}
			r.mu.Unlock()
		default:
			return "", false, fmt.Errorf("%w: claim %s: %w; read it: %w", ErrNoHome, room.String(), err, gerr)
		}
	}
	return "", false, fmt.Errorf("%w: claim %s: the claim keeps changing: %w", ErrNoHome, room.String(), err)
}

// Forward publishes el, a stanza for a room, to the room's home node.
func (h *RoomHomes) Forward(ctx context.Context, node string, el *xmlstream.Element) error {
	hops, _ := ctx.Value(hopsKey{}).(int)
	if hops >= maxHops {
		return fmt.Errorf("%w: passed on %d times between nodes", ErrNoHome, hops)
	}
	m := nats.NewMsg("") // publishForward names the subject
	m.Header.Set(hdrHops, strconv.Itoa(hops+1))
	m.Header.Set(hdrNode, h.r.c.cfg.Node)
	m.Data = el.AppendXML(nil, "")
	if err := h.r.c.publishForward(m, node, "room", nil); err != nil { // lost.go
		return fmt.Errorf("%w: publish to node %s: %w", ErrNoHome, node, err)
	}
	return nil
}

// Release gives up this node's claim on room (destroyed, emptied, or never
// made here), so that the next node that needs it claims it.
func (h *RoomHomes) Release(ctx context.Context, room jid.JID) {
	if err := h.r.release(ctx, roomKey(room)); err != nil {
		h.r.c.log.Warn("room claim not released; it goes with this node's lease", "room", room.String(), "error", err)
	}
}

// release deletes the claim k if this node holds it.
func (r *rooms) release(ctx context.Context, k string) error {
	r.mu.Lock()
	cur := r.claims[k]
	if cur.node != r.c.cfg.Node {
		r.mu.Unlock()
		return nil
	}
	// From now on no claim: a watcher event older than the delete must
	// not bring it back.
	r.claims[k] = claimState{rev: cur.rev}
	r.mu.Unlock()
	return r.drop(ctx, k, cur.rev)
}

// drop deletes claim k if it is still at rev.
func (r *rooms) drop(ctx context.Context, k string, rev uint64) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := r.kv.Delete(cctx, k, jetstream.LastRevision(rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return nil // taken over meanwhile: no longer ours to drop
		}
		return fmt.Errorf("cluster: delete room claim %s: %w", k, err)
	}
	return nil
}

// sessionsGone tells every chat service that the sessions gone ended with
// their dead node.
func (r *rooms) sessionsGone(ctx context.Context, gone []jid.JID) {
	if len(gone) == 0 {
		return
	}
	r.mu.Lock()
	svcs := slices.Collect(maps.Values(r.services))
	r.mu.Unlock()
	for _, svc := range svcs {
		svc.SessionsGone(ctx, gone)
	}
}

// nodesGone tells every chat service that nodes died.
func (r *rooms) nodesGone(ctx context.Context) {
	r.mu.Lock()
	svcs := slices.Collect(maps.Values(r.services))
	r.mu.Unlock()
	for _, svc := range svcs {
		svc.NodeGone(ctx)
	}
}

// releaseAll deletes the claims of node (this one when it stops, or a dead
// one).
func (r *rooms) releaseAll(ctx context.Context, node string) {
	r.mu.Lock()
	type kr struct {
		k   string
		rev uint64
	}
	var mine []kr
	for k, st := range r.claims {
		if st.node == node {
			mine = append(mine, kr{k, st.rev})
			if node == r.c.cfg.Node {
				r.claims[k] = claimState{rev: st.rev}
			}
		}
	}
	r.mu.Unlock()
	for _, c := range mine {
		if err := r.drop(ctx, c.k, c.rev); err != nil {
			r.c.log.Warn("room claim not deleted", "node", node, "error", err)
		}
	}
}

// onRoom hands a stanza another node forwarded to the room's service here.
func (r *rooms) onRoom(m *nats.Msg) {
	defer r.c.forwarded(m, "room") // answered for, delivered or not
	if len(m.Data) == 0 {
		return // a probe (outbox.go)
	}
	el, err := stanza.Parse(string(m.Data))
	if err != nil {
		r.c.log.Warn("dropping a malformed room stanza from another node", "error", err)
		return
	}
	to, err := jid.Parse(el.Attr("to"))
	if err != nil {
		return
	}
	r.mu.Lock()
	svc := r.services[to.Domain()]
	r.mu.Unlock()
	if svc == nil {
		r.c.log.Warn("a room stanza for a chat service this node does not serve", "to", to.String())
		return
	}
	if from, err := jid.Parse(el.Attr("from")); err == nil {
		r.c.learnSession(m.Header.Get(hdrNode), from)
	}
	hops, _ := strconv.Atoi(m.Header.Get(hdrHops))
	svc.Deliver(context.WithValue(context.Background(), hopsKey{}, hops), el)
}

// learnSession puts full, a session of node whose stanza node forwarded,
// in the router if the registry has not brought it yet: the session's
// registry entry is written in the background after its bind, and may
// come after the session's first stanza to a room (a join at once after
// login). The room's answers would otherwise find no session, and a
// groupchat that bounces makes the room drop the new occupant. The entry,
// when it comes, updates this remote session; its deletion removes it.
// A session that was already gone from the registry when its stanza came
// would stay for good: a lease later, one not in the registry is removed.
func (c *Cluster) learnSession(node string, full jid.JID) {
	if node == "" || node == c.cfg.Node || full.Local() == "" || full.Resource() == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rt.Session(full) != nil {
		return
	}
	if _, ok := c.seen[node]; !ok {
		c.seen[node] = time.Now() // its heartbeats must follow within a lease
	}
	rs := &remoteSession{c: c, node: node, full: full}
	rs.s, _ = c.rt.BindRemote(full, rs)
	c.remote[full] = rs
	time.AfterFunc(c.cfg.Lease, func() { c.forgetUnregistered(rs) })
}

// forgetUnregistered removes rs, a session learnSession put in the router,
// if the registry does not have it.
func (c *Cluster) forgetUnregistered(rs *remoteSession) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.kv.Get(ctx, key(rs.node, rs.full))
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return // registered (or the registry cannot say: the lease will)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.remote[rs.full] == rs {
		delete(c.remote, rs.full)
		c.rt.Unbind(rs.s)
	}
}

// alive reports whether node is this one or has sent a heartbeat within
// the lease. A node never heard of counts as alive until this one has been
// up for a lease: its heartbeats may not have come yet.
func (c *Cluster) alive(node string) bool {
	if node == c.cfg.Node {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.seen[node]; ok {
		return time.Since(t) <= c.cfg.Lease
	}
	return time.Since(c.started) <= c.cfg.Lease
}
