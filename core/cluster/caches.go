package cluster

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/koi-im/koi/core/jid"
)

// Each node caches some per-user data read from the shared backends while
// the user is online (rosters, blocklists): routing must answer from
// memory. A node that writes such data announces it on NAME.cache, header
// Koi-Cache naming the cache and payload the owner's bare JID, and the
// other nodes drop or refresh their copy. The writer waits, briefly, for
// every live node to confirm, so that a change is in force across the
// cluster by the time its client gets the result.
const (
	hdrCache = "Koi-Cache"
	// changeWait bounds the wait for the other nodes' confirmations: a
	// node that does not answer in time is slow or dying, and its lease
	// decides which.
	changeWait = 2 * time.Second
)

// OnChange installs drop, called when another node announces that owner's
// data in the named cache changed. Install every cache before Start.
func (c *Cluster) OnChange(cache string, drop func(owner jid.JID)) {
	if c.caches == nil {
		c.caches = map[string]func(jid.JID){}
	}
	c.caches[cache] = drop
}

// Changed announces that owner's data in cache changed on this node, and
// returns once every other live node dropped its copy, or after
// changeWait (logged).
func (c *Cluster) Changed(ctx context.Context, cache string, owner jid.JID) {
	want := c.liveNodes()
	m := nats.NewMsg(c.subj(subjCache))
	m.Header.Set(hdrCache, cache)
	m.Data = []byte(owner.Bare().String())
	sub, err := c.ask(m)
	if err != nil {
		c.log.Warn("cache change not announced; other nodes may serve a stale copy", "cache", cache, "owner", owner.String(), "error", err)
		return
	}
	defer sub.Unsubscribe()
	ctx, cancel := context.WithTimeout(ctx, changeWait)
	defer cancel()
	for got := 0; got < want; got++ {
		if _, err := sub.NextMsgWithContext(ctx); err != nil {
			c.log.Warn("not every node confirmed a cache change in time; the others may serve a stale copy briefly",
				"cache", cache, "owner", owner.String(), "confirmed", got, "nodes", want, "error", err)
			return
		}
	}
}

// ask publishes m, from this node, to every node, and returns the
// subscription their answers come to; unsubscribe it when done.
func (c *Cluster) ask(m *nats.Msg) (*nats.Subscription, error) {
	m.Reply = c.nc.NewRespInbox()
	m.Header.Set(hdrNode, c.cfg.Node)
	sub, err := c.nc.SubscribeSync(m.Reply)
	if err != nil {
		return nil, err
	}
	if err := c.nc.PublishMsg(m); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	return sub, nil
}

// liveNodes counts the other nodes heard from within the lease.
// Stats is what this node holds for the cluster now, for the metrics.
type Stats struct {
	Nodes          int // other nodes alive
	RemoteSessions int // sessions on other nodes
	// Unacknowledged is the forwards sent to other nodes and not yet
	// answered for, UnacknowledgedBytes their stanzas' size (bounded by
	// outbox_max_size per node).
	Unacknowledged, UnacknowledgedBytes int
	// HandBackBytes is the stanzas handed back as undelivered and not
	// yet stored; HandedBack counts the forwards handed back since the
	// start (a node that died or was cut off, NATS drops).
	HandBackBytes int
	HandedBack    uint64
}

// Stats returns what this node holds for the cluster now.
func (c *Cluster) Stats() Stats {
	st := Stats{Nodes: c.liveNodes()}
	c.mu.Lock()
	st.RemoteSessions = len(c.remote)
	c.mu.Unlock()
	c.out.mu.Lock()
	for _, p := range c.out.peers {
		st.Unacknowledged += len(p.pending)
		st.UnacknowledgedBytes += p.bytes
	}
	c.out.mu.Unlock()
	c.backs.mu.Lock()
	st.HandBackBytes, st.HandedBack = c.backs.bytes, c.backs.total
	c.backs.mu.Unlock()
	return st
}

func (c *Cluster) liveNodes() int {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.seen {
		if now.Sub(t) <= c.cfg.Lease {
			n++
		}
	}
	return n
}

// onCache applies another node's change and confirms it.
func (c *Cluster) onCache(m *nats.Msg) {
	if m.Header.Get(hdrNode) == c.cfg.Node {
		return
	}
	if drop := c.caches[m.Header.Get(hdrCache)]; drop != nil {
		if owner, err := jid.Parse(string(m.Data)); err == nil {
			drop(owner)
		}
	}
	if m.Reply != "" {
		if err := m.Respond(nil); err != nil {
			c.log.Debug("cache change not confirmed", "error", err)
		}
	}
}
