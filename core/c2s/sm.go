package c2s

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/sm"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// SMConfig configures stream management (XEP-0198). The zero value turns
// it off.
type SMConfig struct {
	Enabled bool
	// ResumeTimeout is how long a session whose connection dropped waits
	// for a resumption; 0 offers no resumption (acks only). A client may
	// ask for less with <enable max/>, never more.
	ResumeTimeout time.Duration
	// MaxQueue bounds the stanzas a session keeps unacknowledged. An
	// attached client over it loses its stream (<policy-violation/>); a
	// detached session over it ends at once.
	MaxQueue int
	// RequestEvery sends <r/> after this many stanzas without one; 0 never
	// asks (clients still send <a/> when they like).
	RequestEvery int
	// OnDetachedStanza, if set, is called for every stanza queued for a
	// detached session: the hook for push notifications (XEP-0357). It
	// runs on the sender's goroutine and must not block.
	OnDetachedStanza func(s *router.Session, el *xmlstream.Element)
	// Cluster, if set, resumes sessions that other nodes of a cluster
	// hold (smcluster.go).
	Cluster SMCluster
}

// Undelivered takes the stanzas a session was sent but never acknowledged
// when it ends for good: XEP-0198 §4 has the server treat them as not
// delivered. Implemented by the modules (offline storage, bounces).
type Undelivered interface {
	Undelivered(ctx context.Context, s *router.Session, el *xmlstream.Element)
}

// smSession is a session with stream management enabled. It outlives the
// connection it was enabled on: while detached the router session points at
// a detachedConn, which only queues, and a resumption points it at the new
// connection.
type smSession struct {
	srv     *Server
	st      *sm.State
	s       *router.Session
	id      string        // resumption id, "" when not resumable
	timeout time.Duration // how long it may stay detached

	mu    sync.Mutex
	conn  *conn // the attached connection, nil while detached
	ended bool

	kept atomic.Bool // its queue is kept in the cluster (smcluster.go)
}

// smWriter writes a session's stanzas to its connection's queue. The SM
// queue bounds them, so the connection's own bound does not apply.
type smWriter struct{ c *conn }

func (w smWriter) Write(b []byte) { w.c.enqueue(b, true) }

func smFailed(cond string, h *uint32) *xmlstream.Element {
	f := xmlstream.NewElement(sm.NS, "failed")
	if h != nil {
		f.SetAttr("h", strconv.FormatUint(uint64(*h), 10))
	}
	return f.AppendChild(xmlstream.NewElement(stanza.NSStanzas, cond))
}

// smElement handles the XEP-0198 elements of a bound stream and reports
// whether el was one.
func (c *conn) smElement(ctx context.Context, el *xmlstream.Element) (bool, error) {
	if el.Space != sm.NS || !c.srv.cfg.SM.Enabled {
		return false, nil
	}
	ss := c.smSess.Load()
	switch el.Local {
	case "enable":
		reply, nss := c.enableSM(el)
		if nss == nil {
			c.enqueue(reply.AppendXML(nil, xmlstream.NSClient), true)
			return true, nil
		}
		c.startSM(nss, reply.AppendXML(nil, xmlstream.NSClient))
	case "resume":
		c.enqueue(smFailed("unexpected-request", nil).AppendXML(nil, xmlstream.NSClient), true)
	case "r":
		if ss == nil {
			return false, nil
		}
		if cl := c.srv.cfg.SM.Cluster; cl != nil {
			// What the client sent to other nodes leaves this one
			// before <a/> counts it: the client forgets it then.
			if err := cl.Settle(ctx); err != nil {
				c.log().Debug("forwards not confirmed before an acknowledgement", "error", err)
			}
		}
		a := xmlstream.NewElement(sm.NS, "a").SetAttr("h", strconv.FormatUint(uint64(ss.st.H()), 10))
		c.enqueue(a.AppendXML(nil, xmlstream.NSClient), true)
	case "a":
		if ss == nil {
			return false, nil
		}
		h, err := strconv.ParseUint(el.Attr("h"), 10, 32)
		if err != nil {
			return true, &xmlstream.Error{Condition: "invalid-xml", Text: "<a/> needs h, a number of 0 to 4294967295"}
		}
		if err := ss.st.Ack(uint32(h)); err != nil {
			// XEP-0198 §4: the client acknowledged stanzas it was never
			// sent (handled-count-too-high).
			return true, &xmlstream.Error{Condition: "undefined-condition", Text: "handled-count-too-high: " + err.Error()}
		}
	default:
		return false, nil
	}
	return true, nil
}

