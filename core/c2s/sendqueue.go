package c2s

// The outgoing side of a session. Stanzas for a session come from other
// sessions' goroutines; they are serialised straight into the session's
// pending buffer, and a writer goroutine, running only while there is
// something to write, takes everything pending at each wake-up and writes
// it in one write: one system call, one TLS record set, however many
// stanzas came in meanwhile. Its buffers come from a pool of the server
// and go back when the writer stops, so an idle or parked session holds
// neither a writer nor a buffer.

import (
	"net"
	"sync"
	"time"

	"github.com/koi-im/koi/core/xmlstream"
)

// maxPooledBuf bounds the buffers kept for reuse: one grown by a rare
// burst (a stream management replay) is left to the GC, not pinned.
const maxPooledBuf = 64 << 10

// sendQueue is a conn's outgoing queue; its methods are the conn's.
type sendQueue struct {
	mu       sync.Mutex
	pending  *[]byte  // serialised stanzas waiting for the writer; nil when none and no writer
	n        int      // entries in pending: with held, what the queue bound counts
	holding  bool     // SASL2 is binding: queue in held, start no writer (holdQueue)
	held     [][]byte // while holding, one entry per element: stream management may count them
	writerOn bool
	// idle is broadcast, under mu, when a writer stops. It is not a
	// WaitGroup: stanzas from other sessions start a writer again while
	// the session's end waits for the last one, and a WaitGroup added to
	// while its Wait is waking up panics, which took the server down.
	idle sync.Cond
	wdl  int64 // the write deadline set (unix ns), under the conn's wmu; 0 if none or unknown
}

// bufPool is the server's pool of send buffers.
type bufPool struct{ p sync.Pool }

func (p *bufPool) get() *[]byte {
	if b, ok := p.p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 4096)
	return &b
}

func (p *bufPool) put(b *[]byte) {
	if b == nil || cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	p.p.Put(b)
}

// send queues el for the client, past any CSI filter (see Send).
func (c *conn) send(el *xmlstream.Element) bool {
	c.srv.cfg.Observer.StanzaOut(el.Local)
	if ss := c.smSess.Load(); ss != nil {
		// Kept until acknowledged, even when this connection is gone.
		return ss.push(el)
	}
	if c.closed.Load() {
		return false
	}
	q := &c.out
	q.mu.Lock()
	// Checked again under the lock, which startSM holds while turning
	// stream management on: from then on every stanza is counted.
	if ss := c.smSess.Load(); ss != nil {
		q.mu.Unlock()
		return ss.push(el)
	}
	if q.n+len(q.held) >= c.srv.tun().SendQueue {
		q.mu.Unlock()
		// Called from other sessions' goroutines: log without reading
		// state that the connection's own goroutine writes.
		c.srv.cfg.Log.Warn("send queue full, closing slow connection", "remote", c.remote)
		c.Close("policy-violation", "too slow reading: send queue full")
		return false
	}
	if q.holding {
		q.held = append(q.held, el.AppendXML(nil, xmlstream.NSClient))
	} else {
		b := c.pendingLocked()
		*b = el.AppendXML(*b, xmlstream.NSClient)
	}
	c.queuedLocked()
	return true
}

// enqueue adds a copy of b to the outgoing queue and makes sure a writer
// runs. It refuses when the queue is full, unless force (stream
// management's own bound applies, or the closing tail).
func (c *conn) enqueue(b []byte, force bool) bool {
	q := &c.out
	q.mu.Lock()
	if !force && q.n+len(q.held) >= c.srv.tun().SendQueue {
		q.mu.Unlock()
		return false
	}
	c.enqueueLocked(b)
	return true
}

// enqueueLocked is enqueue without the bound, under q.mu, which it
// releases.
func (c *conn) enqueueLocked(b []byte) {
	q := &c.out
	if q.holding {
		q.held = append(q.held, append([]byte(nil), b...))
	} else {
		p := c.pendingLocked()
		*p = append(*p, b...)
	}
	c.queuedLocked()
}

// pendingLocked returns the pending buffer, taken from the pool if none.
func (c *conn) pendingLocked() *[]byte {
	if c.out.pending == nil {
		c.out.pending = c.srv.bufs.get()
	}
	return c.out.pending
}

// queuedLocked counts an entry just queued, starts the writer unless it
// runs or the queue is held, and releases q.mu.
func (c *conn) queuedLocked() {
	q := &c.out
	if !q.holding {
		q.n++
	}
	start := !q.writerOn && !q.holding
	if start {
		q.writerOn = true
	}
	q.mu.Unlock()
	if start {
		go c.writer()
	}
}

// writer writes what is pending, all of it in one write per wake-up, and
// exits once nothing is left, giving its buffers back.
func (c *conn) writer() {
	q := &c.out
	var buf *[]byte // the writer's buffer; swapped with pending at each wake-up
	for {
		q.mu.Lock()
		if q.n == 0 {
			q.writerOn = false
			q.idle.Broadcast()
			spare := q.pending
			q.pending = nil
			q.mu.Unlock()
			c.srv.bufs.put(spare)
			c.srv.bufs.put(buf)
			return
		}
		buf, q.pending = q.pending, buf
		q.n = 0
		q.mu.Unlock()
		err := c.writeRaw(*buf)
		*buf = (*buf)[:0]
		if err != nil {
			// The peer is gone: what is queued goes nowhere; the reader
			// ends the session.
			c.writeLost.Store(true)
			c.closed.Store(true)
			c.transport().Close()
			c.unpark()
		}
	}
}

// waitWriters waits until no writer runs, so that what was queued is
// written.
func (c *conn) waitWriters() {
	q := &c.out
	q.mu.Lock()
	if q.idle.L == nil {
		// Set here, under mu, not in newConn: Broadcast needs no L.
		q.idle.L = &q.mu
	}
	for q.writerOn {
		q.idle.Wait()
	}
	q.mu.Unlock()
}

// writing reports whether a writer is busy with the queue.
func (c *conn) writing() bool {
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	return c.out.writerOn
}

// holdQueue keeps the writer from starting until releaseQueue, so that
// stanzas routed to a session being bound wait behind its <success/>.
func (c *conn) holdQueue() {
	c.out.mu.Lock()
	c.out.holding = true
	c.out.mu.Unlock()
}

// releaseQueue queues first (if any), then what was held, and lets the
// writer go.
func (c *conn) releaseQueue(first []byte) {
	q := &c.out
	q.mu.Lock()
	held := q.held
	q.held, q.holding = nil, false
	if first != nil {
		held = append([][]byte{first}, held...)
	}
	if len(held) == 0 {
		q.mu.Unlock()
		return
	}
	p := c.pendingLocked()
	for _, b := range held {
		*p = append(*p, b...)
	}
	q.n += len(held) - 1 // and one by queuedLocked
	c.queuedLocked()
}

// transport returns the current connection (it changes at STARTTLS).
func (c *conn) transport() net.Conn {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.nc
}

// writeRaw writes b now. Like the idle read deadline (deadlineReader), the
// write deadline moves only once it is a second stale: moving it resets a
// runtime timer.
func (c *conn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	now := time.Now()
	if left := time.Duration(c.out.wdl - now.UnixNano()); left < writeTimeout || left > writeTimeout+time.Second {
		c.nc.SetWriteDeadline(now.Add(writeTimeout + time.Second))
		c.out.wdl = now.Add(writeTimeout + time.Second).UnixNano()
	}
	_, err := c.nc.Write(b)
	// The start of the write does for keepalives: they skip a session
	// while its writer runs.
	c.lastWrite.Store(now.UnixNano())
	return err
}
