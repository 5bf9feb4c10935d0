package cluster

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// The receiving side of outbox.go: this node answers for the forwards it
// handled, a run of consecutive ones at a time.

const (
	subjAck  = ".ack" // node.NODE.ack: acknowledgements of NODE's forwards
	hdrEpoch = "Koi-Epoch"
	hdrDest  = "Koi-Dest"
	// ackEvery is how often the runs handled are acknowledged: what a
	// sender keeps is about this much of its forwards.
	ackEvery = 20 * time.Millisecond
	// ackBurst acknowledges a run at once when it grew this long, so that
	// a sender at full speed keeps no more.
	ackBurst = 4096
)

// run is the forwards handled from one sender's run (its epoch) on one
// subject: first..last, consecutive; acked is the last acknowledged.
type run struct {
	epoch              string
	first, last, acked uint64
}

// runKey names a run's sender and subject kind ("in" or "room").
type runKey struct{ from, kind string }

type acker struct {
	c    *Cluster
	mu   sync.Mutex
	runs map[runKey]*run
}

// handled notes that forward seq of the sender node from (epoch), to this
// node's kind subject, was handled. A forward that does not follow the
// run (a new epoch: the sender restarted; a gap: NATS dropped some) ends
// it: its acknowledgement goes first, then the new run says that nothing
// before it will come.
func (a *acker) handled(from, kind, epoch string, seq uint64) {
	k := runKey{from, kind}
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.runs[k]
	switch {
	case r != nil && r.epoch == epoch && seq == r.last+1:
		r.last = seq
		if r.last-r.acked >= ackBurst {
			a.ackLocked(from, kind, r)
		}
		return
	case r != nil && r.epoch == epoch && seq <= r.last:
		return // again (never, on NATS core): already counted
	case r != nil && r.last != r.acked:
		a.ackLocked(from, kind, r)
	}
	a.runs[k] = &run{epoch: epoch, first: seq, last: seq, acked: seq - 1}
}

// flush acknowledges every run that grew since its last acknowledgement.
func (a *acker) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, r := range a.runs {
		if r.last != r.acked {
			a.ackLocked(k.from, k.kind, r)
		}
	}
}

// ackLocked publishes r's acknowledgement. It is published under a.mu so
// that a run's acknowledgements leave in order, and an ended run's before
// the next one's.
func (a *acker) ackLocked(from, kind string, r *run) {
	m := nats.NewMsg(a.c.subj(subjNode + from + subjAck))
	m.Header.Set(hdrEpoch, r.epoch)
	m.Header.Set(hdrDest, destination(a.c.cfg.Node, kind))
	m.Data = strconv.AppendUint(append(strconv.AppendUint(nil, r.first, 10), ' '), r.last, 10)
	if err := a.c.nc.PublishMsg(m); err != nil {
		// The sender keeps the forwards: they are handed back when this
		// node's lease runs out there, or covered by the next ack.
		a.c.log.Debug("acknowledgement not sent", "to", from, "error", err)
		return
	}
	r.acked = r.last
}

// forwards keeps both sides of the forwards going: every ackEvery it
// acknowledges what this node handled, every genEvery it starts an
// outbox generation and probes the nodes that owe an answer.
func (c *Cluster) forwards() {
	defer c.wg.Done()
	t := time.NewTicker(ackEvery)
	defer t.Stop()
	next := time.Now().Add(genEvery)
	for {
		select {
		case now := <-t.C:
			c.acker.flush()
			if now.Before(next) {
				continue
			}
			next = now.Add(genEvery)
			for _, dest := range c.out.tick() {
				c.probe(dest)
			}
		case <-c.stop:
			c.acker.flush()
			return
		}
	}
}

// probe publishes an empty forward to dest: numbered after those it has
// not answered for, so that it answers for them (outbox.tick).
func (c *Cluster) probe(dest string) {
	node, kind, _ := strings.Cut(dest, ".")
	if err := c.publishForward(nats.NewMsg(""), node, kind, nil); err != nil {
		c.log.Debug("probe not sent", "to", dest, "error", err)
	}
}

// forwarded notes a forward from another node, named by its reply
// subject (PREFIX.node.FROM.lost.THIS.KIND.SEQ), as handled. Messages with
// another reply subject, or none, are not forwards.
func (c *Cluster) forwarded(m *nats.Msg, kind string) {
	epoch := m.Header.Get(hdrEpoch)
	rest, ok := strings.CutPrefix(m.Reply, c.nodePrefix)
	if epoch == "" || !ok {
		return
	}
	from, rest, ok := strings.Cut(rest, "."+subjLost)
	if !ok {
		return
	}
	dest, seq, ok := parseLostSubject(rest)
	if !ok || dest != destination(c.cfg.Node, kind) {
		return
	}
	c.acker.handled(from, kind, epoch, seq)
}

// onAck applies another node's acknowledgement of this node's forwards.
func (c *Cluster) onAck(m *nats.Msg) {
	if m.Header.Get(hdrEpoch) != c.epoch {
		return // for an earlier run of this node
	}
	a, b, ok := strings.Cut(string(m.Data), " ")
	first, err1 := strconv.ParseUint(a, 10, 64)
	last, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		c.log.Warn("dropping a malformed acknowledgement from another node", "data", string(m.Data))
		return
	}
	dest := m.Header.Get(hdrDest)
	c.handBack(func() []forward { return c.out.acked(dest, first, last) }, c.log.Warn, "forwards another node never got; handled as undelivered", "to", dest)
}