// enableSM answers <enable/> on a bound stream: <enabled/> with a new
// session state, or <failed/> and nil. It writes nothing, so that an
// inline enable (XEP-0386 Bind 2) can put the answer where it belongs;
// startSM then makes it take effect.
func (c *conn) enableSM(el *xmlstream.Element) (*xmlstream.Element, *smSession) {
	cfg := c.srv.cfg.SM
	if !cfg.Enabled || c.session == nil || c.smSess.Load() != nil {
		return smFailed("unexpected-request", nil), nil
	}
	ss := &smSession{srv: c.srv, st: sm.NewState(cfg.MaxQueue, cfg.RequestEvery), s: c.session, conn: c}
	reply := xmlstream.NewElement(sm.NS, "enabled")
	if r := el.Attr("resume"); (r == "true" || r == "1") && cfg.ResumeTimeout > 0 {
		ss.timeout = cfg.ResumeTimeout
		if m, err := strconv.ParseUint(el.Attr("max"), 10, 32); err == nil && m > 0 && time.Duration(m)*time.Second < ss.timeout {
			ss.timeout = time.Duration(m) * time.Second
		}
		ss.id = c.srv.smReg.Add(c.session.JID(), ss)
		reply.SetAttr("id", ss.id).SetAttr("resume", "true").
			SetAttr("max", strconv.FormatInt(int64((ss.timeout+time.Second-1)/time.Second), 10))
	}
	return reply, ss
}

// startSM turns stream management on for c: first (the <enabled/> or a
// frame holding it) is written before any stanza counted by ss, and every
// stanza from now on is counted and kept.
func (c *conn) startSM(ss *smSession, first []byte) {
	// Under the queue lock: a stanza enqueued concurrently either comes
	// before first (and uncounted) or goes through ss after it.
	c.out.mu.Lock()
	c.smSess.Store(ss)
	c.enqueueLocked(first)
	ss.st.Attach(smWriter{c})
	c.log().Debug("stream management enabled", "resumable", ss.id != "")
}

// startSMHeld is startSM for Bind 2's inline <enable/>: the queue is held
// (see holdQueue) with the stanzas routed to the session since it was
// bound, and first (the <success/> holding <enabled/>) must go before
// them. They follow <enabled/> on the wire, so the client counts them:
// they are counted here too, in order, before anything newer.
func (c *conn) startSMHeld(ss *smSession, first []byte) {
	c.out.mu.Lock()
	held := c.out.held
	c.out.held = [][]byte{first}
	for _, b := range held {
		// ss is not attached yet: Push only keeps b, it does not write
		// (which would take the queue's lock).
		if err := ss.st.Push(b); err != nil {
			c.log().Warn("stanza routed during Bind 2 not kept", "error", err)
		}
	}
	c.smSess.Store(ss)
	c.out.mu.Unlock()
	// Writes what was held, then what came since, after first.
	ss.st.Attach(smWriter{c})
	c.releaseQueue(nil)
	c.log().Debug("stream management enabled", "resumable", ss.id != "", "inline", true)
}

