package cluster

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Forwards that found nobody. A stanza for a session on another node is
// published with a reply subject that names it. When that node is gone
// (killed, crashed: its NATS connection closed) the NATS server answers
// on the reply subject at once with status 503, "no responders", and the
// stanza is handled as undelivered by that session, exactly as when a
// local session ends with stanzas unacknowledged: offline storage or a
// bounce, not a silent loss while the dead node's lease runs out. A live
// node answers nothing, so each forward is remembered only for a few
// seconds (two generations, rotated).
//
// A room's stanza forwarded to its dead home node is answered to its
// sender with <recipient-unavailable/> (roomLost) until the lease lets
// another node take the room over.
//
// What this cannot see: a node cut off from NATS without its connection
// closing, until the NATS server's ping timeout ends it. Those forwards
// are still in the archive, where the archive is on.

const subjLost = "lost." // node.NODE.lost.SEQ: the reply subject of a forward

// lostRotate is how long a generation of forwards is kept: far longer
// than a 503 takes to come back.
const lostRotate = 2 * time.Second

type forward struct {
	r    *remoteSession // the connection it was sent on; nil for a room's stanza
	data []byte         // the stanza as published
}

type inflight struct {
	mu      sync.Mutex
	seq     uint64
	cur     map[uint64]forward
	old     map[uint64]forward
	rotated time.Time
}

func newInflight() *inflight {
	return &inflight{cur: map[uint64]forward{}, old: map[uint64]forward{}, rotated: time.Now()}
}

// track remembers a forward and returns its sequence number.
func (f *inflight) track(r *remoteSession, data []byte) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	f.cur[f.seq] = forward{r: r, data: data}
	return f.seq
}

// take returns and forgets the forward seq, if still remembered.
func (f *inflight) take(seq uint64) (forward, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fw, ok := f.cur[seq]; ok {
		delete(f.cur, seq)
		return fw, true
	}
	fw, ok := f.old[seq]
	delete(f.old, seq)
	return fw, ok
}

// rotate forgets the older generation once it is old enough.
func (f *inflight) rotate(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(f.rotated) < lostRotate {
		return
	}
	f.old, f.cur, f.rotated = f.cur, make(map[uint64]forward, len(f.cur)), now
}

// replySubject is the reply subject of forward seq.
func (c *Cluster) replySubject(seq uint64) string {
	return c.subj(subjNode + c.cfg.Node + "." + subjLost + strconv.FormatUint(seq, 10))
}

// onLost handles what comes back on a forward's reply subject: only the
// NATS server's "no responders" means anything.
func (c *Cluster) onLost(m *nats.Msg) {
	if m.Header.Get("Status") != "503" {
		return
	}
	i := strings.LastIndexByte(m.Subject, '.')
	seq, err := strconv.ParseUint(m.Subject[i+1:], 10, 64)
	if err != nil {
		return
	}
	fw, ok := c.lost.take(seq)
	if !ok {
		return
	}
	el, err := stanza.Parse(string(fw.data))
	if err != nil {
		return
	}
	if fw.r == nil {
		c.roomLost(el)
		return
	}
	c.mu.Lock() // apply sets the router session under it
	s := fw.r.s
	c.mu.Unlock()
	if s == nil {
		return
	}
	c.log.Debug("a forward found no node; handled as undelivered", "to", s.JID().String())
	c.mod.Undelivered(context.Background(), s, el)
}

// roomLost answers a stanza for a room whose home node is gone with
// <recipient-unavailable/>, "temporarily unavailable", rather than let it
// vanish until the lease lets another node take the room over: the sender
// learns its message was not delivered, and may send it again.
func (c *Cluster) roomLost(el *xmlstream.Element) {
	if el.Attr("type") == "error" || (el.Local == "iq" && el.Attr("type") == "result") {
		return
	}
	from, err := jid.Parse(el.Attr("from"))
	if err != nil {
		return
	}
	if s := c.rt.Session(from); s != nil {
		s.Send(stanza.ErrorReply(el, stanza.ErrRecipientUnavailable.WithText("the room's node is gone; try again in a few seconds")))
	}
}
