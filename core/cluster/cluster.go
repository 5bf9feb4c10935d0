// Package cluster joins koi nodes over NATS. The nodes share their
// backends, so the only state they exchange is the live one: which
// sessions are bound where, with which presence. Each node publishes its
// own sessions in a JetStream key-value bucket and keeps a copy of the
// others' in its router as remote sessions, whose connection forwards
// stanzas to the home node's subject. Routing code does not know the
// difference: a message for a user on another node reaches a remote
// session, and its Send publishes it.
//
// A node announces itself with heartbeats; one silent for longer than the
// lease is dead, and the alive node with the smallest name removes its
// sessions from the registry and sends their unavailable presence.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Subjects, after the cluster's name and a dot. A node's inbox gets the
// stanzas for its sessions (header Koi-To names the session) and the
// stream closes other nodes ask for. The registry is the key-value bucket
// NAME_sessions.
const (
	subjHeartbeat = "hb."   // + node
	subjNode      = "node." // + node + ".in" or ".close"
	subjCache     = "cache" // a cached user's data changed: see caches.go
	hdrTo         = "Koi-To"
	hdrNode       = "Koi-Node"
	hdrCondition  = "Koi-Condition"
)

// Config is the cluster block of the configuration.
type Config struct {
	URL   string        // NATS server URLs, comma-separated
	Node  string        // this node's name: distinct per node, [A-Za-z0-9_-]
	Lease time.Duration // a node silent longer than this is dead
	Name  string        // the cluster's name: prefixes subjects and the bucket
	// OutboxMax bounds the bytes of stanzas forwarded to one node and not
	// yet acknowledged (outbox.go); 0 is DefaultOutboxMax.
	OutboxMax int
}

// Modules is what the cluster needs of the IM logic (core/modules).
type Modules interface {
	// Redeliver delivers a forwarded stanza whose session left.
	Redeliver(ctx context.Context, el *xmlstream.Element)
	// Closed ends a session: its unavailable presence is broadcast.
	Closed(ctx context.Context, s *router.Session)
	// Undelivered takes a stanza sent to s that s never got (XEP-0198
	// unacknowledged, or forwarded to a node that is gone): offline
	// storage, a bounce, or nothing.
	Undelivered(ctx context.Context, s *router.Session, el *xmlstream.Element)
}

// entry is a session's registry value.
type entry struct {
	Node       string `json:"node"`
	JID        string `json:"jid"`
	Available  bool   `json:"available,omitempty"`
	Priority   int    `json:"priority,omitempty"`
	Presence   string `json:"presence,omitempty"`
	Interested bool   `json:"interested,omitempty"`
	Carbons    bool   `json:"carbons,omitempty"`
}

// Cluster is this node's membership. Start it before the listeners, so
// that every local session is observed; Stop it after they closed.
type Cluster struct {
	cfg Config
	log hclog.Logger
	rt  *router.Router
	mod Modules

	nc   *nats.Conn
	kv   jetstream.KeyValue
	subs []*nats.Subscription
	// rooms are the chat rooms' homes (rooms.go).
	rooms *rooms

	// writes holds the registry writes not yet done, by key: a key's
	// latest state is all that matters, so bursts coalesce.
	wmu     sync.Mutex
	writes  map[string]*router.Session // nil value: delete the key
	wake    chan struct{}
	flushed chan struct{} // closed and replaced when writes empties

	mu      sync.Mutex
	remote  map[jid.JID]*remoteSession // remote sessions by full JID
	mine    map[jid.JID]uint64         // registry revision of each local session's latest put
	seen    map[string]time.Time       // nodes: last heartbeat (or first sight)
	reaped  map[string]bool            // nodes reaped (and not seen since, if not in seen)
	started time.Time

	epoch      string     // this run's name among the runs of this node: acks of another's are void
	nodePrefix string     // c.subj(subjNode): node subjects, forwards' reply subjects, start with it
	lostPrefix string     // this node's forwards' reply subjects start with it (lost.go)
	out        *outbox    // forwards not yet answered for (outbox.go)
	backs      *handBacks // forwards handed back, to be handled as undelivered (handback.go)
	acker      *acker     // this node's answers for others' forwards (acks.go)
	settle     settler    // forwards flushed before acknowledgements (settle.go)

	stop chan struct{}
	wg   sync.WaitGroup

	caches   map[string]func(owner jid.JID) // caches.go
	detached jetstream.Stream               // detached.go
}

