package cluster

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The forwards this node published and no node has yet answered for.
//
// A node handles the stanzas forwarded to it in the order they were
// published (NATS keeps one publisher's messages on one subject in order,
// and a subscription's handler runs one message at a time), so it can
// answer for many at once: "from your forward F to your forward L on this
// subject, every one reached me and was handled, and none before F will"
// (acks.go). The sender numbers its forwards per destination subject, keeps
// each until such an acknowledgement covers it, and hands back as
// undelivered (offline storage, another resource, or an error to the
// sender) every one that cannot be delivered any more:
//
//   - a forward the NATS server answered with "no responders" (lost.go):
//     the destination is gone, and with it every earlier forward to it
//     still unacknowledged (handed back first, to keep the order: NATS
//     took them to the destination's dead connection);
//   - a forward below an acknowledgement's F: the destination restarted,
//     or NATS dropped it (a slow consumer), and it will never come;
//   - every forward still unacknowledged when its node's lease runs out:
//     the node crashed, or was cut off from NATS without its connection
//     closing, and never took them.
//
// So a forward is delivered at least once (a node that handled a stanza
// but died before its acknowledgement left makes it delivered twice, as
// XEP-0198 does), and a node cut off from NATS loses nothing.
//
// A node that never acknowledges (one that predates acknowledgements, in
// a rolling upgrade) gets the old treatment: its forwards are remembered
// for a few seconds for a "no responders", then forgotten (tick).
//
// What one destination holds is bounded (max bytes of stanzas): a node
// cut off from NATS answers for nothing until its lease runs out, and at
// a high rate a lease's worth of forwards is a lot of memory. A forward
// that would take a destination over the bound has that destination's
// pending forwards handed back first (takeOver), as its lease would hand
// them back. A live node never holds that much: it answers every
// ackEvery, and the NATS server cuts off a consumer that falls further
// behind than its own buffer (64 MiB by default), which the default
// bound matches.

// forward is a stanza published to another node.
type forward struct {
	r    *remoteSession // the session it was sent to; nil for a room's stanza
	data []byte         // the stanza as published
}

type pendingForward struct {
	seq uint64
	gen uint64 // the outbox's generation when it was published
	fw  forward
}

// peer is one destination subject: a node's sessions (".in") or its rooms
// (".room").
type peer struct {
	last    uint64           // the last sequence number given
	pending []pendingForward // unacknowledged, by sequence number
	bytes   int              // the size of pending's stanzas
	acking  bool             // it has acknowledged something
}

type outbox struct {
	mu    sync.Mutex
	gen   uint64
	max   int              // bytes pending per destination (takeOver)
	peers map[string]*peer // by destination: node + ".in" or ".room"
}

// DefaultOutboxMax is the default bound on the stanzas forwarded to one
// node and not yet acknowledged: the NATS server's default max_pending.
const DefaultOutboxMax = 64 << 20

func newOutbox(max int) *outbox {
	if max <= 0 {
		max = DefaultOutboxMax
	}
	return &outbox{max: max, peers: map[string]*peer{}}
}

func (o *outbox) peer(dest string) *peer {
	p := o.peers[dest]
	if p == nil {
		p = &peer{}
		o.peers[dest] = p
	}
	return p
}

// send numbers a forward to dest, remembers it and publishes it with
// publish, under the outbox's lock: sessions forward from many goroutines,
// and the destination must see the numbers in the order they were given
// (a forward overtaken by a later one would look lost, and be delivered
// twice). A forward publish refused is forgotten: its caller handles it.
//
// bounded, a forward that would take dest over the bound is refused with
// errOutboxFull, unsent: the caller hands dest's pending forwards back
// (takeOver) and sends it again, unbounded.
func (o *outbox) send(dest string, fw forward, bounded bool, publish func(seq uint64) error) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peer(dest)
	if bounded && len(p.pending) > 0 && p.bytes+len(fw.data) > o.max {
		return errOutboxFull
	}
	seq := p.last + 1
	if err := publish(seq); err != nil {
		return err
	}
	p.last = seq
	p.pending = append(p.pending, pendingForward{seq: seq, gen: o.gen, fw: fw})
	p.bytes += len(fw.data)
	return nil
}

// errOutboxFull refuses a forward that would take its destination's
// pending forwards over the outbox's bound.
var errOutboxFull = errors.New("cluster: the forwards another node has not answered for exceed cluster.outbox_max_size")

