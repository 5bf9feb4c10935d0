package c2s

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/sm"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// Stream management across the nodes of a cluster: a client whose session
// waits for a resumption on one node may come back to another. The node
// it came back to asks the cluster for the session (SMCluster.Take); the
// node that holds it hands it over (HandOver) and forgets it: the
// unacknowledged stanzas, the counters and the router state move, so the
// client gets each stanza exactly once and nobody sees a new presence.
// When no node has the session, the resumption fails as on one node.

// SMCluster finds a resumable session on the other nodes of a cluster
// (core/cluster implements it).
type SMCluster interface {
	// Take asks the other nodes for the session id of owner, the client
	// having acknowledged h stanzas. It returns sm.ErrUnknown when no node
	// has it, an *sm.RefusedError when h is wrong.
	Take(ctx context.Context, id string, owner jid.JID, h uint32) (*sm.Handover, error)
	// Keep stores b, stanza number n queued for the detached session id
	// of full, where it outlives this node: should the node die before
	// the session resumes or ends, another node treats it as undelivered.
	// It must not block.
	Keep(id string, full jid.JID, n uint32, b []byte)
	// Release drops what Keep stored for id: the session resumed, moved
	// or ended here.
	Release(id string)
	// Settle returns once the stanzas this node forwarded to other nodes
	// before the call have left it, so that an acknowledgement (<a h/>)
	// given after it holds should the node die.
	Settle(ctx context.Context) error
}

// keepDetached starts keeping a detached session's queue in the cluster.
func (ss *smSession) keepDetached() {
	cl := ss.srv.cfg.SM.Cluster
	if cl == nil || ss.id == "" {
		return
	}
	id, full := ss.id, ss.s.JID()
	ss.kept.Store(true)
	ss.st.KeepDetached(func(n uint32, b []byte) { cl.Keep(id, full, n, b) })
}

// release drops what keepDetached kept.
func (ss *smSession) release() {
	if cl := ss.srv.cfg.SM.Cluster; cl != nil && ss.kept.Swap(false) {
		cl.Release(ss.id)
	}
}

// takeTimeout bounds a takeover: a node that holds the session answers in
// milliseconds; one that does not answer is dying.
const takeTimeout = 5 * time.Second

// resumeFromNode is smResume for an id this node does not know: the
// session is taken over from the node that has it, bound here, and
// returned with <resumed/> for attachSM, which replays the stanzas the
// client has not acknowledged.
func (c *conn) resumeFromNode(cl SMCluster, previd string, owner jid.JID, h uint32) (*xmlstream.Element, *smSession) {
	ctx, cancel := context.WithTimeout(context.Background(), takeTimeout)
	defer cancel()
	ho, err := cl.Take(ctx, previd, owner, h)
	var refused *sm.RefusedError
	switch {
	case errors.As(err, &refused):
		c.log().Info("resumption refused by the node that has the session", "reason", err)
		return smFailed("undefined-condition", &refused.In), nil
	case err != nil:
		if !errors.Is(err, sm.ErrUnknown) {
			c.log().Warn("resumption on another node failed", "error", err)
		}
		return smFailed("item-not-found", nil), nil
	}
	full, err := jid.Parse(ho.JID)
	if err != nil || full.Bare() != owner.Bare() {
		c.log().Error("another node handed over a session that is not the client's", "jid", ho.JID)
		return smFailed("item-not-found", nil), nil
	}
	cfg := c.srv.cfg.SM
	ss := &smSession{srv: c.srv, st: sm.Restore(cfg.MaxQueue, cfg.RequestEvery, ho.In, ho.Acked, ho.Unacked),
		id: previd, timeout: ho.Timeout, conn: c}
	// Until attachSM, what is routed to the session is only counted and
	// kept, after the stanzas handed over.
	s, replaced := c.srv.cfg.Router.Bind(full, holdConn{ss})
	ss.s = s
	restoreState(s, ho)
	if replaced != nil {
		replaced.Close("conflict", "replaced by a resumed session of the same resource")
	}
	if !c.srv.smReg.Put(previd, owner, ss) {
		c.log().Warn("a resumed session's id is taken on this node; it cannot be resumed again", "jid", ho.JID)
		ss.id = ""
	}
	c.log().Info("session taken over from another node", "jid", ho.JID, "unacked", len(ho.Unacked))
	return xmlstream.NewElement(sm.NS, "resumed").SetAttr("previd", previd).
		SetAttr("h", strconv.FormatUint(uint64(ho.In), 10)), ss
}

