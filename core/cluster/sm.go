package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/sm"
	"github.com/koi-im/koi/core/stanza"
)

// Stream-management resumption on another node (XEP-0198). The node a
// client comes back to asks every live node, on NAME.sm.take, for the
// session named in <resume previd/>; the one that holds it answers with
// the handover (core/sm.Handover) and forgets it, the others answer that
// they do not have it. A node that is dead answers nothing, and the
// resumption fails once the others have answered or the wait is over.
const (
	subjTake = "sm.take"
	// takeConfirm bounds the holder's wait for the requester's
	// confirmation that it took the session.
	takeConfirm = 5 * time.Second
)

// Handovers is what the cluster needs of the client server (core/c2s):
// handing one of its resumable sessions over to another node.
type Handovers interface {
	HandOver(id string, owner jid.JID, h uint32, send func(*sm.Handover) error) error
}

type takeRequest struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
	H     uint32 `json:"h"`
}

type takeReply struct {
	Found    bool         `json:"found,omitempty"`
	Refused  bool         `json:"refused,omitempty"`
	In       uint32       `json:"in,omitempty"` // with Refused: the h for <failed/>
	Handover *sm.Handover `json:"handover,omitempty"`
}

// ServeHandovers answers the other nodes' takeovers with h's sessions.
// Call it after Start, before the listeners open: it also treats as
// undelivered what an earlier run of this node kept (detached.go).
func (c *Cluster) ServeHandovers(ctx context.Context, h Handovers) error {
	if err := c.openDetached(ctx); err != nil {
		return err
	}
	sub, err := c.nc.Subscribe(c.subj(subjTake), func(m *nats.Msg) { c.onTake(h, m) })
	if err != nil {
		return fmt.Errorf("cluster: subscribe %s: %w", c.subj(subjTake), err)
	}
	c.mu.Lock()
	c.subs = append(c.subs, sub)
	c.mu.Unlock()
	return nil
}

func (c *Cluster) onTake(h Handovers, m *nats.Msg) {
	from := m.Header.Get(hdrNode)
	if from == c.cfg.Node || m.Reply == "" {
		return
	}
	var req takeRequest
	err := json.Unmarshal(m.Data, &req)
	var owner jid.JID
	if err == nil {
		owner, err = jid.Parse(req.Owner)
	}
	if err != nil {
		c.log.Warn("malformed takeover request", "node", from, "error", err)
		c.reply(m, takeReply{})
		return
	}
	err = h.HandOver(req.ID, owner, req.H, func(ho *sm.Handover) error {
		b, err := json.Marshal(takeReply{Found: true, Handover: ho})
		if err != nil {
			return err
		}
		if max := c.nc.MaxPayload(); int64(len(b)) > max {
			return fmt.Errorf("handover of %d bytes exceeds the NATS payload limit of %d", len(b), max)
		}
		// The requester confirms that it took the session: if it gave up
		// meanwhile, the session ends here as usual rather than being
		// lost between the nodes.
		if _, err := c.nc.RequestMsg(&nats.Msg{Subject: m.Reply, Data: b}, takeConfirm); err != nil {
			return fmt.Errorf("the node that asked did not confirm: %w", err)
		}
		if full, err := jid.Parse(ho.JID); err == nil {
			c.moved(full, from, ho)
		}
		return nil
	})
	var refused *sm.RefusedError
	switch {
	case errors.As(err, &refused):
		c.reply(m, takeReply{Refused: true, In: refused.In})
	case errors.Is(err, sm.ErrUnknown):
		c.reply(m, takeReply{})
	}
}

func (c *Cluster) reply(m *nats.Msg, r takeReply) {
	b, _ := json.Marshal(r)
	if err := m.Respond(b); err != nil {
		c.log.Debug("takeover reply not sent", "error", err)
	}
}

// moved points this node's router at the session's new node at once,
// before the registry says so: a stanza routed here meanwhile follows the
// session instead of missing it.
func (c *Cluster) moved(full jid.JID, node string, ho *sm.Handover) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rs := c.remote[full]; rs != nil && rs.node == node {
		return
	}
	rs := &remoteSession{c: c, node: node, full: full}
	s, _ := c.rt.BindRemote(full, rs)
	rs.s = s
	st := router.PresenceState{Available: ho.Available, Priority: ho.Priority, Interested: ho.Interested, Carbons: ho.Carbons}
	if ho.Presence != "" {
		if p, err := stanza.Parse(ho.Presence); err == nil {
			st.Presence = p
		}
	}
	s.SetRemoteState(st)
	c.remote[full] = rs
}

// Take implements c2s.SMCluster.
func (c *Cluster) Take(ctx context.Context, id string, owner jid.JID, h uint32) (*sm.Handover, error) {
	want := c.liveNodes()
	if want == 0 {
		return nil, sm.ErrUnknown
	}
	body, err := json.Marshal(takeRequest{ID: id, Owner: owner.Bare().String(), H: h})
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(c.subj(subjTake))
	m.Data = body
	sub, err := c.ask(m)
	if err != nil {
		return nil, fmt.Errorf("cluster: takeover: %w", err)
	}
	defer sub.Unsubscribe()
	for got := 0; got < want; got++ {
		r, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			c.log.Info("not every node answered a takeover; the session is taken for lost", "answered", got, "nodes", want, "error", err)
			return nil, sm.ErrUnknown
		}
		var rep takeReply
		if err := json.Unmarshal(r.Data, &rep); err != nil {
			c.log.Warn("malformed takeover reply", "error", err)
			continue
		}
		switch {
		case rep.Found && rep.Handover != nil:
			if ctx.Err() != nil {
				return nil, sm.ErrUnknown // too late: the holder ends it
			}
			if err := r.Respond(nil); err != nil {
				return nil, fmt.Errorf("cluster: takeover not confirmed: %w", err)
			}
			return rep.Handover, nil
		case rep.Refused:
			return nil, &sm.RefusedError{In: rep.In}
		}
	}
	return nil, sm.ErrUnknown
}