// takeOver returns and forgets dest's pending forwards, in order, if a
// forward of n bytes would take it over the bound (the caller hands them
// back before it sends that one); else nothing, as when another sender
// took them first.
func (o *outbox) takeOver(dest string, n int) []forward {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peers[dest]
	if p == nil || len(p.pending) == 0 || p.bytes+n <= o.max {
		return nil
	}
	out := make([]forward, len(p.pending))
	for i, f := range p.pending {
		out[i] = f.fw
	}
	p.popFront(len(p.pending))
	return out
}

// takeThrough returns and forgets the forwards to dest up to seq, in
// order: the NATS server found no subscriber for seq, so the destination
// will answer for none of them.
func (o *outbox) takeThrough(dest string, seq uint64) []forward {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peers[dest]
	if p == nil {
		return nil
	}
	var out []forward
	n := 0
	for ; n < len(p.pending) && p.pending[n].seq <= seq; n++ {
		out = append(out, p.pending[n].fw)
	}
	p.popFront(n)
	return out
}

// acked applies dest's acknowledgement of first..last: those are done,
// and those before first, never to come, are returned to be handled as
// undelivered.
func (o *outbox) acked(dest string, first, last uint64) (lost []forward) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peers[dest]
	if p == nil || first > last || last > p.last {
		return nil // not a range of ours: an earlier run of this node's
	}
	p.acking = true
	n := 0
	for ; n < len(p.pending) && p.pending[n].seq <= last; n++ {
		if f := p.pending[n]; f.seq < first {
			lost = append(lost, f.fw)
		}
	}
	p.popFront(n)
	return lost
}

// popFront forgets the first n pending forwards.
func (p *peer) popFront(n int) {
	for _, f := range p.pending[:n] {
		p.bytes -= len(f.fw.data)
	}
	clear(p.pending[:n]) // the stanzas, for the collector
	p.pending = p.pending[n:]
	if len(p.pending) == 0 {
		p.pending = p.pending[:0:0] // a backlog's array goes too
	}
}

// drop returns every pending forward to node (its lease ran out), to be
// handled as undelivered, and forgets them. The sequence numbers go on:
// a node thought dead that was only slow answers for the old ones still.
func (o *outbox) drop(node string) (lost []forward) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for dest, p := range o.peers {
		if n, _, _ := strings.Cut(dest, "."); n != node {
			continue
		}
		for _, f := range p.pending {
			lost = append(lost, f.fw)
		}
		p.popFront(len(p.pending))
	}
	return lost
}

// nodes lists the nodes that have forwards pending.
func (o *outbox) nodes() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for dest, p := range o.peers {
		if n, _, _ := strings.Cut(dest, "."); len(p.pending) > 0 && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// Generations of forwards, one every genEvery: a forward to a node that
// acknowledges, unanswered for staleGens, makes the outbox probe that
// node; one to a node that does not, forgetGens old, is forgotten.
const (
	genEvery   = 500 * time.Millisecond
	staleGens  = 2
	forgetGens = 8
)

// tick starts a generation. It returns the destinations to probe: those
// whose oldest forward has waited staleGens for an acknowledgement,
// which a live node sends within ackEvery. Either the forward or its
// acknowledgement was lost in flight (a NATS connection that dropped and
// came back), and a probe, numbered after it, makes the destination
// answer: a gap hands the lost forward back, an acknowledgement covers a
// lost acknowledgement's. (A destination that is gone answers for none,
// and its lease hands them back.) The forwards to a node that does not
// acknowledge are forgotten forgetGens old: only a "no responders"
// could have come back for them, and it would have come at once.
func (o *outbox) tick() (probe []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gen++
	for dest, p := range o.peers {
		if p.acking {
			if len(p.pending) > 0 && p.pending[0].gen+staleGens <= o.gen {
				probe = append(probe, dest)
			}
			continue
		}
		n := 0
		for n < len(p.pending) && p.pending[n].gen+forgetGens <= o.gen {
			n++
		}
		p.popFront(n)
	}
	return probe
}

// destination is the outbox key of node's subject kind ("in" or "room").
func destination(node, kind string) string { return node + "." + kind }

// parseLostSubject splits the tail of a forward's reply subject,
// "NODE.KIND.SEQ", into its destination and sequence number.
func parseLostSubject(tail string) (dest string, seq uint64, ok bool) {
	i := strings.LastIndexByte(tail, '.')
	if i < 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(tail[i+1:], 10, 64)
	if err != nil || strings.Count(tail[:i], ".") != 1 {
		return "", 0, false
	}
	return tail[:i], seq, true
}