// restoreState gives a session taken over the router state it had.
func restoreState(s *router.Session, ho *sm.Handover) {
	if ho.Available {
		if p, err := stanza.Parse(ho.Presence); err == nil {
			s.SetPresence(p, ho.Priority)
		}
	}
	if ho.Interested {
		s.SetInterested()
	}
	if ho.Carbons {
		s.SetCarbons(true)
	}
	for _, d := range ho.Directed {
		if j, err := jid.Parse(d); err == nil {
			s.AddDirected(j)
		}
	}
}

// HandOver gives the session id of owner to another node, the client
// having acknowledged h stanzas there: send carries the handover to that
// node. The session ends here without a word to anyone (it goes on
// there); if send fails it ends as any session does, its unacknowledged
// stanzas undelivered. It returns sm.ErrUnknown when this node has no such
// session, an *sm.RefusedError when h is wrong.
func (s *Server) HandOver(id string, owner jid.JID, h uint32, send func(*sm.Handover) error) error {
	ss, err := s.smReg.Claim(id, owner)
	if err != nil {
		return sm.ErrUnknown
	}
	ss.mu.Lock()
	if ss.ended {
		ss.mu.Unlock()
		return sm.ErrUnknown
	}
	if err := ss.st.Ack(h); err != nil {
		if ss.conn == nil {
			s.smReg.Detach(ss.id, ss.timeout, (*smSession).expire)
		}
		ss.mu.Unlock()
		return &sm.RefusedError{In: ss.st.H()}
	}
	old := ss.conn
	ss.ended, ss.conn = true, nil
	ss.mu.Unlock()
	s.smReg.Remove(id)
	if old != nil {
		// The client is back elsewhere before we noticed this connection
		// die.
		old.smFlushCSI(ss)
		old.Close("conflict", "the session was resumed on another node")
	}
	// Unbound first: what is routed from now on no longer reaches the
	// queue, and what reached it is handed over.
	s.cfg.Router.Unbind(ss.s)
	st := ss.s.State()
	ho := &sm.Handover{JID: ss.s.JID().String(), Timeout: ss.timeout,
		Available: st.Available, Priority: st.Priority, Interested: st.Interested, Carbons: st.Carbons}
	if st.Presence != nil {
		ho.Presence = st.Presence.String()
	}
	for _, d := range ss.s.TakeDirected() {
		ho.Directed = append(ho.Directed, d.String())
	}
	var q [][]byte
	ho.In, ho.Acked, q = ss.st.Take()
	ho.Unacked = q
	ss.release()
	if err := send(ho); err != nil {
		s.cfg.Log.Warn("session not handed over to another node; it ends here", "jid", ho.JID, "error", err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.cfg.Handler.Closed(ctx, ss.s)
		s.undeliveredCtx(ctx, ss.s, q)
		return err
	}
	s.cfg.Log.Info("session handed over to another node", "jid", ho.JID, "unacked", len(q))
	return nil
}

// holdConn is the connection of a session being taken over, until the
// new connection attaches: stanzas are only counted and kept.
type holdConn struct{ ss *smSession }

// Send implements router.Conn.
func (h holdConn) Send(el *xmlstream.Element) bool { return h.ss.push(el) }

// Close implements router.Conn.
func (h holdConn) Close(condition, text string) { go h.ss.end() }