// New returns a cluster member; Start connects it.
func New(cfg Config, log hclog.Logger, rt *router.Router, mod Modules) *Cluster {
	c := &Cluster{
		cfg: cfg, log: log, rt: rt, mod: mod,
		writes: map[string]*router.Session{}, wake: make(chan struct{}, 1), flushed: make(chan struct{}),
		remote: map[jid.JID]*remoteSession{}, mine: map[jid.JID]uint64{}, seen: map[string]time.Time{}, reaped: map[string]bool{},
		epoch: newEpoch(), out: newOutbox(cfg.OutboxMax), backs: newHandBacks(), stop: make(chan struct{}),
	}
	c.acker = &acker{c: c, runs: map[runKey]*run{}}
	c.nodePrefix = c.subj(subjNode)
	c.lostPrefix = c.nodePrefix + cfg.Node + "." + subjLost
	return c
}

// newEpoch names a run of this node: its forwards' sequence numbers start
// again with it.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// subj is a subject of this cluster.
func (c *Cluster) subj(s string) string { return c.cfg.Name + "." + s }

// Node is this node's name.
func (c *Cluster) Node() string { return c.cfg.Node }

// Start connects to NATS, clears what an earlier run of this node left in
// the registry, loads the other nodes' sessions and starts following them.
func (c *Cluster) Start(ctx context.Context) error {
	nc, err := nats.Connect(c.cfg.URL, nats.Name("koi "+c.cfg.Node), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.log.Warn("NATS connection lost; reconnecting", "error", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { c.log.Info("NATS connection back") }))
	if err != nil {
		return fmt.Errorf("cluster: connect to NATS %s: %w", c.cfg.URL, err)
	}
	c.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("cluster: JetStream: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: c.cfg.Name + "_sessions", History: 1, Storage: jetstream.MemoryStorage,
		Description: "koi: the sessions of every node",
	})
	if err != nil {
		nc.Close()
		return fmt.Errorf("cluster: key-value bucket %s_sessions (is JetStream enabled on the NATS server?): %w", c.cfg.Name, err)
	}
	c.kv = kv
	if err := c.purgeNode(ctx, c.cfg.Node); err != nil {
		nc.Close()
		return err
	}
	c.started = time.Now()
	for _, s := range []struct {
		subj string
		h    nats.MsgHandler
	}{
		{c.subj(subjNode + c.cfg.Node + ".in"), c.onForward},
		{c.subj(subjNode + c.cfg.Node + ".close"), c.onClose},
		{c.subj(subjHeartbeat + "*"), c.onHeartbeat},
		{c.subj(subjCache), c.onCache},
		{c.lostPrefix + ">", c.onLost},
		{c.subj(subjNode + c.cfg.Node + subjAck), c.onAck},
	} {
		sub, err := nc.Subscribe(s.subj, s.h)
		if err != nil {
			nc.Close()
			return fmt.Errorf("cluster: subscribe %s: %w", s.subj, err)
		}
		sub.SetPendingLimits(-1, 256<<20)
		c.subs = append(c.subs, sub)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		nc.Close()
		return fmt.Errorf("cluster: watch the session registry: %w", err)
	}
	// The watcher first replays the bucket, then a nil marks the present.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		c.apply(ctx, e)
	}
	if err := c.startRooms(ctx, js); err != nil {
		w.Stop()
		nc.Close()
		return err
	}
	c.heartbeat()
	c.rt.SetObserver(c)
	c.wg.Add(4)
	go c.follow(w)
	go c.writer()
	go c.beat()
	go c.forwards()
	c.startBacks()
	c.log.Info("joined the cluster", "node", c.cfg.Node, "nats", nc.ConnectedUrlRedacted(), "remote_sessions", len(c.remote))
	return nil
}

// Stop writes what is pending (the sessions' removals after a shutdown),
// then leaves NATS.
func (c *Cluster) Stop(ctx context.Context) {
	if c.nc == nil {
		return
	}
	c.wmu.Lock()
	done := c.flushed
	empty := len(c.writes) == 0
	c.wmu.Unlock()
	if !empty {
		select {
		case <-done:
		case <-ctx.Done():
			c.log.Warn("leaving the cluster with registry writes pending; the lease cleans up", "error", ctx.Err())
		}
	}
	c.rooms.releaseAll(ctx, c.cfg.Node)
	close(c.stop)
	c.wg.Wait()
	c.drainForwards(ctx)
	// While NATS is still there: a dead node's sessions end after its
	// forwards are stored, and the leader then purges the registry.
	c.closeBacks(ctx)
	if err := c.nc.Drain(); err != nil {
		c.nc.Close()
	}
}