// smResume answers <resume previd h/> after authentication, before bind.
// On success it returns <resumed/> and the session, taken over but not yet
// attached: the caller writes the answer, then calls attachSM, which
// replays the unacknowledged stanzas after it. On failure it returns
// <failed/> and nil. Like enableSM it writes nothing, for inline use.
func (c *conn) smResume(el *xmlstream.Element) (*xmlstream.Element, *smSession) {
	if !c.srv.cfg.SM.Enabled || c.user == "" || c.session != nil || c.smSess.Load() != nil {
		return smFailed("unexpected-request", nil), nil
	}
	h, err := strconv.ParseUint(el.Attr("h"), 10, 32)
	if err != nil {
		return smFailed("bad-request", nil), nil
	}
	owner, err := jid.New(c.user, c.host.Name(), "")
	if err != nil {
		return smFailed("item-not-found", nil), nil
	}
	previd := el.Attr("previd")
	ss, err := c.srv.smReg.Claim(previd, owner)
	if err != nil {
		if errors.Is(err, sm.ErrNotOwner) {
			c.log().Info("resumption of another account's session refused", "previd", previd)
		} else if cl := c.srv.cfg.SM.Cluster; cl != nil {
			return c.resumeFromNode(cl, previd, owner, uint32(h)) // smcluster.go
		}
		return smFailed("item-not-found", nil), nil
	}
	ss.mu.Lock()
	if ss.ended {
		ss.mu.Unlock()
		return smFailed("item-not-found", nil), nil
	}
	if err := ss.st.Ack(uint32(h)); err != nil {
		if ss.conn == nil {
			// The claim stopped its clock: restart it, the session is
			// still waiting for a proper resumption.
			c.srv.smReg.Detach(ss.id, ss.timeout, (*smSession).expire)
		}
		ss.mu.Unlock()
		in := ss.st.H()
		c.log().Info("resumption refused", "reason", err)
		return smFailed("undefined-condition", &in), nil
	}
	old := ss.conn
	ss.conn = c
	ss.st.Detach()
	ss.mu.Unlock()
	if old != nil {
		// The client is back before we noticed the old connection die.
		old.smFlushCSI(ss)
		old.Close("conflict", "the session was resumed on another connection")
	}
	return xmlstream.NewElement(sm.NS, "resumed").SetAttr("previd", previd).
		SetAttr("h", strconv.FormatUint(uint64(ss.st.H()), 10)), ss
}

// attachSM makes c the connection of a session smResume took over and
// replays what the client has not acknowledged. The router session, its
// full JID and presence are kept: nobody sees a new presence.
func (c *conn) attachSM(ss *smSession) {
	c.session = ss.s
	c.smSess.Store(ss)
	ss.s.SetConn(c)
	ss.st.Attach(smWriter{c})
	ss.release()
	c.bound.Store(true)
	_, _, unacked := ss.st.Counts()
	c.log().Info("stream resumed", "replayed", unacked)
}

// resumeStream handles <resume/> in negotiation; it reports whether the
// stream now carries the resumed session.
func (c *conn) resumeStream(el *xmlstream.Element) (bool, error) {
	reply, ss := c.smResume(el)
	if ss == nil {
		return false, c.writeRaw(reply.AppendXML(nil, xmlstream.NSClient))
	}
	// Queued, like everything after bind: the replay follows it in order.
	c.enqueue(reply.AppendXML(nil, xmlstream.NSClient), true)
	c.attachSM(ss)
	return true, nil
}

// smFlushCSI moves what an inactive client's filter holds into the SM
// queue, so that a detach or a takeover does not lose it.
func (c *conn) smFlushCSI(ss *smSession) {
	g := c.csi.Load()
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, el := range g.f.Activate() {
		ss.push(el)
	}
	g.done = true
}

// smFinish is finish for a stream with stream management. It reports
// whether it took care of the session: detached it for a resumption, left
// it to the connection that resumed it, or ended it.
func (c *conn) smFinish() bool {
	ss := c.smSess.Load()
	if ss == nil {
		return false
	}
	ss.mu.Lock()
	if ss.conn != c {
		ss.mu.Unlock()
		return true
	}
	ss.conn = nil
	if ss.id != "" && c.lost && !c.srv.isClosing() {
		ss.st.Detach()
		ss.keepDetached() // smcluster.go
		ss.s.SetConn(detachedConn{ss})
		// Under ss.mu: a resumption that claims the session waits until
		// its clock runs.
		c.srv.smReg.Detach(ss.id, ss.timeout, (*smSession).expire)
		ss.mu.Unlock()
		c.smFlushCSI(ss)
		_, _, unacked := ss.st.Counts()
		c.log().Info("connection lost, session kept for resumption", "timeout", ss.timeout, "unacked", unacked)
		return true
	}
	ss.mu.Unlock()
	ss.end()
	return true
}

