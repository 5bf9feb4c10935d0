package cluster

import (
	"context"
	"errors"
	"strconv"
	"strings"

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
// node answers for its forwards with acknowledgements (outbox.go,
// acks.go); one cut off from NATS without its connection closing answers
// for none, and its forwards are handed back when its lease runs out.
//
// A room's stanza forwarded to its dead home node is answered to its
// sender with <recipient-unavailable/> (roomLost) until the lease lets
// another node take the room over.

const subjLost = "lost." // node.NODE.lost.DEST.KIND.SEQ: the reply subject of a forward

// publishForward publishes m, a stanza, to node's kind subject ("in" or
// "room") as a forward: numbered, kept until answered for, and carrying
// this run's epoch. It sets m's subject. r is the remote session it goes
// to (nil for a room's).
func (c *Cluster) publishForward(m *nats.Msg, node, kind string, r *remoteSession) error {
	dest := destination(node, kind)
	m.Subject = c.nodePrefix + dest
	m.Header.Set(hdrEpoch, c.epoch)
	fw := forward{r: r, data: m.Data}
	publish := func(seq uint64) error {
		m.Reply = c.lostPrefix + dest + "." + strconv.FormatUint(seq, 10)
		if err := c.nc.PublishMsg(m); err != nil {
			return err
		}
		c.settle.published.Add(1) // in the NATS client's buffer: Settle flushes it
		return nil
	}
	err := c.out.send(dest, fw, true, publish)
	if !errors.Is(err, errOutboxFull) {
		return err
	}
	// The destination has not answered for a bound's worth: cut off from
	// NATS, most likely, and its lease would hand them back anyway.
	c.handBack(func() []forward { return c.out.takeOver(dest, len(fw.data)) }, c.log.Warn,
		"forwards another node has not answered for reached cluster.outbox_max_size; handled as undelivered",
		"to", dest, "max_bytes", c.out.max)
	c.waitBacks(c.out.max, c.cfg.Lease)
	return c.out.send(dest, fw, false, publish)
}

// onLost handles what comes back on a forward's reply subject: only the
// NATS server's "no responders" means anything.
func (c *Cluster) onLost(m *nats.Msg) {
	if m.Header.Get("Status") != "503" {
		return
	}
	dest, seq, ok := parseLostSubject(strings.TrimPrefix(m.Subject, c.lostPrefix))
	if !ok {
		return
	}
	// Debug: a dead node has one for each forward sent to it, and its
	// death is logged once by the reaper.
	c.handBack(func() []forward { return c.out.takeThrough(dest, seq) }, c.log.Debug, "forwards found no node; handled as undelivered", "to", dest)
}

// undelivered handles a forward its node never took as its session would
// a stanza it never acknowledged; a room's stanza is answered with an
// error.
func (c *Cluster) undelivered(fw forward) {
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
		c.mod.Redeliver(context.Background(), el)
		return
	}
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
