package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
)

// A session waiting for a resumption (XEP-0198) holds what its client has
// not acknowledged in its node's memory. So that a node's death does not
// lose it, a detached session's queue is also kept in the JetStream
// stream NAME_detached, subject NAME.detached.NODE.ID (ID a hash of the
// resumption id, a secret), one message per stanza; it is purged when the
// session resumes, moves or ends. When a node dies, the node that reaps
// it treats what it kept as undelivered, as the dead node would have at
// the session's expiry: offline storage for the messages worth keeping.
// A node that starts treats what an earlier run of itself left the same
// way.
const (
	subjDetached = "detached." // + node + "." + hash of the id
	hdrN         = "Koi-N"     // the stanza's number in its session
	// keptFor bounds how long the stream keeps a stanza whose node never
	// purged it (a node that died with no other node alive to reap it).
	keptFor = 24 * time.Hour
)

// openDetached creates or opens the stream, and treats what an earlier
// run of this node left there as undelivered.
func (c *Cluster) openDetached(ctx context.Context) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return fmt.Errorf("cluster: JetStream: %w", err)
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: c.cfg.Name + "_detached", Subjects: []string{c.subj(subjDetached + ">")},
		Storage: jetstream.MemoryStorage, MaxAge: keptFor,
		Description: "koi: the unacknowledged stanzas of sessions waiting for a resumption",
	})
	if err != nil {
		return fmt.Errorf("cluster: stream %s_detached: %w", c.cfg.Name, err)
	}
	c.detached = st
	c.undeliverDetached(ctx, c.cfg.Node, nil)
	return nil
}

func (c *Cluster) detachedSubject(node, id string) string {
	sum := sha256.Sum256([]byte(id))
	return c.subj(subjDetached + node + "." + hex.EncodeToString(sum[:12]))
}

// Keep implements c2s.SMCluster.
func (c *Cluster) Keep(id string, full jid.JID, n uint32, b []byte) {
	if c.detached == nil {
		return
	}
	m := nats.NewMsg(c.detachedSubject(c.cfg.Node, id))
	m.Header.Set(hdrTo, full.String())
	m.Header.Set(hdrN, strconv.FormatUint(uint64(n), 10))
	m.Data = b
	// Not waiting for the stream's ack: this runs under the session's
	// lock, and the stream is a safety net for a node's death.
	if err := c.nc.PublishMsg(m); err != nil {
		c.log.Warn("a detached session's stanza is not kept in the cluster; it is lost if this node dies", "jid", full.String(), "error", err)
	}
}

// Release implements c2s.SMCluster.
func (c *Cluster) Release(id string) {
	if c.detached == nil {
		return
	}
	subj := c.detachedSubject(c.cfg.Node, id)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.detached.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			c.log.Warn("a resumed or ended session's kept stanzas were not purged; they are dropped after "+keptFor.String(), "error", err)
		}
	}()
}

// keptStanza is one stanza a dead node kept.
type keptStanza struct {
	to jid.JID
	n  uint32
	b  []byte
}

// undeliverDetached treats the stanzas node kept for its detached
// sessions as undelivered, and purges them. gone are the dead node's
// sessions, unbound already: a stanza is handed over with its session,
// so the modules see it as they would at the session's expiry.
func (c *Cluster) undeliverDetached(ctx context.Context, node string, gone []*remoteSession) {
	if c.detached == nil {
		return
	}
	filter := c.subj(subjDetached + node + ".>")
	kept, err := c.readKept(ctx, filter)
	if err != nil {
		c.log.Warn("the stanzas a dead node kept for its detached sessions cannot be read; they stay until the next try", "node", node, "error", err)
		return
	}
	if len(kept) == 0 {
		return
	}
	bySubject := map[string][]keptStanza{}
	var subjects []string
	for _, k := range kept {
		if bySubject[k.subj] == nil {
			subjects = append(subjects, k.subj)
		}
		bySubject[k.subj] = append(bySubject[k.subj], k.keptStanza)
	}
	n := 0
	for _, subj := range subjects {
		q := bySubject[subj]
		sort.SliceStable(q, func(i, j int) bool { return q[i].n < q[j].n })
		var last uint32
		for i, k := range q {
			if i > 0 && k.n == last {
				continue // kept twice
			}
			last = k.n
			el, err := stanza.Parse(string(k.b))
			if err != nil {
				c.log.Warn("a kept stanza is unreadable, dropped", "jid", k.to.String(), "error", err)
				continue
			}
			n++
			if rs := findGone(gone, k.to); rs != nil {
				c.mod.Undelivered(ctx, rs.s, el)
			} else {
				c.mod.Redeliver(ctx, el)
			}
		}
	}
	if err := c.detached.Purge(ctx, jetstream.WithPurgeSubject(filter)); err != nil {
		c.log.Warn("the kept stanzas of a dead node were not purged", "node", node, "error", err)
	}
	c.log.Info("stanzas a node kept for its detached sessions treated as undelivered", "node", node, "stanzas", n)
}

func findGone(gone []*remoteSession, full jid.JID) *remoteSession {
	for _, rs := range gone {
		if rs.full == full {
			return rs
		}
	}
	return nil
}

type keptMsg struct {
	subj string
	keptStanza
}

// readKept reads every message of the stream under filter.
func (c *Cluster) readKept(ctx context.Context, filter string) ([]keptMsg, error) {
	info, err := c.detached.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, err
	}
	total := 0
	for _, n := range info.State.Subjects {
		total += int(n)
	}
	if total == 0 {
		return nil, nil
	}
	cons, err := c.detached.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, err
	}
	var out []keptMsg
	for len(out) < total {
		batch, err := cons.Fetch(total-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			to, err1 := jid.Parse(m.Headers().Get(hdrTo))
			n, err2 := strconv.ParseUint(m.Headers().Get(hdrN), 10, 32)
			if err := errors.Join(err1, err2); err != nil {
				c.log.Warn("a kept stanza without its session, dropped", "subject", m.Subject(), "error", err)
				continue
			}
			out = append(out, keptMsg{m.Subject(), keptStanza{to: to, n: uint32(n), b: m.Data()}})
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if got == 0 {
			break // fewer than the count said: purged meanwhile
		}
	}
	return out, nil
}