// drainForwards handles what NATS still holds for this node and answers
// for it before leaving: a forward handled (stored offline, now that the
// sessions are gone) but not acknowledged would be handed back by its
// sender a lease later, and stored twice.
func (c *Cluster) drainForwards(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var closed []<-chan nats.SubStatus
	for _, s := range c.subs {
		closed = append(closed, s.StatusChanged(nats.SubscriptionClosed))
		s.Drain()
	}
	for _, ch := range closed {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	c.acker.flush()
	if err := c.nc.FlushWithContext(ctx); err != nil {
		c.log.Warn("acknowledgements of forwards not sent; their senders hand them back after the lease", "error", err)
	}
}

// key is a session's registry key: node, bare JID and resource, the last
// two base64url-encoded (keys allow few characters).
func key(node string, full jid.JID) string {
	enc := base64.RawURLEncoding
	return node + "." + enc.EncodeToString([]byte(full.Bare().String())) + "." + enc.EncodeToString([]byte(full.Resource()))
}

// parseKey returns a key's node and full JID.
func parseKey(k string) (string, jid.JID, error) {
	parts := strings.Split(k, ".")
	if len(parts) != 3 {
		return "", jid.JID{}, fmt.Errorf("registry key %q: want node.bare.resource", k)
	}
	enc := base64.RawURLEncoding
	b, err1 := enc.DecodeString(parts[1])
	r, err2 := enc.DecodeString(parts[2])
	if err := errors.Join(err1, err2); err != nil {
		return "", jid.JID{}, fmt.Errorf("registry key %q: %w", k, err)
	}
	full, err := jid.Parse(string(b) + "/" + string(r))
	if err != nil {
		return "", jid.JID{}, fmt.Errorf("registry key %q: %w", k, err)
	}
	return parts[0], full, nil
}

// purgeNode deletes every registry key of node.
func (c *Cluster) purgeNode(ctx context.Context, node string) error {
	lister, err := c.kv.ListKeysFiltered(ctx, node+".>")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return fmt.Errorf("cluster: list the keys of node %s: %w", node, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if err := c.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("cluster: delete %s: %w", k, err)
		}
	}
	return nil
}

// SessionChanged implements router.Observer: a local session bound or
// changed presence.
func (c *Cluster) SessionChanged(s *router.Session) { c.queue(key(c.cfg.Node, s.JID()), s) }

// SessionGone implements router.Observer.
func (c *Cluster) SessionGone(s *router.Session) { c.queue(key(c.cfg.Node, s.JID()), nil) }

func (c *Cluster) queue(k string, s *router.Session) {
	c.wmu.Lock()
	c.writes[k] = s
	c.wmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writer does the registry writes in the background: a bind never waits
// for NATS.
func (c *Cluster) writer() {
	defer c.wg.Done()
	ctx := context.Background()
	for {
		c.wmu.Lock()
		batch := c.writes
		c.writes = map[string]*router.Session{}
		c.wmu.Unlock()
		for k, s := range batch {
			c.write(ctx, k, s)
		}
		c.wmu.Lock()
		if len(c.writes) == 0 {
			close(c.flushed)
			c.flushed = make(chan struct{})
		}
		c.wmu.Unlock()
		select {
		case <-c.wake:
		case <-c.stop:
			return
		}
	}
}

func (c *Cluster) write(ctx context.Context, k string, s *router.Session) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if s == nil {
		if err := c.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			c.log.Warn("session registry: delete failed", "key", k, "error", err)
		}
		if _, full, err := parseKey(k); err == nil {
			c.mu.Lock()
			delete(c.mine, full)
			c.mu.Unlock()
		}
		return
	}
	st := s.State()
	e := entry{Node: c.cfg.Node, JID: s.JID().String(), Available: st.Available, Priority: st.Priority, Interested: st.Interested, Carbons: st.Carbons}
	if st.Presence != nil {
		e.Presence = st.Presence.String()
	}
	b, err := json.Marshal(e)
	if err != nil {
		c.log.Error("session registry: encode", "error", err)
		return
	}
	rev, err := c.kv.Put(ctx, k, b)
	if err != nil {
		c.log.Warn("session registry: put failed", "key", k, "error", err)
		return
	}
	c.mu.Lock()
	c.mine[s.JID()] = rev
	c.mu.Unlock()
}