// push counts and keeps a stanza for the session, and writes it if a
// connection is attached.
func (ss *smSession) push(el *xmlstream.Element) bool {
	return ss.pushBytes(el.AppendXML(make([]byte, 0, 256), xmlstream.NSClient))
}

func (ss *smSession) pushBytes(b []byte) bool {
	err := ss.st.Push(b)
	switch {
	case err == nil:
		return true
	case errors.Is(err, sm.ErrQueueFull):
		ss.mu.Lock()
		c := ss.conn
		ss.mu.Unlock()
		if c != nil {
			ss.srv.cfg.Log.Warn("client does not acknowledge stanzas, closing", "jid", ss.s.JID().String(), "max_queue", ss.srv.cfg.SM.MaxQueue)
			c.Close("policy-violation", "too many unacknowledged stanzas")
		} else {
			ss.srv.cfg.Log.Info("detached session's queue is full, ending it", "jid", ss.s.JID().String())
			go ss.end()
		}
		// Not kept, so not delivered: handled like the rest of the queue.
		go ss.srv.undelivered(ss.s, [][]byte{b})
		return true
	}
	return false // ended
}

// expire ends a detached session whose resumption did not come in time.
func (ss *smSession) expire() {
	ss.mu.Lock()
	attached := ss.conn != nil
	ss.mu.Unlock()
	if attached {
		return
	}
	ss.srv.cfg.Log.Info("resumption timeout, session ended", "jid", ss.s.JID().String())
	ss.end()
}

// end finishes the session for good: unbound, the handler told, and what
// the client never acknowledged handed to Undelivered.
func (ss *smSession) end() {
	ss.mu.Lock()
	if ss.ended {
		ss.mu.Unlock()
		return
	}
	ss.ended = true
	ss.conn = nil
	ss.mu.Unlock()
	if ss.id != "" {
		ss.srv.smReg.Remove(ss.id)
	}
	q := ss.st.Close()
	ss.release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ss.srv.cfg.Router.Unbind(ss.s) {
		ss.srv.cfg.Handler.Closed(ctx, ss.s)
	}
	ss.srv.undeliveredCtx(ctx, ss.s, q)
}

// detachedConn is the router's view of a session without a connection:
// stanzas are only queued, for a resumption or for Undelivered.
type detachedConn struct{ ss *smSession }

// Send implements router.Conn.
func (d detachedConn) Send(el *xmlstream.Element) bool {
	if hook := d.ss.srv.cfg.SM.OnDetachedStanza; hook != nil {
		hook(d.ss.s, el)
	}
	return d.ss.push(el)
}

// Close implements router.Conn: the session ends now (a new connection
// bound its resource, or the server shuts down).
func (d detachedConn) Close(condition, text string) { go d.ss.end() }

func (s *Server) undelivered(sess *router.Session, q [][]byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.undeliveredCtx(ctx, sess, q)
}

func (s *Server) undeliveredCtx(ctx context.Context, sess *router.Session, q [][]byte) {
	if len(q) == 0 {
		return
	}
	s.cfg.Log.Debug("unacknowledged stanzas treated as undelivered", "jid", sess.JID().String(), "count", len(q))
	for _, b := range q {
		el, err := stanza.Parse(string(b))
		if err != nil {
			s.cfg.Log.Error("unacknowledged stanza unreadable, dropped", "jid", sess.JID().String(), "error", err)
			continue
		}
		if s.cfg.Undelivered != nil {
			s.cfg.Undelivered.Undelivered(ctx, sess, el)
		}
	}
}

// endDetached ends every session waiting for a resumption (at shutdown):
// their unacknowledged stanzas go where undelivered ones go.
func (s *Server) endDetached() {
	for _, ss := range s.smReg.Detached(true) {
		ss.end()
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}