// follow applies the registry's changes.
func (c *Cluster) follow(w jetstream.KeyWatcher) {
	defer c.wg.Done()
	defer w.Stop()
	ctx := context.Background()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil {
				c.apply(ctx, e)
			}
		case <-c.stop:
			return
		}
	}
}

// apply mirrors one registry entry in the router.
func (c *Cluster) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	node, full, err := parseKey(e.Key())
	if err != nil {
		c.log.Warn("session registry: skipping a key", "error", err)
		return
	}
	if node == c.cfg.Node {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		if rs := c.remote[full]; rs != nil && rs.node == node {
			delete(c.remote, full)
			c.rt.Unbind(rs.s)
		}
		// Not a sign of life: the deletes of a dead node's purge would
		// make it known again, and reaped again a lease later.
		return
	}
	if _, ok := c.seen[node]; !ok {
		c.seen[node] = time.Now() // its heartbeats must follow within a lease
	}
	var v entry
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		c.log.Warn("session registry: bad value", "key", e.Key(), "error", err)
		return
	}
	st := router.PresenceState{Available: v.Available, Priority: v.Priority, Interested: v.Interested, Carbons: v.Carbons}
	if v.Presence != "" {
		if p, err := stanza.Parse(v.Presence); err == nil {
			st.Presence = p
		}
	}
	if rs := c.remote[full]; rs != nil && rs.node == node {
		rs.s.SetRemoteState(st)
		return
	}
	if l := c.rt.Session(full); l != nil && !l.Remote() {
		// The same resource on two nodes: the later bind wins, as on one
		// node (RFC 6120 §7.7.2.2); the registry's revisions order them.
		if c.mine[full] > e.Revision() {
			return // ours is newer: the other node closes its session
		}
		l.Close("conflict", "replaced by a new session of the same resource on another node")
	}
	rs := &remoteSession{c: c, node: node, full: full}
	s, _ := c.rt.BindRemote(full, rs)
	rs.s = s
	s.SetRemoteState(st)
	if old := c.remote[full]; old != nil {
		delete(c.remote, full)
	}
	c.remote[full] = rs
}

// remoteSession is the connection of a session on another node.
type remoteSession struct {
	c    *Cluster
	node string
	full jid.JID
	s    *router.Session
}

// Send implements router.Conn: the stanza goes to the home node.
func (r *remoteSession) Send(el *xmlstream.Element) bool {
	m := nats.NewMsg("") // publishForward names the subject
	m.Header.Set(hdrTo, r.full.String())
	m.Data = el.AppendXML(nil, "")
	if err := r.c.publishForward(m, r.node, "in", r); err != nil {
		r.c.log.Warn("forwarding to another node failed", "node", r.node, "to", r.full.String(), "error", err)
		return false
	}
	return true
}

// Close implements router.Conn: the home node closes the stream.
func (r *remoteSession) Close(condition, text string) {
	m := nats.NewMsg(r.c.subj(subjNode + r.node + ".close"))
	m.Header.Set(hdrTo, r.full.String())
	m.Header.Set(hdrCondition, condition)
	m.Data = []byte(text)
	if err := r.c.nc.PublishMsg(m); err != nil {
		r.c.log.Warn("asking another node to close a session failed", "node", r.node, "to", r.full.String(), "error", err)
	}
}

// onForward delivers a stanza another node sent to one of ours.
func (c *Cluster) onForward(m *nats.Msg) {
	defer c.forwarded(m, "in") // answered for, delivered or not
	if len(m.Data) == 0 {
		return // a probe (outbox.go), or not a stanza
	}
	to, err := jid.Parse(m.Header.Get(hdrTo))
	if err != nil {
		return
	}
	el, err := stanza.Parse(string(m.Data))
	if err != nil {
		c.log.Warn("dropping a malformed stanza from another node", "error", err)
		return
	}
	if s := c.rt.Session(to); s != nil && !s.Remote() {
		if s.Send(el) {
			return
		}
	}
	c.mod.Redeliver(context.Background(), el)
}

// onClose closes one of our sessions for another node.
func (c *Cluster) onClose(m *nats.Msg) {
	to, err := jid.Parse(m.Header.Get(hdrTo))
	if err != nil {
		return
	}
	if s := c.rt.Session(to); s != nil && !s.Remote() {
		s.Close(m.Header.Get(hdrCondition), string(m.Data))
	}
}

func (c *Cluster) heartbeat() {
	if err := c.nc.Publish(c.subj(subjHeartbeat+c.cfg.Node), nil); err != nil {
		c.log.Warn("heartbeat not sent", "error", err)
	}
}

func (c *Cluster) onHeartbeat(m *nats.Msg) {
	node := strings.TrimPrefix(m.Subject, c.subj(subjHeartbeat))
	if node == c.cfg.Node {
		return
	}
	c.mu.Lock()
	c.seen[node] = time.Now()
	c.mu.Unlock()
}

// beat sends heartbeats and looks for dead nodes, a few times per lease.
func (c *Cluster) beat() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Lease / 4)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.heartbeat()
			c.reap(context.Background())
		case <-c.stop:
			return
		}
	}
}

// reap removes the sessions of nodes silent for longer than the lease.
// Every node drops its remote sessions of a dead node; the alive node with
// the smallest name also deletes them from the registry and broadcasts
// their unavailable presence, so that contacts hear it once.
func (c *Cluster) reap(ctx context.Context) {
	now := time.Now()
	c.mu.Lock()
	var dead []string
	leader := true
	for node, t := range c.seen {
		if now.Sub(t) > c.cfg.Lease {
			dead = append(dead, node)
		} else if node < c.cfg.Node {
			leader = false
		}
	}
	var gone []*remoteSession
	for _, node := range dead {
		delete(c.seen, node)
		c.reaped[node] = true
		for full, rs := range c.remote {
			if rs.node == node {
				delete(c.remote, full)
				gone = append(gone, rs)
			}
		}
	}
	c.mu.Unlock()
	for _, node := range dead {
		c.log.Warn("a cluster node stopped answering; its sessions end", "node", node, "lease", c.cfg.Lease, "leader", leader)
	}
	// What this node forwarded to the dead ones and they never answered
	// for, it handles now: a dead node may have been cut off from NATS
	// without its connection closing, so no "no responders" came back
	// for them. So also for nodes reaped before and not seen since: their
	// sessions stay bound until the forwards handed back are stored
	// (below), and a sender that held one across the reap (waiting for
	// room in a full outbox, say) forwarded to it after. (Not for a node
	// this one has not heard from yet: just started, it may have a room's
	// forward for a node whose first heartbeat is still on its way.)
	for _, node := range c.out.nodes() {
		c.mu.Lock()
		_, alive := c.seen[node]
		stray := !alive && c.reaped[node]
		c.mu.Unlock()
		if stray {
			c.handBack(func() []forward { return c.out.drop(node) }, c.log.Warn, "forwards a dead node never answered for; handled as undelivered", "node", node)
		}
	}
	// The sessions end once those are stored: a message sent to one of
	// them meanwhile is forwarded, and handed back at the next reap, so
	// that their users find their messages in offline storage in the
	// order sent, not the ones sent after the reap first.
	// The leader's part follows, on the same goroutine: what the dead
	// node kept for its detached sessions is handled as theirs once they
	// are unbound (detached.go).
	if len(dead) == 0 {
		return
	}
	c.afterBacks(func() {
		ended := make([]jid.JID, 0, len(gone))
		for _, rs := range gone {
			if !c.rt.Unbind(rs.s) {
				continue
			}
			ended = append(ended, rs.full)
			if leader {
				c.mod.Closed(ctx, rs.s)
			}
		}
		// Their rooms here learn it now, not when a message to them
		// bounces: a quiet room would show them for good.
		c.rooms.sessionsGone(ctx, ended)
		c.rooms.nodesGone(ctx)
		if !leader {
			return
		}
		for _, node := range dead {
			c.undeliverDetached(ctx, node, gone) // detached.go
			if err := c.purgeNode(ctx, node); err != nil {
				c.log.Warn("dead node's sessions not removed from the registry", "node", node, "error", err)
			}
			c.rooms.releaseAll(ctx, node)
		}
	})
}
